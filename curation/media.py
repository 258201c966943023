"""Image processing at ingest: check, measure, hash, thumbnail and store an image.

Originals are stored content-addressed per dataset, ``datasets/<id>/media/<sha[:2]>/<sha><ext>``,
and thumbnails at ``datasets/<id>/thumbs/<sha>.webp``; the same bytes are stored once,
and a re-run finds them already there. A query image uploaded for a search is read here
too, with the same size limit.
"""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image, UnidentifiedImageError

from curation.bulk.validate import Media
from curation.errors import invalid_field
from curation.phash import perceptual_hashes
from curation.quality import Quality, image_quality, working_copy

# Formats ingest opens. Image.open() is limited to these, so Pillow never hands data to a
# rarely used (or external) decoder.
OPEN_FORMATS = ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"]
# The extension of a stored original, by the format Pillow found.
FORMATS = {
    "JPEG": ".jpg",
    "MPO": ".jpg",  # multi-picture JPEG (opened as JPEG), as phones write
    "PNG": ".png",
    "WEBP": ".webp",
    "GIF": ".gif",
    "BMP": ".bmp",
    "TIFF": ".tif",
}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")

_EXIF_ORIENTATION = 0x0112
# EXIF orientation -> the transpose that shows the image upright (as ImageOps.exif_transpose).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class MediaError(Exception):
    """An image that cannot be ingested: not an image, corrupt, too big, a bomb."""


@dataclass
class Decoded:
    width: int  # as displayed, EXIF orientation applied
    height: int
    extension: str
    thumbnail: bytes
    phash: int
    phash_detail: bytes
    quality: Quality | None  # None when NUCLEUS_INGEST_QUALITY is off


def media_keys(dataset_id: int, sha256: str, extension: str) -> tuple[str, str]:
    """Storage keys of an original and its thumbnail."""
    return (
        f"datasets/{dataset_id}/media/{sha256[:2]}/{sha256}{extension}",
        f"datasets/{dataset_id}/thumbs/{sha256}.webp",
    )


def _check_pixels(size: tuple[int, int]) -> None:
    limit = settings.NUCLEUS_MAX_IMAGE_PIXELS
    if size[0] * size[1] > limit:
        raise MediaError(
            f"image is {size[0]}x{size[1]} pixels, over the limit of {limit} "
            "(NUCLEUS_MAX_IMAGE_PIXELS); refused as a possible decompression bomb"
        )


def image_decode(data: bytes) -> Decoded:
    """Decode `data` fully (no truncated or corrupt image passes) and make its thumbnail."""
    # Pillow's own bomb check warns above MAX_IMAGE_PIXELS (set once, in CurationConfig)
    # and raises above twice that. _check_pixels() refuses everything over the configured
    # limit right after the header is read and before any pixel is decoded, which treats
    # the warning as the error it is without touching the process-wide (and thread-unsafe)
    # warning filters.
    try:
        with Image.open(io.BytesIO(data), formats=OPEN_FORMATS) as im:
            _check_pixels(im.size)
            image_format = str(im.format)
            im.verify()  # structural checks (e.g. PNG chunk CRCs) that decoding skips
        # verify() leaves the image unusable: open again to decode the pixels.
        with Image.open(io.BytesIO(data), formats=OPEN_FORMATS) as im:
            _check_pixels(im.size)
            im.load()
            width, height = im.size
            try:
                orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1))
            except Exception:  # a broken EXIF block does not make a broken image
                orientation = 1
            if orientation in (5, 6, 7, 8):
                width, height = height, width
            thumbnail = _thumbnail(im, orientation)
            # One small upright copy serves both the hashes and the quality signals.
            small = _small_upright(im, orientation)
            phash, phash_detail = perceptual_hashes(small)
            quality = (
                image_quality(small, width=width, height=height)
                if settings.NUCLEUS_INGEST_QUALITY
                else None
            )
    except MediaError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MediaError(f"refused as a possible decompression bomb: {exc}") from None
    except UnidentifiedImageError:
        raise MediaError(
            "is not an image in a supported format (JPEG, PNG, WebP, GIF, BMP, TIFF)"
        ) from None
    except Exception as exc:
        # Pillow reports bad data in many ways (OSError, SyntaxError, ValueError, ...):
        # whatever it raises while decoding untrusted bytes means this image is corrupt.
        raise MediaError(f"is corrupt or truncated: {exc}") from None
    return Decoded(width, height, FORMATS[image_format], thumbnail, phash, phash_detail, quality)


def _small_upright(im: Image.Image, orientation: int) -> Image.Image:
    """The small upright copy (curation.quality.working_copy, at most 256 pixels on the
    long side) that the perceptual hashes and the quality signals are computed from."""
    small = working_copy(im)
    if orientation in _UPRIGHT:
        small = small.transpose(_UPRIGHT[orientation])
    return small


def _stored_small(data: bytes) -> tuple[Image.Image, int, int] | None:
    """The small upright copy of stored image bytes and the displayed size; None if the
    bytes no longer decode."""
    try:
        with Image.open(io.BytesIO(data), formats=OPEN_FORMATS) as im:
            _check_pixels(im.size)
            im.load()
            width, height = im.size
            try:
                orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1))
            except Exception:  # a broken EXIF block does not make a broken image
                orientation = 1
            if orientation in (5, 6, 7, 8):
                width, height = height, width
            return _small_upright(im, orientation), width, height
    except Exception:  # whatever Pillow raises on bad bytes: nothing, as for no image
        return None


