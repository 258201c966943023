"""Media in object storage: where an item's bytes live and the URLs that reach them.

Everything goes through Django's default storage (``settings.STORAGES["default"]``):
local files under the data directory, or an S3-compatible bucket (django-storages).

Two kinds of URL exist for an item's media:

- ``media_url``: the Django media view (``/media/items/<id>/original``). API responses and
  the UI show this one; the view checks the caller's role on every request, then streams
  a local file or redirects to a short-lived presigned S3 URL.
- ``media_signed_url``: a URL that works without credentials until it expires, for
  exports and hand-offs to tools that cannot send a token: a presigned S3 URL, or the
  media view with a signed ``sig`` parameter when storage is local.
"""

from __future__ import annotations

import hashlib
import mimetypes
import time
from typing import Any, Literal
from urllib.parse import urlencode

from django.conf import settings
from django.core import signing
from django.core.files.storage import default_storage, storages
from django.urls import reverse

from curation.models import Item

MediaKind = Literal["original", "thumbnail"]
MEDIA_KINDS: tuple[MediaKind, ...] = ("original", "thumbnail")

_SIGNING_SALT = "curation.media"


def storage_is_s3() -> bool:
    """Whether the default storage is the S3 backend (presigned URLs) or local files."""
    from storages.backends.s3 import S3Storage

    return isinstance(storages["default"], S3Storage)


def media_key(item: Item, kind: MediaKind) -> str:
    """The storage key of `item`'s original or thumbnail; empty when it has none."""
    if kind == "original":
        return item.media_key
    if kind == "thumbnail":
        return item.thumbnail_key
    raise ValueError(f"unknown media kind {kind!r}")


def media_content_type(key: str) -> str:
    content_type, _ = mimetypes.guess_type(key)
    return content_type or "application/octet-stream"


def media_exists(key: str) -> bool:
    """Whether `key` is present in the default storage (one HEAD request on S3)."""
    return bool(key) and default_storage.exists(key)


def media_etag(item: Item, kind: MediaKind) -> str | None:
    """A strong ETag for content-addressed media, or None where the content has no hash.

    Originals are identified by their SHA-256. A thumbnail is derived from the original,
    but its bytes also depend on the thumbnail settings, so its tag adds the thumbnail key
    and size; a regenerated thumbnail of another size gets another tag.
    """
    if not item.sha256:
        return None
    if kind == "original":
        return f'"{item.sha256}"'
    key = item.thumbnail_key
    try:
        size = default_storage.size(key)
    except OSError:  # FileNotFoundError included: no thumbnail file, no tag
        return None
    digest = hashlib.sha256(f"{item.sha256}:{key}:{size}".encode()).hexdigest()
    return f'"{digest}"'


def media_presign(key: str, *, ttl: int | None = None) -> str:
    """A presigned GET URL for `key` on S3, valid for `ttl` seconds (MEDIA_URL_TTL)."""
    if not storage_is_s3():
        raise RuntimeError("presigned URLs need the S3 storage backend")
    # S3Storage.url takes `expire`; the stubs type default_storage as the base Storage.
    return str(default_storage.url(key, expire=ttl or settings.MEDIA_URL_TTL))  # type: ignore[call-arg]


def media_path(item_id: int, kind: MediaKind) -> str:
    return reverse("item-media", kwargs={"item_id": item_id, "kind": kind})


def media_url(item: Item, kind: MediaKind, request: Any = None) -> str | None:
    """The authenticated media view's URL for `item` (absolute with `request`), or None."""
    if not media_key(item, kind):
        return None
    path = media_path(item.pk, kind)
    return request.build_absolute_uri(path) if request is not None else path


def media_signature(item_id: int, kind: MediaKind, *, ttl: int) -> str:
    """A token that lets the media view serve this one item's media for `ttl` seconds."""
    expires = int(time.time()) + ttl
    return signing.dumps([int(item_id), kind, expires], salt=_SIGNING_SALT, compress=False)


def media_signature_valid(signature: str, item_id: int, kind: MediaKind) -> bool:
    """Whether `signature` was made for this item and kind and has not expired."""
    try:
        payload = signing.loads(signature, salt=_SIGNING_SALT)
    except signing.BadSignature:
        return False
    if not isinstance(payload, list) or len(payload) != 3:
        return False
    signed_id, signed_kind, expires = payload
    return bool(signed_id == int(item_id) and signed_kind == kind and time.time() < expires)


def media_signed_url(
    item: Item, kind: MediaKind, *, ttl: int | None = None, request: Any = None
) -> str | None:
    """A URL that needs no credentials until it expires after `ttl` seconds, or None.

    For exports: a presigned URL on S3; with local storage, the media view with a signed,
    expiring `sig` parameter (absolute from `request`, else from SITE_URL).
    """
    key = media_key(item, kind)
    if not key:
        return None
    ttl = ttl or settings.MEDIA_URL_TTL
    if storage_is_s3():
        return media_presign(key, ttl=ttl)
    query = urlencode({"sig": media_signature(item.pk, kind, ttl=ttl)})
    path = f"{media_path(item.pk, kind)}?{query}"
    if request is not None:
        return str(request.build_absolute_uri(path))
    return settings.SITE_URL.rstrip("/") + path
