"""Query images for the UI's search by image: kept in storage, content-addressed, so that
a search by image has a shareable URL. The search itself is a vector panel
(curation.ui.extensions), which the embeddings app fills."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from curation.errors import InvalidInput, NotFound, field_error
from curation.media import MediaError, image_decode
from curation.models import Dataset


def _image_key(dataset: Dataset, digest: str) -> str:
    return f"datasets/{dataset.pk}/uploads/search/{digest}"


def query_image_store(*, dataset: Dataset, data: bytes) -> str:
    """Keep a query image (content-addressed, so storing it twice is harmless); its hash."""
    if not data:
        raise InvalidInput("image: the file is empty", fields=[field_error("image", "is empty")])
    if len(data) > settings.NUCLEUS_MAX_IMAGE_BYTES:
        message = f"is larger than {settings.NUCLEUS_MAX_IMAGE_BYTES} bytes"
        raise InvalidInput(f"image: {message}", fields=[field_error("image", message)])
    # Only what ingest would accept is kept: stored uploads outlive the request, so
    # arbitrary bytes (or a decompression bomb) must not get a place in storage.
    try:
        image_decode(data)
    except MediaError as exc:
        raise InvalidInput(f"image: {exc}", fields=[field_error("image", str(exc))]) from None
    digest = hashlib.sha256(data).hexdigest()
    key = _image_key(dataset, digest)
    if not default_storage.exists(key):
        default_storage.save(key, ContentFile(data))
    return digest


def query_image_read(*, dataset: Dataset, digest: str) -> bytes:
    """A stored query image's bytes; a 404 once it is gone."""
    try:
        with default_storage.open(_image_key(dataset, digest), "rb") as handle:
            return bytes(handle.read())
    except (FileNotFoundError, OSError):
        raise NotFound("The query image of this link is no longer stored; pick it again.") from None
