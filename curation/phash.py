"""Perceptual hashes of an image, computed at ingest: what finds its re-encoded, resized,
recoloured and cropped copies without any learned weights.

Two DCT hashes (ImageHash's pHash) per image, each of the whole picture and of three
centred crops (94%, 88% and 82% of each side):

- `phash`: the 64-bit hash of the whole picture, a signed bigint column. Its Hamming
  distance is what the duplicates job searches by (an index over it), comparing one
  item's four 64-bit hashes against the others' whole-picture hash.
- `phash_detail`: the other three 64-bit hashes, then the four 256-bit hashes
  (hash_size 16): the finer hashes confirm a candidate pair at the smallest distance over
  the 4 x 4 pairs of crops.

Why crops and a second, finer hash, measured on the demo (2000 street scenes, seeds 1-3,
20 planted near copies each): the whole-picture 64-bit hash at Hamming <= 8 found 18-20
of 20 copies but also 36-41 false pairs (the scenes share a layout: sky, skyline, road),
and it missed crops: a copy cropped by 4 px to 1/16 of each side moves every DCT
coefficient. Taking the smallest distance over the crops found 20 of 20 at <= 8 as
candidates; the 256-bit hashes, compared over the 4 x 4 crop pairs, then separate them:
true pairs lay at 0-38 bits except a few crops (50-56), false candidates mostly above 48.
The job keeps pairs within 52 (NUCLEUS_DUPLICATE_HASH_DISTANCE): on 2000 items, seeds 0-3,
19-20 of 20 near copies found and 3-12 false groups.
"""

from __future__ import annotations

import imagehash
import numpy as np
from PIL import Image

CROPS = (1.0, 0.94, 0.88, 0.82)
# Hashes are taken from a copy at most this large: the DCTs read 32x32 and 64x64 pixels,
# so a bigger source changes nothing but the time spent shrinking it.
_WORKING_SIZE = 256
_COARSE_BYTES = 8
_FINE_BYTES = 32
DETAIL_BYTES = (len(CROPS) - 1) * _COARSE_BYTES + len(CROPS) * _FINE_BYTES


def _bits(h: imagehash.ImageHash) -> bytes:
    return bytes(np.packbits(np.asarray(h.hash, dtype=bool).flatten()))


def _signed(data: bytes) -> int:
    return int.from_bytes(data, "big", signed=True)


def perceptual_hashes(im: Image.Image) -> tuple[int, bytes]:
    """The whole-picture 64-bit pHash (as a signed bigint) and the detail bytes of `im`."""
    im = im.convert("RGB")
    if max(im.size) > _WORKING_SIZE:
        im = im.copy()
        im.thumbnail((_WORKING_SIZE, _WORKING_SIZE), Image.Resampling.BILINEAR)
    width, height = im.size
    coarse: list[bytes] = []
    fine: list[bytes] = []
    for scale in CROPS:
        part = im
        if scale < 1:
            left, top = width * (1 - scale) / 2, height * (1 - scale) / 2
            part = im.crop((round(left), round(top), round(width - left), round(height - top)))
        coarse.append(_bits(imagehash.phash(part, hash_size=8)))
        fine.append(_bits(imagehash.phash(part, hash_size=16)))
    return _signed(coarse[0]), b"".join(coarse[1:] + fine)


def coarse_hashes(phash: int, detail: bytes) -> list[int]:
    """The four 64-bit hashes (whole picture first) as signed bigints."""
    rest = [
        _signed(detail[i : i + _COARSE_BYTES])
        for i in range(0, (len(CROPS) - 1) * _COARSE_BYTES, _COARSE_BYTES)
    ]
    return [phash, *rest]


def _fine(detail: bytes) -> np.ndarray:
    start = (len(CROPS) - 1) * _COARSE_BYTES
    raw = np.frombuffer(detail[start : start + len(CROPS) * _FINE_BYTES], dtype=np.uint8)
    return np.unpackbits(raw).reshape(len(CROPS), _FINE_BYTES * 8).astype(bool)


def fine_distance(a: bytes, b: bytes) -> int:
    """The smallest Hamming distance (of 256 bits) between any crop of one and of the other."""
    fa, fb = _fine(a), _fine(b)
    return int((fa[:, None, :] != fb[None, :, :]).sum(axis=2).min())
