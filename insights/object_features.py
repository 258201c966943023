"""Features of the ground-truth objects of one image, from the pixels and the boxes alone
(pure: NumPy and Pillow, no database, no model predictions). See docs/insights.md,
"Labels unlike their look".

They feed two classifiers trained on the dataset's own labels (insights/label_look.py):
one that tells an object's class from how it looks, one that tells a well-fitted box from
one shifted off its object. They are hand-made on purpose. With real CLIP weights the
natural feature of a crop is its embedding; the machines this service is tested on have
only random weights, whose embeddings mean nothing, and the service does not embed
objects (only items). What is here means something whatever the weights:

- geometry relative to the image: size, aspect ratio, position, the bottom row (in a
  street scene an object's physical size is its height against how low it stands), the
  borders it touches, and the products of the main ones (so a linear classifier sees
  "tall for how low it stands");
- appearance of the crop: mean and spread of each colour channel, an 8-bin colour
  histogram (each channel dark or bright), gradient (edge) strength and direction, and
  a 4 x 4 thumbnail of colour and edge strength (the "tiny crop");
- fit: for each side of the box, how the colour just inside differs from just outside,
  and the edge strength on the border and either side of it; the differences between the
  box's halves (a box shifted by part of its width holds background on one side).

Every region mean is four look-ups in a summed-area table, so all boxes of an image cost
one pass over its pixels plus O(boxes) work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GRID = 4
# Outside strips reach this share of the box's size beyond each side; inside bands this share in.
RING = 0.25
BAND = 0.15
# The strip straddling a side is this share of the size wide on each side of it.
EDGE = 0.06
_EPS = 1e-3


def _integral(planes: np.ndarray) -> np.ndarray:
    """Summed-area table of (H, W, C) planes, (H + 1, W + 1, C), float64."""
    h, w, c = planes.shape
    out = np.zeros((h + 1, w + 1, c), dtype=np.float64)
    out[1:, 1:] = planes.cumsum(axis=0, dtype=np.float64).cumsum(axis=1)
    return out


def _mean(
    table: np.ndarray, x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray
) -> np.ndarray:
    """Mean of each plane over [x0, x1) x [y0, y1), coordinates clipped to the image and
    widened to one pixel at least; any shape of coordinate arrays, planes last."""
    h, w = table.shape[0] - 1, table.shape[1] - 1
    x0 = np.clip(np.floor(x0), 0, w - 1).astype(np.int64)
    y0 = np.clip(np.floor(y0), 0, h - 1).astype(np.int64)
    x1 = np.clip(np.ceil(x1), 1, w).astype(np.int64)
    y1 = np.clip(np.ceil(y1), 1, h).astype(np.int64)
    x1 = np.maximum(x1, x0 + 1)
    y1 = np.maximum(y1, y0 + 1)
    total = table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]
    area = ((x1 - x0) * (y1 - y0)).astype(np.float64)
    return np.asarray(total / area[..., None])


def _planes(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel: R, G, B (0-1) and edge strength as (H, W, 4); |dx| and |dy| of luma."""
    luma = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    dx = np.zeros_like(luma)
    dy = np.zeros_like(luma)
    dx[:, 1:-1] = (luma[:, 2:] - luma[:, :-2]) / 2
    dy[1:-1, :] = (luma[2:, :] - luma[:-2, :]) / 2
    strength = np.sqrt(dx * dx + dy * dy)
    return np.concatenate([rgb, strength[..., None]], axis=2), np.abs(dx), np.abs(dy)


