"""HTML-side views: thin, they check access and call one domain function."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.files.storage import default_storage
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.http.response import HttpResponseBase
from django.utils.cache import get_conditional_response, patch_cache_control, patch_vary_headers
from django.views.decorators.http import require_safe
from rest_framework import exceptions

from curation import selectors
from curation.authentication import HashedTokenAuthentication
from curation.errors import error_body
from curation.health import health_report
from curation.models import Item
from curation.storage import (
    MediaKind,
    media_content_type,
    media_etag,
    media_key,
    media_presign,
    media_signature_valid,
    storage_is_s3,
)


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=status)


def _unauthorized(message: str) -> JsonResponse:
    response = _error(401, "not_authenticated", message)
    response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def _media_user(request: HttpRequest) -> tuple[Any, HttpResponse | None]:
    """The caller, from an API token if one is sent, else from the session.

    Returns (user, None), or (None, response) when the caller must authenticate first:
    401 for API-style requests, a redirect to the login page for browser navigations.
    """
    if request.META.get("HTTP_AUTHORIZATION"):
        try:
            found = HashedTokenAuthentication().authenticate(request)
        except exceptions.AuthenticationFailed as exc:
            return None, _unauthorized(str(exc.detail))
        if found is not None:
            return found[0], None
    if request.user.is_authenticated:
        return request.user, None
    if "text/html" in request.headers.get("Accept", ""):
        return None, redirect_to_login(request.get_full_path())
    return None, _unauthorized("Authentication credentials were not provided.")


def _media_item(request: HttpRequest, item_id: int, kind: MediaKind) -> Item | HttpResponse:
    """The item if the caller may see its media, else the response that refuses them."""
    signature = request.GET.get("sig", "")
    if signature and media_signature_valid(signature, item_id, kind):
        item = selectors.item_by_id(item_id=item_id)
    else:
        user, challenge = _media_user(request)
        if challenge is not None:
            return challenge
        item = selectors.item_by_id(item_id=item_id, with_dataset=True)
        if item is not None and item.dataset.role_of(user) is None:
            item = None  # no role looks like no item: an item's existence is private
    if item is None:
        return _error(404, "not_found", "Item not found.")
    return item


@require_safe
def item_media(request: HttpRequest, item_id: int, kind: MediaKind) -> HttpResponseBase:
    """Serve an item's original or thumbnail to a user with a role on its dataset.

    Local files stream from here; on S3 the response redirects to a short-lived presigned
    URL, so the bytes never pass through Django. A valid `sig` parameter (see
    `curation.storage.media_signed_url`) stands in for a login.
    """
    item = _media_item(request, item_id, kind)
    if isinstance(item, HttpResponse):
        return item
    key = media_key(item, kind)
    if not key:
        return _error(404, "not_found", f"This item has no {kind} in storage.")
    if storage_is_s3():
        response: HttpResponseBase = HttpResponseRedirect(media_presign(key))
        # A browser may reuse the redirect, but never past the presigned URL's lifetime.
        patch_cache_control(response, private=True, max_age=settings.MEDIA_URL_TTL // 2)
    else:
        response = _local_media_response(request, item, kind, key)
    patch_vary_headers(response, ["Authorization", "Cookie"])
    return response


def _local_media_response(
    request: HttpRequest, item: Item, kind: MediaKind, key: str
) -> HttpResponseBase:
    etag = media_etag(item, kind)
    if etag is not None:
        not_modified = get_conditional_response(request, etag=etag)
        if not_modified is not None:
            not_modified["ETag"] = etag
            patch_cache_control(not_modified, private=True, max_age=settings.MEDIA_CACHE_SECONDS)
            return not_modified
    try:
        handle = default_storage.open(key, "rb")
    except FileNotFoundError:
        return _error(404, "not_found", f"This item's {kind} is missing from storage.")
    response = FileResponse(handle, content_type=media_content_type(key))
    if etag is not None:
        response["ETag"] = etag
    patch_cache_control(response, private=True, max_age=settings.MEDIA_CACHE_SECONDS)
    return response


@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    """Service health for operators, load balancers and `manage.py serve`: 200 or 503.

    No login: it says only whether the parts are up (database, workers, queue depth, free
    disk), nothing about any dataset.
    """
    healthy, report = health_report()
    response = JsonResponse(report, status=200 if healthy else 503)
    patch_cache_control(response, no_store=True)
    return response


FAVICON = Path(__file__).resolve().parent / "static" / "curation" / "favicon.ico"


@require_safe
def favicon(request: HttpRequest) -> FileResponse:
    """/favicon.ico, which browsers and tools ask for whatever the page links: no login."""
    response = FileResponse(FAVICON.open("rb"), content_type="image/x-icon")
    patch_cache_control(response, public=True, max_age=86400)
    return response
