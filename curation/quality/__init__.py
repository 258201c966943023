"""Image quality signals of an item, computed at ingest from the image already decoded.

Pure functions over a decoded Pillow image; no database, no storage. What each number
means, its scale, and when it is meaningful is in docs/insights.md ("Image quality").

The numbers are computed on the small upright copy that ingest makes for the perceptual
hashes (curation/media.py: at most WORKING_SIZE = 256 pixels on the long side, bilinear),
not on the original:

- cost: the copy exists already, so each image costs a few NumPy passes over at most
  65,536 pixels whatever its size (folder ingest of JPEGs must not slow by over 10%);
- comparability: sharpness (`blur`, the variance of the Laplacian) depends on the
  resolution it is measured at. At one fixed working size a 4000-pixel photo and a
  640-pixel one are measured alike, so one threshold (`quality.blur < 40`) means the
  same on both. Images smaller than the working size are measured at their own size.

Only `aspect` (and the width and height the item has anyway) come from the full size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

# The long side, in pixels, of the copy the signals are computed at (the same copy the
# perceptual hashes read; see the module docstring).
WORKING_SIZE = 256
# A pixel is "near" the image's typical colour when no channel differs from the median
# by more than this (of 255); an image is near-uniform when UNIFORM_SHARE of its pixels are.
UNIFORM_TOLERANCE = 12
UNIFORM_SHARE = 0.99
_LEVELS = np.arange(256, dtype=np.float64)


@dataclass(frozen=True)
class QualityField:
    """One signal: its query-language name, Item column, kind and a short meaning."""

    name: str
    column: str
    kind: str  # "number" or "boolean"
    meaning: str
    scale: str


QUALITY_FIELDS: dict[str, QualityField] = {
    f.name: f
    for f in (
        QualityField(
            "brightness", "quality_brightness", "number", "mean luma: dark 0 to bright 255", "0-255"
        ),
        QualityField(
            "contrast",
            "quality_contrast",
            "number",
            "standard deviation of luma: flat 0, high contrast above 60",
            "0-128",
        ),
        QualityField(
            "saturation",
            "quality_saturation",
            "number",
            "mean HSV saturation: grey 0 to vivid 255",
            "0-255",
        ),
        QualityField(
            "blur",
            "quality_blur",
            "number",
            "sharpness (variance of the Laplacian): lower is blurrier, under about 40 blurry",
            "0 and up",
        ),
        QualityField(
            "entropy",
            "quality_entropy",
            "number",
            "information in the luma histogram, in bits: uniform 0 to 8",
            "0-8",
        ),
        QualityField(
            "aspect",
            "quality_aspect",
            "number",
            "width / height of the image as shown: 1 square, above 3 or under 1/3 extreme",
            "above 0",
        ),
        QualityField(
            "uniform",
            "quality_uniform",
            "boolean",
            "near-uniform or blank: 99% of pixels within 12/255 of one colour",
            "true/false",
        ),
    )
}
QUALITY_COLUMNS = [f.column for f in QUALITY_FIELDS.values()]


@dataclass(frozen=True)
class Quality:
    brightness: float
    contrast: float
    saturation: float
    blur: float
    entropy: float
    aspect: float
    uniform: bool

    def values(self) -> tuple[float, float, float, float, float, float, bool]:
        """In the order of QUALITY_FIELDS / QUALITY_COLUMNS."""
        return (
            self.brightness,
            self.contrast,
            self.saturation,
            self.blur,
            self.entropy,
            self.aspect,
            self.uniform,
        )


def working_copy(im: Image.Image) -> Image.Image:
    """An RGB or L copy of `im` at most WORKING_SIZE on its long side (not upright yet)."""
    if im.mode not in ("RGB", "L"):
        im = im.convert("RGB")
    scale = WORKING_SIZE / max(im.size)
    if scale < 1:
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        im = im.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return im


def image_quality(small: Image.Image, *, width: int, height: int) -> Quality:
    """The quality signals of an image from its working copy `small` (RGB or L, see
    working_copy) and its full displayed `width` x `height`.

    Pillow converts to luma and splits the bands in C; NumPy then reads uint8 planes
    (about 0.4 ms of CPU per image at 256 x 192; near_uniform is skipped when the luma
    varies too much for it, surely_varied).
    """
    if small.mode == "L":  # greyscale: luma is the pixel, no colour
        luma8 = np.asarray(small)
        saturation = 0.0
        bands = [luma8]
    else:
        luma8 = np.asarray(small.convert("L"))
        bands = [np.asarray(band) for band in small.split()]
        saturation = hsv_saturation(bands)
    # Brightness, contrast and entropy all come from the luma histogram.
    counts = np.bincount(luma8.ravel(), minlength=256)
    mean = float(counts @ _LEVELS) / luma8.size
    variance = float(counts @ (_LEVELS * _LEVELS)) / luma8.size - mean * mean
    return Quality(
        brightness=mean,
        contrast=max(0.0, variance) ** 0.5,
        saturation=saturation,
        blur=laplacian_variance(luma8),
        entropy=histogram_entropy(counts),
        aspect=width / height,
        uniform=not surely_varied(luma8) and near_uniform(bands),
    )


def hsv_saturation(bands: list[np.ndarray]) -> float:
    """Mean HSV saturation, (max - min) / max of R, G, B, on a 0-255 scale; 0 for black."""
    high = np.maximum(np.maximum(bands[0], bands[1]), bands[2])
    low = np.minimum(np.minimum(bands[0], bands[1]), bands[2])
    spread = (high - low).astype(np.float32) * 255
    ratio = np.divide(spread, high, out=np.zeros_like(spread), where=high > 0)
    return float(ratio.mean())


def laplacian_variance(luma8: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of 8-bit luma over the interior pixels; 0
    below 3x3. Summed in int16 (exact: -1020..1020), which is several times faster than
    in floats."""
    if luma8.shape[0] < 3 or luma8.shape[1] < 3:
        return 0.0
    x = luma8.astype(np.int16)
    laplacian = x[:-2, 1:-1] + x[2:, 1:-1] + x[1:-1, :-2] + x[1:-1, 2:] - 4 * x[1:-1, 1:-1]
    return float(laplacian.astype(np.float32).var())


