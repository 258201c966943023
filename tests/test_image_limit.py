"""One caller's image-size limit never leaks into another's (found by a random test order:
a test's tiny limit, left in Pillow's process-wide setting, broke the demo's drawing)."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings as django_settings
from PIL import Image

from curation.media import MediaError, image_decode
from embeddings.imaging import DecodeError, pixels_decode
from tests.ingest_support import image_bytes


def test_a_small_limit_refuses_without_changing_pillows_setting(settings: Any) -> None:
    before = Image.MAX_IMAGE_PIXELS
    settings.NUCLEUS_MAX_IMAGE_PIXELS = 64 * 48 - 1
    with pytest.raises(MediaError, match="NUCLEUS_MAX_IMAGE_PIXELS"):
        image_decode(image_bytes((64, 48)))
    with pytest.raises(DecodeError, match="over the limit"):
        pixels_decode(image_bytes((64, 48)), 32)
    assert before == Image.MAX_IMAGE_PIXELS
    settings.NUCLEUS_MAX_IMAGE_PIXELS = 64 * 48
    assert image_decode(image_bytes((64, 48))).width == 64
    assert pixels_decode(image_bytes((64, 48)), 32).shape == (32, 32, 3)


def test_pillows_setting_is_the_configured_limit() -> None:
    assert Image.MAX_IMAGE_PIXELS == django_settings.NUCLEUS_MAX_IMAGE_PIXELS
