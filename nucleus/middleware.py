"""Request middleware of the project."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

API_PREFIX = "/api/v1/"


class ApiTrailingSlashMiddleware:
    """`/api/v1/datasets/` answers as `/api/v1/datasets` does.

    API paths are spelled without a trailing slash (the schema lists them so), but many
    clients add one. A redirect would turn a POST into a GET in some clients and lose its
    body, so the slash is dropped before URL resolution instead, for any path under the
    API that then resolves; everything else is left to the 404 handler.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if path.startswith(API_PREFIX) and path.endswith("/") and len(path) > len(API_PREFIX):
            stripped = path[:-1]  # one slash: "datasets//" stays unknown
            try:
                resolve(stripped)
            except Resolver404:
                pass
            else:
                request.path_info = stripped
        return self.get_response(request)