def histogram_entropy(counts: np.ndarray) -> float:
    """Shannon entropy, in bits, of a histogram (of 8-bit luma: 256 bins)."""
    p = counts[counts > 0] / counts.sum()
    return float(max(0.0, -(p * np.log2(p)).sum()))


# The largest variance of luma, over the pixels near_uniform reads, that a near-uniform
# image can have: its near pixels (a share of at least UNIFORM_SHARE) lie within
# UNIFORM_TOLERANCE of the bands' medians on every band, so their luma (a weighted mean of
# the bands, rounded by Pillow: half a level more) within UNIFORM_TOLERANCE + 0.5 of the
# medians' luma; the others within 255. A variance is at most the mean squared distance
# to any one value, that one included.
_UNIFORM_MAX_VARIANCE = (
    UNIFORM_SHARE * (UNIFORM_TOLERANCE + 0.5) ** 2 + (1 - UNIFORM_SHARE) * 255.0**2
)


def surely_varied(luma8: np.ndarray) -> bool:
    """Whether the luma of the pixels near_uniform reads varies more than a near-uniform
    image's can (_UNIFORM_MAX_VARIANCE): then it is not near-uniform, and near_uniform
    need not run (most photographs; one histogram instead of three, a third of the
    signals' cost). Never true of an image near_uniform would call uniform."""
    sample = luma8[::2, ::2]
    counts = np.bincount(sample.ravel(), minlength=256)
    mean = float(counts @ _LEVELS) / sample.size
    variance = float(counts @ (_LEVELS * _LEVELS)) / sample.size - mean * mean
    return variance > _UNIFORM_MAX_VARIANCE * 1.001  # float rounding: a margin