def _crop_statistics(
    rgb: np.ndarray, adx: np.ndarray, ady: np.ndarray, boxes: np.ndarray
) -> np.ndarray:
    """Per box: spread of each colour channel, edge direction, an 8-bin colour histogram
    (each channel dark or bright). One slice per box: an image holds a few boxes."""
    h, w = rgb.shape[:2]
    out = np.zeros((len(boxes), 12), dtype=np.float64)
    for k, (x, y, bw, bh) in enumerate(boxes):
        x0, y0 = min(max(int(x), 0), w - 1), min(max(int(y), 0), h - 1)
        x1, y1 = (
            max(min(int(np.ceil(x + bw)), w), x0 + 1),
            max(min(int(np.ceil(y + bh)), h), y0 + 1),
        )
        crop = rgb[y0:y1, x0:x1].reshape(-1, 3)
        out[k, 0:3] = crop.std(axis=0)
        out[k, 3] = np.log((adx[y0:y1, x0:x1].mean() + _EPS) / (ady[y0:y1, x0:x1].mean() + _EPS))
        code = (crop[:, 0] > 0.5) * 4 + (crop[:, 1] > 0.5) * 2 + (crop[:, 2] > 0.5)
        out[k, 4:12] = np.bincount(code, minlength=8) / len(code)
    return out


@dataclass(frozen=True)
class Prepared:
    """One image made ready for any number of boxes: its summed-area table of colour and
    edge strength, the image itself and its edge directions."""

    rgb: np.ndarray
    table: np.ndarray
    adx: np.ndarray
    ady: np.ndarray

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def prepare(rgb: np.ndarray) -> Prepared:
    """The image `rgb` ((H, W, 3), 0-1) ready for object_features and fit_features."""
    rgb = rgb.astype(np.float32, copy=False)
    planes, adx, ady = _planes(rgb)
    return Prepared(rgb, _integral(planes), adx, ady)