def stored_upright(data: bytes, *, long_side: int) -> tuple[Image.Image, int, int] | None:
    """Stored image bytes decoded upright in RGB, reduced while decoding (JPEG's draft:
    powers of two, so no finer than needed) towards `long_side` pixels on the long side but
    never below it, and the displayed size of the original; None if the bytes no longer
    decode. For measures of regions of the picture (insights' object features)."""
    try:
        with Image.open(io.BytesIO(data), formats=OPEN_FORMATS) as im:
            _check_pixels(im.size)
            full = im.size
            scale = max(full) / long_side
            if scale >= 2:
                im.draft("RGB", (full[0] // int(scale), full[1] // int(scale)))
            rgb = im.convert("RGB")
            try:
                orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1))
            except Exception:  # a broken EXIF block does not make a broken image
                orientation = 1
        width, height = full
        if orientation in _UPRIGHT:
            rgb = rgb.transpose(_UPRIGHT[orientation])
        if orientation in (5, 6, 7, 8):
            width, height = height, width
        return rgb, width, height
    except Exception:  # whatever Pillow raises on bad bytes: nothing, as for no image
        return None


def media_phashes(data: bytes) -> tuple[int, bytes] | None:
    """The perceptual hashes of stored image bytes, as ingest computes them; None if the
    bytes no longer decode (the duplicates job fills in items ingested before hashes)."""
    found = _stored_small(data)
    return None if found is None else perceptual_hashes(found[0])


def media_quality(data: bytes) -> Quality | None:
    """The quality signals of stored image bytes, as ingest computes them; None if the
    bytes no longer decode (the quality job fills in items ingested before there were any)."""
    found = _stored_small(data)
    if found is None:
        return None
    small, width, height = found
    try:
        return image_quality(small, width=width, height=height)
    except Exception:  # NumPy on pixels Pillow decoded: nothing expected, no value either
        return None


def _thumbnail(im: Image.Image, orientation: int) -> bytes:
    """A WebP thumbnail, NUCLEUS_THUMBNAIL_SIZE on its long side, shown upright."""
    if im.mode not in ("RGB", "RGBA"):
        transparent = im.mode in ("LA", "PA", "RGBa", "La") or "transparency" in im.info
        im = im.convert("RGBA" if transparent else "RGB")
    size = settings.NUCLEUS_THUMBNAIL_SIZE
    im.thumbnail((size, size), Image.Resampling.LANCZOS)
    if orientation in _UPRIGHT:
        im = im.transpose(_UPRIGHT[orientation])
    out = io.BytesIO()
    im.save(out, "WEBP", quality=80, method=4)
    return out.getvalue()


def storage_put(key: str, data: bytes) -> None:
    """Store `data` under `key` unless a whole copy is there already (keys are content-addressed).

    A stored object of another size is a torn write (a worker killed while writing, before
    writes were atomic) and is written again, so a resumed ingest never records a hash
    that the stored bytes do not have.
    """
    exists = default_storage.exists(key)
    if exists and default_storage.size(key) == len(data):
        return
    try:
        final = default_storage.path(key)
    except NotImplementedError:  # object storage: an upload lands whole or not at all
        final = None
    if final is not None:
        _local_put(key, final, data)
        return
    if exists:
        default_storage.delete(key)
    name = default_storage.save(key, ContentFile(data))
    if name != key:
        # A storage that renames on a clash: another worker stored the same bytes first.
        default_storage.delete(name)


def _local_put(key: str, final: str, data: bytes) -> None:
    """Write a local file under a temporary name, then rename it over `key` in one step.

    Local storage writes straight into the file it names: a crash mid-write would leave a
    partial file under the final key. A rename within one folder is atomic, so readers
    and later runs see either no file or the whole one.
    """
    temp = f"{key}.{uuid.uuid4().hex}.part"
    try:
        saved = default_storage.save(temp, ContentFile(data))
        os.replace(default_storage.path(saved), final)
    except BaseException:
        default_storage.delete(temp)  # a process killed here leaves only this .part file
        raise


def media_process(*, dataset_id: int, data: bytes, source_uri: str) -> Media:
    """Check, measure and hash an image, then store it and its thumbnail.

    Does storage I/O: call it outside database transactions.
    """
    limit = settings.NUCLEUS_MAX_IMAGE_BYTES
    if len(data) > limit:
        raise MediaError(f"is {len(data)} bytes, over the limit of {limit}")
    if not data:
        raise MediaError("is empty")
    decoded = image_decode(data)
    sha256 = hashlib.sha256(data).hexdigest()
    media_key, thumbnail_key = media_keys(dataset_id, sha256, decoded.extension)
    storage_put(media_key, data)
    storage_put(thumbnail_key, decoded.thumbnail)
    return Media(
        media_key=media_key,
        thumbnail_key=thumbnail_key,
        source_uri=source_uri,
        width=decoded.width,
        height=decoded.height,
        sha256=sha256,
        byte_size=len(data),
        phash=decoded.phash,
        phash_detail=decoded.phash_detail,
        quality=decoded.quality,
    )


def image_upload_read(upload: Any) -> bytes:
    """The bytes of an uploaded query image; too big ones are refused before being read."""
    limit = int(settings.NUCLEUS_MAX_IMAGE_BYTES)
    message = f"is larger than {limit} bytes (NUCLEUS_MAX_IMAGE_BYTES)"
    if (getattr(upload, "size", None) or 0) > limit:
        raise invalid_field("image", message)
    data = bytes(upload.read(limit + 1))  # the size an upload claims is not to be trusted
    if len(data) > limit:
        raise invalid_field("image", message)
    if not data:
        raise invalid_field("image", "is empty")
    return data
