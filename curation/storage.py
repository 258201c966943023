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

An export names hundreds of thousands of media URLs: ``MediaUrls`` makes the same two
kinds, signed or plain, at a fraction of the per-URL cost. ``MediaLinks`` does the same
for ``media_url`` in one response (a list of items, search hits).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import mimetypes
import time
from typing import Any, Literal
from urllib.parse import urlencode

from django.conf import settings
from django.core import signing
from django.core.files.storage import default_storage, storages
from django.urls import reverse
from django.utils.encoding import force_bytes

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


def media_expiry(ttl: int) -> int:
    """The whole second after which a signature made now for `ttl` seconds is refused.

    Rounded up, never down: a URL asked for `ttl` seconds works for at least that long
    (for less than a second more), whatever the fraction of the second it was signed in.
    """
    return math.ceil(time.time() + ttl)


class MediaLinks:
    """media_url for many items of one request: the media view's URL is reversed (and made
    absolute, which validates the Host header) once per kind, then each item's id is put
    in. A list of 50 items names 100 media URLs; reversing each was a tenth of the page's
    CPU. Made per request (a serializer's), so the script prefix and host are the request's.
    """

    _SENTINEL = 987654321

    def __init__(self, request: Any = None) -> None:
        self.request = request
        self._parts: dict[MediaKind, tuple[str, str]] = {}

    def url(self, item: Item, kind: MediaKind) -> str | None:
        if not media_key(item, kind):
            return None
        parts = self._parts.get(kind)
        if parts is None:
            path = media_path(self._SENTINEL, kind)
            full = str(self.request.build_absolute_uri(path)) if self.request else path
            prefix, suffix = full.split(str(self._SENTINEL), 1)
            parts = self._parts[kind] = (prefix, suffix)
        return f"{parts[0]}{item.pk}{parts[1]}"


def media_signature(item_id: int, kind: MediaKind, *, ttl: int) -> str:
    """A token that lets the media view serve this one item's media for `ttl` seconds."""
    expires = media_expiry(ttl)
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


class MediaTokens:
    """The tokens media_signature makes, at a fraction of the cost.

    They are django.core.signing tokens ("<base64 JSON>:<base62 time>:<base64 HMAC>");
    Signer derives its HMAC key anew for every token, which is half the work when an
    export signs a million of them. Here the key is derived once. The first token is
    checked against signing.loads (what media_signature_valid uses); should Django's
    format ever differ, every token is made by Django's own signer instead.
    """

    def __init__(self, expires: int) -> None:
        self.expires = expires
        self._signer = signing.TimestampSigner(salt=_SIGNING_SALT)
        algorithm = self._signer.algorithm
        self._digest = getattr(hashlib, algorithm)
        self._key = self._digest(
            force_bytes(self._signer.salt) + b"signer" + force_bytes(self._signer.key)
        ).digest()
        self._stamp = self._signer.timestamp()
        self._fast = True
        probe = self.token(1)
        try:
            self._fast = signing.loads(probe, salt=_SIGNING_SALT) == [1, "original", expires]
        except signing.BadSignature:
            self._fast = False

    def token(self, item_id: int) -> str:
        if not self._fast:
            return self._signer.sign_object([item_id, "original", self.expires], compress=False)
        payload = f'[{int(item_id)},"original",{self.expires}]'.encode()
        value = f"{signing.b64_encode(payload).decode()}:{self._stamp}"
        mac = hmac.new(self._key, value.encode(), self._digest).digest()
        return f"{value}:{signing.b64_encode(mac).decode()}"


MediaUrlMode = Literal["signed", "plain"]
MEDIA_URL_MODES: tuple[MediaUrlMode, ...] = ("signed", "plain")


class MediaUrls:
    """The media URL each exported item names, in one of two modes.

    - ``signed``: works without credentials until it expires, as
      media_signed_url makes them (an S3 presigned URL, or the media view
      with a `sig` token). The signature carries its expiry, so two exports made at
      different times differ in these bytes.
    - ``plain``: the media view's URL with no signature; fetching it needs the caller's
      token or session. It never changes, which is what makes a frozen version's export
      the same file, byte for byte, whenever and however it is made.

    An export signs hundreds of thousands of URLs, so the per-URL work is cut down: the
    media view's URL is reversed once and ids filled in, and the expiry is fixed when the
    export starts. The media view checks the tokens with media_signature_valid.
    """

    _SENTINEL = 987654321

    def __init__(
        self,
        *,
        mode: MediaUrlMode = "signed",
        ttl: int | None = None,
        request: Any = None,
        base_url: str | None = None,
    ) -> None:
        self.mode = mode
        self.ttl = ttl or settings.MEDIA_URL_TTL
        self.s3 = storage_is_s3()
        path = media_path(self._SENTINEL, "original")
        if request is not None:
            url = str(request.build_absolute_uri(path))
        else:
            url = (base_url or settings.SITE_URL).rstrip("/") + path
        self.prefix, self.suffix = url.split(str(self._SENTINEL), 1)
        self.tokens = MediaTokens(media_expiry(self.ttl)) if mode == "signed" else None

    def url(self, item_id: int, media_key: str) -> str | None:
        if not media_key:
            return None
        if self.tokens is None:
            return f"{self.prefix}{item_id}{self.suffix}"
        if self.s3:
            # Presigned from the key itself: a frozen version's media stays reachable for
            # as long as the object exists.
            return media_presign(media_key, ttl=self.ttl)
        # Tokens are URL-safe base64 with ":" separators; ":" is what urlencode would quote.
        token = self.tokens.token(item_id).replace(":", "%3A")
        return f"{self.prefix}{item_id}{self.suffix}?sig={token}"


def request_base_url(request: Any) -> str:
    """The scheme and host a request reached the service by, for links made later."""
    return str(request.build_absolute_uri("/")).rstrip("/")
