"""Label colours: one per label of a dataset, distinct from each other, the same on every
page (facets, tiles, the item page, charts).

A dataset's labels are sorted and each takes the colour at its index, so a label keeps its
colour as long as the labels before it stay the same. The first seven colours are the
Okabe-Ito palette without its black (chosen to stay apart under the common colour-vision
deficiencies); after those, each colour is the one of a fixed set of in-gamut OKLCH
colours farthest (in OKLab) from all colours before it. That sequence never changes, so
colour i is the same whatever the number of labels; its smallest pairwise OKLab distance
is about 0.156 up to 12 labels, 0.1 at 32 and 0.058 at 64 (tests/test_ui_palette.py).
"""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Iterable

from curation import selectors
from curation.models import Dataset

# Okabe & Ito, "Color Universal Design" (2008): orange, sky blue, bluish green, yellow,
# blue, vermillion, reddish purple. Black is left out: boxes are drawn over photos.
OKABE_ITO = ("#e69f00", "#56b4e9", "#009e73", "#f0e442", "#0072b2", "#d55e00", "#cc79a7")
# Colours are generated up to this many; labels past it (a dataset with more labels than
# anyone can tell apart by colour) reuse them in order.
MAX_COLOURS = 128
# A label the list does not hold (a prediction's label that no annotation has) takes one
# of this many colours past the list's own, by a hash of its name.
SPARE_COLOURS = 16

Lab = tuple[float, float, float]


def _to_linear(c: float) -> float:
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def _to_srgb(c: float) -> float:
    return 12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055


def linear_rgb(colour: str) -> tuple[float, float, float]:
    """A "#rrggbb" colour as linear-light sRGB components, 0..1."""
    r, g, b = (_to_linear(int(colour[i : i + 2], 16) / 255) for i in (1, 3, 5))
    return r, g, b


def oklab_of_linear(r: float, g: float, b: float) -> Lab:
    """Björn Ottosson's OKLab of a linear sRGB colour."""
    lms = (
        0.4122214708 * r + 0.5363325363 * g + 0.0514459929 * b,
        0.2119034982 * r + 0.6806995451 * g + 0.1073969566 * b,
        0.0883024619 * r + 0.2817188376 * g + 0.6299787005 * b,
    )
    l_, m_, s_ = (math.copysign(abs(v) ** (1 / 3), v) for v in lms)
    return (
        0.2104542553 * l_ + 0.7936177850 * m_ - 0.0040720468 * s_,
        1.9779984951 * l_ - 2.4285922050 * m_ + 0.4505937099 * s_,
        0.0259040371 * l_ + 0.7827717662 * m_ - 0.8086757660 * s_,
    )


def oklab(colour: str) -> Lab:
    """The OKLab coordinates of a "#rrggbb" colour."""
    return oklab_of_linear(*linear_rgb(colour))


def distance(a: str, b: str) -> float:
    """How far apart two colours look: Euclidean distance in OKLab (about 0.02 is barely
    visible; 0.1 and more reads as a different colour)."""
    return math.dist(oklab(a), oklab(b))


def _oklch_hex(lightness: float, chroma: float, hue: float) -> str | None:
    """An OKLCH colour as "#rrggbb", or None outside the sRGB gamut."""
    a = chroma * math.cos(math.radians(hue))
    b = chroma * math.sin(math.radians(hue))
    l_ = (lightness + 0.3963377774 * a + 0.2158037573 * b) ** 3
    m_ = (lightness - 0.1055613458 * a - 0.0638541728 * b) ** 3
    s_ = (lightness - 0.0894841775 * a - 1.2914855480 * b) ** 3
    rgb = (
        4.0767416621 * l_ - 3.3077115913 * m_ + 0.2309699292 * s_,
        -1.2684380046 * l_ + 2.6097574011 * m_ - 0.3413193965 * s_,
        -0.0041960863 * l_ - 0.7034186147 * m_ + 1.7076147010 * s_,
    )
    if min(rgb) < 0 or max(rgb) > 1:
        return None
    return "#" + "".join(f"{round(_to_srgb(c) * 255):02x}" for c in rgb)


def _candidates() -> list[str]:
    # Lightness 0.5..0.9 and chroma from 0.1: colours that show as colours on photos,
    # neither near-black nor grey.
    found = (
        _oklch_hex(lightness, chroma, hue)
        for lightness in (0.5, 0.6, 0.7, 0.8, 0.9)
        for chroma in (0.1, 0.14, 0.18, 0.22)
        for hue in range(0, 360, 10)
    )
    return [c for c in found if c is not None]


@functools.cache
def sequence() -> tuple[str, ...]:
    """The label colours in order: Okabe-Ito, then farthest-first over OKLCH candidates."""
    colours = list(OKABE_ITO)
    candidates = [(c, oklab(c)) for c in _candidates()]
    nearest = {c: min(math.dist(lab, oklab(p)) for p in colours) for c, lab in candidates}
    while len(colours) < MAX_COLOURS:
        best, best_lab = max(candidates, key=lambda entry: nearest[entry[0]])  # first on ties
        colours.append(best)
        for c, lab in candidates:
            nearest[c] = min(nearest[c], math.dist(lab, best_lab))
    return tuple(colours)


def colour_at(index: int) -> str:
    """The colour of the label at `index` of a sorted label list."""
    colours = sequence()
    return colours[index % len(colours)]


DARK_INK = "#111827"


def contrast(a: str, b: str) -> float:
    """The WCAG 2 contrast ratio of two "#rrggbb" colours, 1 to 21."""

    def luminance(colour: str) -> float:
        r, g, b = (_to_linear(int(colour[i : i + 2], 16) / 255) for i in (1, 3, 5))
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def text_on(colour: str) -> str:
    """Dark or white, whichever has the higher WCAG contrast on `colour` (for a label's
    name on it), and black on the mid tones where neither reaches 4.5:1: black or white
    always does (the better of the two is at least the square root of 21, 4.58)."""
    ink = DARK_INK if contrast(DARK_INK, colour) >= contrast("#ffffff", colour) else "#ffffff"
    if contrast(ink, colour) >= 4.5:
        return ink
    return "#000000" if contrast("#000000", colour) >= 4.5 else "#ffffff"


class LabelColours:
    """The colours of a dataset's labels: each label's index in the sorted list."""

    def __init__(self, labels: Iterable[str]) -> None:
        self.labels = sorted(set(labels))
        self._index = {label: i for i, label in enumerate(self.labels)}

    def __call__(self, label: str) -> str:
        index = self._index.get(label)
        if index is None:
            # Not in the list (a label only predictions have): a colour past the list's
            # own, the same for that name every time.
            index = len(self.labels) + zlib.crc32(label.encode()) % SPARE_COLOURS
        return colour_at(index)


def dataset_colours(dataset: Dataset) -> LabelColours:
    """The colours of a dataset's labels (its annotations' labels, read in one query)."""
    return LabelColours(selectors.dataset_labels(dataset=dataset))
