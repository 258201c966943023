"""The UI keeps an uploaded query image only when ingest would accept it: a decodable
image of a supported format, within the byte and pixel limits."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from curation.models import Dataset

pytestmark = pytest.mark.django_db


def png(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(out, "PNG")
    return out.getvalue()


def upload(victor: User, dataset: Dataset, data: bytes) -> tuple[Any, list[str]]:
    client = Client()
    client.force_login(victor)
    response = client.post(
        f"/datasets/{dataset.pk}/search/image",
        {"image": SimpleUploadedFile("q.png", data, content_type="image/png")},
    )
    return response, [str(m) for m in get_messages(response.wsgi_request)]


def nothing_stored(dataset: Dataset) -> bool:
    return not default_storage.exists(f"datasets/{dataset.pk}/uploads/search")


def test_a_truncated_image_is_refused_and_not_stored(victor: User, dataset: Dataset) -> None:
    data = png((64, 64))

    response, shown = upload(victor, dataset, data[: len(data) // 2])

    assert response.status_code == 302 and "image=" not in response["Location"]
    assert len(shown) == 1 and shown[0].startswith("image: is corrupt or truncated")
    assert nothing_stored(dataset)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_an_image_over_the_pixel_limit_is_refused_and_not_stored(
    victor: User, dataset: Dataset, settings: Any
) -> None:
    settings.NUCLEUS_MAX_IMAGE_PIXELS = 64 * 64 - 1

    response, shown = upload(victor, dataset, png((64, 64)))

    assert "image=" not in response["Location"]
    assert len(shown) == 1 and "NUCLEUS_MAX_IMAGE_PIXELS" in shown[0]
    assert nothing_stored(dataset)


def test_an_image_over_the_byte_limit_is_refused_and_not_stored(
    victor: User, dataset: Dataset, settings: Any
) -> None:
    data = png((64, 64))
    settings.NUCLEUS_MAX_IMAGE_BYTES = len(data) - 1

    response, shown = upload(victor, dataset, data)

    assert "image=" not in response["Location"]
    assert len(shown) == 1 and "bytes" in shown[0]
    assert nothing_stored(dataset)


def test_a_valid_image_is_kept_under_its_hash(victor: User, dataset: Dataset) -> None:
    response, shown = upload(victor, dataset, png((64, 64)))

    assert shown == [] and "image=" in response["Location"]
    assert not nothing_stored(dataset)
