"""Middleware of the service."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from curation.errors import error_body
from curation.storable import Unstorable, params_check


class StorableQueryMiddleware:
    """Refuse a query string with text PostgreSQL cannot store (NUL), for every view.

    Bodies are checked by the API's parsers (curation/api/parsers.py) and the UI's forms;
    query strings reach views as request.GET, so they are checked once here, before any
    view can put them into a query. A 400 in the API's error format under /api/, the
    error page elsewhere.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            params_check(request.GET)
        except Unstorable as exc:
            if request.path.startswith("/api/"):
                return JsonResponse(error_body("invalid", exc.message, exc.fields), status=400)
            context = {"message": exc.message, "fields": exc.fields}
            return render(request, "ui/error.html", context, status=400)
        return self.get_response(request)
