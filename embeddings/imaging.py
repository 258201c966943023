"""Decode images into the model's input: RGB, shortest side resized, centre cropped.

This reproduces open_clip's default preprocessing (Resize(size, bicubic) on the shortest
side, CenterCrop(size)) in Pillow alone, so worker threads hand the model a ready uint8
array and normalisation runs once per batch on the model's device. JPEGs are decoded with
`draft()`, which asks libjpeg for a 1/2, 1/4 or 1/8 scale that is still at least the
model's input size: a 4000x3000 photo decodes about 50 times faster that way.

An image longer than MAX_RESIZE_RATIO times its width (or the reverse) is cropped to the
centre region first and only that is resampled: resizing the whole of a 10x1,000,000 PNG
(a few KB on disk) would allocate a 224x22,400,000 intermediate, 15 GB.
"""

from __future__ import annotations

import io

import numpy as np
from django.conf import settings
from PIL import Image, ImageOps

from curation.media import OPEN_FORMATS

# Up to this aspect ratio the image is resized whole, then cropped, exactly as open_clip
# does (the intermediate is at most size x 16 size); past it only the kept centre is.
MAX_RESIZE_RATIO = 16


class DecodeError(Exception):
    pass


def pixels_decode(data: bytes, size: int) -> np.ndarray:
    """Decode image bytes into a (size, size, 3) uint8 array, upright."""
    try:
        with Image.open(io.BytesIO(data), formats=OPEN_FORMATS) as im:
            if im.width * im.height > settings.NUCLEUS_MAX_IMAGE_PIXELS:
                raise DecodeError(f"image is {im.width}x{im.height} pixels, over the limit")
            if im.format == "JPEG":
                # EXIF rotation swaps width and height; request the short side either way.
                im.draft("RGB", (size, size))
            upright = ImageOps.exif_transpose(im)
            if upright.mode != "RGB":
                upright = upright.convert("RGB")
            return _resize_crop(upright, size)
    except DecodeError:
        raise
    except Exception as exc:  # Pillow signals bad data in many ways
        raise DecodeError(f"cannot decode image: {exc}") from None


def _resized(width: int, height: int, size: int) -> tuple[int, int]:
    """The size torchvision's Resize(size) gives: short side `size`, long side truncated."""
    if width <= height:
        return size, int(size * height / width)
    return int(size * width / height), size


def crop_box(width: int, height: int, size: int) -> tuple[float, float, float, float]:
    """The source region that Resize(size) on the short side then CenterCrop(size) keeps."""
    resized = _resized(width, height, size)
    left = round((resized[0] - size) / 2.0)
    top = round((resized[1] - size) / 2.0)
    scale_x, scale_y = width / resized[0], height / resized[1]
    return (
        left * scale_x,
        top * scale_y,
        min(width, (left + size) * scale_x),
        min(height, (top + size) * scale_y),
    )


def _resize_crop(im: Image.Image, size: int) -> np.ndarray:
    resized = _resized(im.width, im.height, size)
    if max(resized) > MAX_RESIZE_RATIO * size:
        # Resample only the centre region into the model's input. Pillow may run its two
        # passes in another order than for the full image, so pixels can differ from
        # open_clip's by a few grey levels; for such shapes that is a fair price.
        box = crop_box(im.width, im.height, size)
        im = im.resize((size, size), Image.Resampling.BICUBIC, box=box, reducing_gap=None)
        return np.array(im, dtype=np.uint8)
    if resized != im.size:
        im = im.resize(resized, Image.Resampling.BICUBIC, reducing_gap=None)
    left = round((resized[0] - size) / 2.0)
    top = round((resized[1] - size) / 2.0)
    if resized != (size, size):
        im = im.crop((left, top, left + size, top + size))
    return np.array(im, dtype=np.uint8)


def thumbnail_suffices(width: int | None, height: int | None, thumb_side: int, size: int) -> bool:
    """Whether a thumbnail `thumb_side` px on its long side has a short side >= `size`."""
    if not width or not height:
        return False
    long_side, short_side = max(width, height), min(width, height)
    if long_side <= thumb_side:
        return short_side >= size  # the thumbnail was not scaled down
    return short_side * thumb_side / long_side >= size