def near_uniform(bands: list[np.ndarray]) -> bool:
    """Whether UNIFORM_SHARE of the pixels lie within UNIFORM_TOLERANCE of the median on
    every band (8-bit planes): blank, a solid fill, or a flat field with a speck.

    Every other row and column is read: a quarter of the pixels estimates a 99% share
    just as well, at a quarter of the cost."""
    near: np.ndarray | None = None
    levels = np.arange(256)
    for band in (b[::2, ::2] for b in bands):
        counts = np.bincount(band.ravel(), minlength=256)
        median = int(np.searchsorted(np.cumsum(counts), (band.size + 1) // 2))
        close = (np.abs(levels - median) <= UNIFORM_TOLERANCE)[band]
        near = close if near is None else near & close
    assert near is not None
    return bool(np.count_nonzero(near) >= UNIFORM_SHARE * near.size)


def extreme_aspect(aspect: float) -> bool:
    """An aspect ratio that facets call extreme: over EXTREME_ASPECT:1 either way."""
    return aspect > EXTREME_ASPECT or aspect < round(1 / EXTREME_ASPECT, 4)


# ------------------------------------------------------------------------ facets and charts


@dataclass(frozen=True)
class Flag:
    """A named range of the signals, as a facet: `query` (the query language) selects it."""

    key: str
    label: str
    query: str


# Thresholds (see docs/insights.md for why these): the grid's "Image quality" facets, the
# item page's notes, and the stats page's counts all use these same queries.
BLURRY = 40.0
DARK = 50.0
BRIGHT = 205.0
LOW_CONTRAST = 20.0
EXTREME_ASPECT = 3.0
SMALL_SIDE = 64
LARGE_PIXELS = 40_000_000

FLAGS = [
    Flag("blurry", "blurry", f"quality.blur < {BLURRY:g}"),
    Flag("dark", "dark", f"quality.brightness < {DARK:g}"),
    Flag("bright", "bright / overexposed", f"quality.brightness > {BRIGHT:g}"),
    Flag("low-contrast", "low contrast", f"quality.contrast < {LOW_CONTRAST:g}"),
    Flag("uniform", "blank / near-uniform", "quality.uniform = true"),
    Flag(
        "extreme-aspect",
        f"extreme aspect (over {EXTREME_ASPECT:g}:1)",
        f"(quality.aspect > {EXTREME_ASPECT:g} OR quality.aspect < {1 / EXTREME_ASPECT:.4f})",
    ),
    Flag(
        "small",
        f"small (a side under {SMALL_SIDE} px)",
        f"(width < {SMALL_SIDE} OR height < {SMALL_SIDE})",
    ),
    Flag(
        "large", f"large (over {LARGE_PIXELS // 1_000_000} MP)", f"width * height > {LARGE_PIXELS}"
    ),
    Flag("missing", "not computed yet", "quality.brightness = null AND width != null"),
]
FLAGS_BY_KEY = {f.key: f for f in FLAGS}

# Fixed bucket edges of each numeric signal's histogram on the stats page: the same
# buckets on every dataset, each bar a range that opens the grid filtered to it. The last
# bucket is open-ended (at or above its lower edge). Sharpness and aspect are heavy-tailed
# and bucketed on a doubling scale.
HISTOGRAM_EDGES: dict[str, list[float]] = {
    "brightness": [float(x) for x in range(0, 256, 16)],
    "contrast": [float(x) for x in range(0, 129, 8)],
    "saturation": [float(x) for x in range(0, 256, 16)],
    "blur": [0.0, 5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120],
    "entropy": [x / 2 for x in range(0, 17)],
    "aspect": [0.0, 1 / 4, 1 / 3, 1 / 2, 2 / 3, 3 / 4, 1, 4 / 3, 3 / 2, 2, 3, 4],
}
HISTOGRAM_EDGES = {name: [float(x) for x in edges] for name, edges in HISTOGRAM_EDGES.items()}


def bucket_query(signal: str, low: float, high: float | None) -> str:
    """The query for one histogram bucket: low <= signal < high (no upper edge: open)."""
    field = f"quality.{signal}"
    if high is None:
        return f"{field} >= {low:.6g}"
    return f"{field} >= {low:.6g} AND {field} < {high:.6g}"


def notes_for(values: Quality, *, width: int | None, height: int | None) -> list[str]:
    """The facet labels that apply to one item (the item page shows them)."""
    notes = []
    if values.blur < BLURRY:
        notes.append("blurry")
    if values.brightness < DARK:
        notes.append("dark")
    if values.brightness > BRIGHT:
        notes.append("bright / overexposed")
    if values.contrast < LOW_CONTRAST:
        notes.append("low contrast")
    if values.uniform:
        notes.append("blank / near-uniform")
    if extreme_aspect(values.aspect):
        notes.append("extreme aspect")
    if width and height:
        if min(width, height) < SMALL_SIDE:
            notes.append("small")
        if width * height > LARGE_PIXELS:
            notes.append("large")
    return notes