def _corners(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x0, y0 = boxes[:, 0].astype(np.float64), boxes[:, 1].astype(np.float64)
    bw = np.maximum(boxes[:, 2].astype(np.float64), 1.0)
    bh = np.maximum(boxes[:, 3].astype(np.float64), 1.0)
    return x0, y0, bw, bh


def _geometry(image: Prepared, boxes: np.ndarray) -> np.ndarray:
    """Size, aspect ratio, position and the borders touched, relative to the image (12),
    and the products of the main ones (15)."""
    w, h = image.width, image.height
    x0, y0, bw, bh = _corners(boxes)
    x1, y1 = x0 + bw, y0 + bh
    rel_w, rel_h = bw / w, bh / h
    size = np.sqrt(rel_w * rel_h)
    log_size, log_aspect = np.log(size + 1e-6), np.log(bw / bh)
    bottom, top, centre_x = y1 / h, y0 / h, (x0 + x1) / 2 / w
    # How far from the image's vertical centre line (a camera's side views are mirrored).
    off_centre = np.abs(centre_x - 0.5)
    main = [log_size, log_aspect, bottom, top, off_centre]
    products = [main[i] * main[j] for i in range(len(main)) for j in range(i, len(main))]
    columns = [
        rel_w,
        rel_h,
        log_aspect,
        size,
        log_size,
        centre_x,
        off_centre,
        (y0 + y1) / 2 / h,
        top,
        bottom,
        ((x0 <= 1) | (x1 >= w - 1)).astype(np.float64),
        ((y0 <= 1) | (y1 >= h - 1)).astype(np.float64),
        *products,
    ]
    return np.column_stack(columns)


FIT_COUNT = 4 * 5 + 8 + 4


def _fit(image: Prepared, boxes: np.ndarray) -> np.ndarray:
    """How a box sits on what it holds (FIT_COUNT): for each side (left, right, top,
    bottom) the colour contrast between the band just inside and the strip just outside,
    the edge strength outside, inside and on the border (against the crop's), and the
    border's own; their smallest and largest over the sides; how the box's halves differ."""
    table, w, h = image.table, image.width, image.height
    x0, y0, bw, bh = _corners(boxes)
    x1, y1 = x0 + bw, y0 + bh
    edges = _mean(table, x0, y0, x1, y1)[:, 3]
    rx, ry = np.maximum(RING * bw, 2.0), np.maximum(RING * bh, 2.0)
    ix, iy = np.maximum(BAND * bw, 1.0), np.maximum(BAND * bh, 1.0)
    ex, ey = np.maximum(EDGE * bw, 1.0), np.maximum(EDGE * bh, 1.0)
    outside = [
        _mean(table, x0 - rx, y0, x0, y1),
        _mean(table, x1, y0, x1 + rx, y1),
        _mean(table, x0, y0 - ry, x1, y0),
        _mean(table, x0, y1, x1, y1 + ry),
    ]
    inside = [
        _mean(table, x0, y0, x0 + ix, y1),
        _mean(table, x1 - ix, y0, x1, y1),
        _mean(table, x0, y0, x1, y0 + iy),
        _mean(table, x0, y1 - iy, x1, y1),
    ]
    border = [
        _mean(table, x0 - ex, y0, x0 + ex, y1),
        _mean(table, x1 - ex, y0, x1 + ex, y1),
        _mean(table, x0, y0 - ey, x1, y0 + ey),
        _mean(table, x0, y1 - ey, x1, y1 + ey),
    ]
    # An image's border is no evidence: a side on it has nothing outside.
    at_edge = [x0 <= 1, x1 >= w - 1, y0 <= 1, y1 >= h - 1]
    scale = edges + _EPS
    sides = []
    for o, i, b, cut in zip(outside, inside, border, at_edge, strict=True):
        contrast = np.where(cut, 0.0, np.linalg.norm(o[:, 0:3] - i[:, 0:3], axis=1))
        out_edges = np.where(cut, 0.0, o[:, 3] / scale)
        sides.append(
            np.column_stack(
                [contrast, out_edges, i[:, 3] / scale, b[:, 3] / scale, np.log(b[:, 3] + _EPS)]
            )
        )
    per_side = np.stack(sides, axis=1)  # (n, 4 sides, 5)
    ordered = np.concatenate([per_side.min(axis=1)[:, :4], per_side.max(axis=1)[:, :4]], axis=1)
    left = _mean(table, x0, y0, x0 + bw / 2, y1)
    right = _mean(table, x0 + bw / 2, y0, x1, y1)
    upper = _mean(table, x0, y0, x1, y0 + bh / 2)
    lower = _mean(table, x0, y0 + bh / 2, x1, y1)
    halves = np.column_stack(
        [
            np.linalg.norm(left[:, 0:3] - right[:, 0:3], axis=1),
            np.abs(np.log((left[:, 3] + _EPS) / (right[:, 3] + _EPS))),
            np.linalg.norm(upper[:, 0:3] - lower[:, 0:3], axis=1),
            np.abs(np.log((upper[:, 3] + _EPS) / (lower[:, 3] + _EPS))),
        ]
    )
    return np.column_stack([per_side.reshape(len(boxes), -1), ordered, halves])


FEATURE_COUNT = 27 + 16 + GRID * GRID * 4 + FIT_COUNT


def object_features(image: Prepared, boxes: np.ndarray) -> np.ndarray:
    """What an object looks like (FEATURE_COUNT per box: geometry, crop statistics, the
    4 x 4 thumbnail, fit), for telling its class: `boxes` (n, 4) are x, y, width, height
    in the prepared image's pixels. (n, FEATURE_COUNT) float32."""
    n = len(boxes)
    if n == 0:
        return np.zeros((0, FEATURE_COUNT), dtype=np.float32)
    table = image.table
    x0, y0, bw, bh = _corners(boxes)
    crop = _mean(table, x0, y0, x0 + bw, y0 + bh)
    appearance = np.column_stack(
        [crop[:, 0:4], _crop_statistics(image.rgb, image.adx, image.ady, boxes)]
    )
    k = np.arange(GRID, dtype=np.float64)
    shape = (n, GRID, GRID)
    cx0 = np.broadcast_to(x0[:, None, None] + bw[:, None, None] * k[None, None, :] / GRID, shape)
    cy0 = np.broadcast_to(y0[:, None, None] + bh[:, None, None] * k[None, :, None] / GRID, shape)
    cells = _mean(table, cx0, cy0, cx0 + bw[:, None, None] / GRID, cy0 + bh[:, None, None] / GRID)
    out = np.column_stack(
        [_geometry(image, boxes), appearance, cells.reshape(n, -1), _fit(image, boxes)]
    )
    return out.astype(np.float32)


# A box is compared with itself moved by this share of its size in each of four directions.
NEIGHBOUR_SHIFT = 0.5
FIT_FEATURE_COUNT = 27 + 3 * FIT_COUNT


def fit_features(image: Prepared, boxes: np.ndarray) -> np.ndarray:
    """How well each box fits its object (FIT_FEATURE_COUNT): its geometry, its fit, and
    how much the fit improves, at most and at least, when the box is moved by half its
    width or height in each direction. A box drawn beside its object has a neighbour
    that sits on the object, so the comparison is evidence whatever the object looks
    like; a fitted box is its own best placement. (n, FIT_FEATURE_COUNT) float32."""
    n = len(boxes)
    if n == 0:
        return np.zeros((0, FIT_FEATURE_COUNT), dtype=np.float32)
    own = _fit(image, boxes)
    moved = []
    for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        other = boxes.astype(np.float64).copy()
        other[:, 0] += dx * NEIGHBOUR_SHIFT * other[:, 2]
        other[:, 1] += dy * NEIGHBOUR_SHIFT * other[:, 3]
        moved.append(_fit(image, other) - own)
    gains = np.stack(moved, axis=1)
    out = np.column_stack([_geometry(image, boxes), own, gains.max(axis=1), gains.min(axis=1)])
    return out.astype(np.float32)


def shifted_boxes(
    boxes: np.ndarray, width: int, height: int, rng: np.random.Generator
) -> np.ndarray:
    """Copies of `boxes` moved off their objects: each by 30-70% of its width (sideways)
    or of its height (up or down), at random, towards the side with room for it, and kept
    inside the image. The negatives the box-fit classifier learns from (a box drawn
    beside its object)."""
    n = len(boxes)
    out = boxes.astype(np.float64).copy()
    sideways = rng.random(n) < 0.5
    size = np.where(sideways, out[:, 2], out[:, 3])
    start = np.where(sideways, out[:, 0], out[:, 1])
    room_after = np.where(sideways, width, height) - (start + size)
    step = rng.uniform(0.3, 0.7, n) * size
    sign = rng.choice((-1.0, 1.0), n)
    # Where the drawn side has no room and the other has, go the other way.
    sign = np.where((sign > 0) & (room_after < step) & (start >= step), -1.0, sign)
    sign = np.where((sign < 0) & (start < step) & (room_after >= step), 1.0, sign)
    out[:, 0] += np.where(sideways, sign * step, 0.0)
    out[:, 1] += np.where(sideways, 0.0, sign * step)
    out[:, 0] = np.clip(out[:, 0], 0.0, np.maximum(0.0, width - out[:, 2]))
    out[:, 1] = np.clip(out[:, 1], 0.0, np.maximum(0.0, height - out[:, 3]))
    return out


def _overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of `a` with every box of `b` (x, y, width, height), (len a, len b)."""
    ax1, ay1 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx1, by1 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.minimum(ax1[:, None], bx1[None]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(ay1[:, None], by1[None]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.asarray(inter / np.maximum(union, 1e-9))


# A background window overlaps every labelled box less than this.
BACKGROUND_IOU = 0.1
BACKGROUND_COPIES = 2


def background_boxes(
    boxes: np.ndarray, width: int, height: int, rng: np.random.Generator
) -> np.ndarray:
    """Windows on what the labels call background: each box copied BACKGROUND_COPIES times
    at random places on the same rows (the same size at the same depth, in a street
    scene), kept where they overlap no labelled box (BACKGROUND_IOU). The negatives the
    objectness classifier learns from; an unlabelled object among them is noise it
    tolerates."""
    if len(boxes) == 0:
        return np.zeros((0, 4), dtype=np.float64)
    out = np.repeat(boxes.astype(np.float64), BACKGROUND_COPIES, axis=0)
    out[:, 0] = rng.uniform(0.0, 1.0, len(out)) * np.maximum(0.0, width - out[:, 2])
    keep = _overlap(out, boxes.astype(np.float64)).max(axis=1) < BACKGROUND_IOU
    return np.asarray(out[keep])
