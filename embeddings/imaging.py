"""Decode images into the model's input: RGB, shortest side resized, centre cropped.

This reproduces open_clip's default preprocessing (Resize(size, bicubic) on the shortest
side, CenterCrop(size)) in Pillow alone, so worker threads hand the model a ready uint8
array and normalisation runs once per batch on the model's device. JPEGs are decoded with
`draft()`, which asks libjpeg for a 1/2, 1/4 or 1/8 scale that is still at least the
model's input size: a 4000x3000 photo decodes about 50 times faster that way.
"""

from __future__ import annotations

import io

import numpy as np
from django.conf import settings
from PIL import Image, ImageOps


class DecodeError(Exception):
    pass


def pixels_decode(data: bytes, size: int) -> np.ndarray:
    """Decode image bytes into a (size, size, 3) uint8 array, upright."""
    Image.MAX_IMAGE_PIXELS = settings.NUCLEUS_MAX_IMAGE_PIXELS
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > settings.NUCLEUS_MAX_IMAGE_PIXELS:
                raise DecodeError(f"image is {im.width}x{im.height} pixels, over the limit")
            if im.format == "JPEG":
                # EXIF rotation swaps width and height; request the short side either way.
                im.draft("RGB", (size, size))
            im = ImageOps.exif_transpose(im)
            if im.mode != "RGB":
                im = im.convert("RGB")
            return _resize_crop(im, size)
    except DecodeError:
        raise
    except Exception as exc:  # Pillow signals bad data in many ways
        raise DecodeError(f"cannot decode image: {exc}") from None


def _resize_crop(im: Image.Image, size: int) -> np.ndarray:
    width, height = im.size
    # torchvision's Resize(int) computes the long side exactly like this.
    if width <= height:
        new = (size, int(size * height / width))
    else:
        new = (int(size * width / height), size)
    if new != (width, height):
        im = im.resize(new, Image.Resampling.BICUBIC, reducing_gap=None)
    left = round((new[0] - size) / 2.0)
    top = round((new[1] - size) / 2.0)
    if new != (size, size):
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
