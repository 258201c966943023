"""A query image uploaded to the search API is refused by its size before it is read, and
decoded only in the formats ingest accepts."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from rest_framework.test import APIClient

from curation.errors import InvalidInput
from curation.media import image_upload_read
from curation.models import Dataset
from tests.api_helpers import error_of, url
from tests.embedding_factories import custom_model, items_with_vectors, jpeg_bytes

Client = Callable[[User | None], APIClient]


def test_the_api_refuses_an_upload_over_the_byte_limit(
    client_for: Client, victor: User, dataset: Dataset, settings: Any
) -> None:
    model = custom_model(dataset, 4)
    items_with_vectors(dataset, model, np.eye(4, dtype=np.float32), index=False)
    data = jpeg_bytes(1)
    settings.NUCLEUS_MAX_IMAGE_BYTES = len(data) - 1

    response = client_for(victor).post(
        url(dataset, "search/image"),
        {"image": SimpleUploadedFile("q.jpg", data, content_type="image/jpeg")},
        format="multipart",
    )

    error = error_of(response, 400)
    assert [f["path"] for f in error["fields"]] == ["image"]
    assert "NUCLEUS_MAX_IMAGE_BYTES" in error["message"]


class _Lying(io.BytesIO):
    """An upload that claims to be smaller than it is."""

    size = 1


def test_it_never_reads_more_than_the_limit_and_one_byte(settings: Any) -> None:
    settings.NUCLEUS_MAX_IMAGE_BYTES = 100
    upload = _Lying(b"x" * 10_000)

    with pytest.raises(InvalidInput) as raised:
        image_upload_read(upload)

    assert raised.value.fields[0]["path"] == "image"
    assert upload.tell() == 101


def test_it_refuses_an_empty_upload() -> None:
    with pytest.raises(InvalidInput, match="empty"):
        image_upload_read(SimpleUploadedFile("q.jpg", b"", content_type="image/jpeg"))


def test_it_reads_an_upload_within_the_limit() -> None:
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "PNG")

    assert image_upload_read(SimpleUploadedFile("q.png", out.getvalue())) == out.getvalue()
