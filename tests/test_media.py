"""Image processing at ingest: measure, hash, thumbnail, store (whole files only); refuse
what is not a sound image of a reasonable size."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage
from PIL import Image

from curation.media import MediaError, media_keys, media_process
from tests.ingest_support import image_bytes, noisy_png, png_bomb, truncated_jpeg


def _stored_image(key: str) -> Image.Image:
    with default_storage.open(key, "rb") as f:
        im = Image.open(io.BytesIO(f.read()))
        im.load()
        return im


def test_it_measures_hashes_and_stores_an_image(_media_in_tmp: Path) -> None:
    data = image_bytes((64, 48), "JPEG", seed="one")
    media = media_process(dataset_id=7, data=data, source_uri="/import/one.jpg")

    sha = hashlib.sha256(data).hexdigest()
    assert (media.width, media.height, media.sha256, media.byte_size) == (64, 48, sha, len(data))
    assert media.media_key == f"datasets/7/media/{sha[:2]}/{sha}.jpg"
    assert media.thumbnail_key == f"datasets/7/thumbs/{sha}.webp"
    assert media.source_uri == "/import/one.jpg"
    assert (_media_in_tmp / media.media_key).read_bytes() == data
    thumb = _stored_image(media.thumbnail_key)
    assert (thumb.format, thumb.size) == ("WEBP", (64, 48))


def test_it_names_the_original_by_its_real_format() -> None:
    media = media_process(dataset_id=1, data=image_bytes(fmt="PNG"), source_uri="x.jpg")
    assert media.media_key.endswith(".png")


def test_it_makes_thumbnails_of_the_configured_long_side(settings: Any) -> None:
    settings.NUCLEUS_THUMBNAIL_SIZE = 32
    media = media_process(dataset_id=1, data=image_bytes((200, 100), "PNG"), source_uri="x")
    assert _stored_image(media.thumbnail_key).size == (32, 16)
    assert (media.width, media.height) == (200, 100)


def test_it_applies_exif_orientation() -> None:
    # Orientation 6: stored 64 wide and 48 high, shown rotated a quarter turn.
    data = image_bytes((64, 48), "JPEG", orientation=6)
    media = media_process(dataset_id=1, data=data, source_uri="x")
    assert (media.width, media.height) == (48, 64)
    assert _stored_image(media.thumbnail_key).size == (48, 64)


def test_it_stores_the_same_bytes_once(monkeypatch: pytest.MonkeyPatch) -> None:
    data = image_bytes(seed="same")
    first = media_process(dataset_id=1, data=data, source_uri="a")

    def no_save(*args: Any, **kwargs: Any) -> str:
        raise AssertionError("stored again")

    monkeypatch.setattr(FileSystemStorage, "save", no_save)
    second = media_process(dataset_id=1, data=data, source_uri="b")
    assert (second.media_key, second.thumbnail_key) == (first.media_key, first.thumbnail_key)


def test_it_rewrites_an_original_left_half_written(_media_in_tmp: Path) -> None:
    data = image_bytes((300, 200), seed="torn")
    key, _ = media_keys(1, hashlib.sha256(data).hexdigest(), ".jpg")
    # As a worker killed mid-write (before writes were atomic) left it.
    default_storage.save(key, ContentFile(data[: len(data) // 3]))

    media = media_process(dataset_id=1, data=data, source_uri="x")

    assert media.media_key == key
    assert (_media_in_tmp / key).read_bytes() == data
    assert sorted(p.name for p in (_media_in_tmp / key).parent.iterdir()) == [Path(key).name]


class Crash(BaseException):
    """Stands for the worker being killed in the middle of writing a file."""


def test_a_write_that_dies_halfway_leaves_nothing_under_the_key(
    _media_in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = image_bytes((300, 200), seed="dies")
    real_save = FileSystemStorage._save

    def save_half_then_die(self: FileSystemStorage, name: str, content: Any) -> str:
        real_save(self, name, ContentFile(content.read()[: len(data) // 2]))
        raise Crash()

    monkeypatch.setattr(FileSystemStorage, "_save", save_half_then_die)
    with pytest.raises(Crash):
        media_process(dataset_id=1, data=data, source_uri="x")
    monkeypatch.undo()

    key, _ = media_keys(1, hashlib.sha256(data).hexdigest(), ".jpg")
    assert not default_storage.exists(key)
    assert not list((_media_in_tmp / key).parent.iterdir())
    media_process(dataset_id=1, data=data, source_uri="x")
    assert (_media_in_tmp / key).read_bytes() == data


def test_keys_are_per_dataset() -> None:
    assert media_keys(1, "ab" * 32, ".jpg")[0] != media_keys(2, "ab" * 32, ".jpg")[0]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (truncated_jpeg(), "corrupt or truncated"),
        (b"just some notes, not a picture\n", "not an image"),
        (b"", "empty"),
        (png_bomb(100_000, 100_000), "decompression bomb"),
    ],
    ids=["truncated-jpeg", "text", "empty", "png-bomb-header"],
)
def test_it_refuses_what_is_not_a_sound_image(
    data: bytes, message: str, _media_in_tmp: Path
) -> None:
    with pytest.raises(MediaError, match=message):
        media_process(dataset_id=1, data=data, source_uri="x")
    assert not (_media_in_tmp / "datasets").exists()


def test_it_refuses_images_over_the_pixel_limit(settings: Any) -> None:
    # Just over the limit, where Pillow itself would only warn: still refused.
    settings.NUCLEUS_MAX_IMAGE_PIXELS = 64 * 48 - 1
    with pytest.raises(MediaError, match="decompression bomb"):
        media_process(dataset_id=1, data=image_bytes((64, 48)), source_uri="x")


def test_it_refuses_files_over_the_byte_limit(settings: Any) -> None:
    data = noisy_png()
    settings.NUCLEUS_MAX_IMAGE_BYTES = len(data) - 1
    with pytest.raises(MediaError, match="over the limit"):
        media_process(dataset_id=1, data=data, source_uri="x")


def test_it_refuses_formats_it_does_not_take() -> None:
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "PPM")
    with pytest.raises(MediaError, match="supported format"):
        media_process(dataset_id=1, data=out.getvalue(), source_uri="x")
