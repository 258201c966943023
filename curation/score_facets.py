"""Score facets: a histogram in the grid's sidebar for every number per item that the
query language can read (image quality signals here; uniqueness, outlier, uncertainty,
label-error scores, autotag scores from the apps above curation), each bucket a link that
narrows the grid to the items in it.

An app registers a facet with ``register_score_facet(ScoreFacet(...))`` in its
``AppConfig.ready()``; curation never imports the apps that do. A facet names:

- ``key``, ``title``, ``section`` (the sidebar heading it is listed under) and a short
  ``meaning``;
- ``variants(dataset)``: the fields it has in that dataset, each a value of the query
  language (``uniqueness["clip ViT-B-32"]``, ``uncertainty[detector].margin``), one per
  model for a per-model score; none hides the facet (nothing computed yet);
- ``edges``: fixed bucket edges (scores in [0, 1]: UNIT_EDGES), or None for buckets from
  the values' own range. The last bucket is open-ended (at or above its lower edge).

An item's value is the query language's value of the field (``sort_expression``, the same
value the grid sorts by), and a bucket selects ``field >= low AND field < high``: the
count of a bucket is what clicking it shows. A histogram is computed over the same basis
as every other facet (curation.sampling.sample_basis: exact up to SAMPLE_TARGET items, a
scaled sample above it) and cached per view and field for CACHE_SECONDS. The grid lists a
facet closed; its histogram is counted when it is opened (one request per facet), so the
first paint never waits for it.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from django.core.cache import cache
from django.db.models import QuerySet

from curation import facets, sampling
from curation.models import Dataset, Item
from curation.query import sort_expression

T = TypeVar("T")
UNIT_EDGES: tuple[float, ...] = tuple(i / 10 for i in range(10))  # 0, 0.1 ... 0.9 (and up)
BINS = 10  # buckets of a facet whose edges come from its values' range


@dataclass(frozen=True)
class ScoreVariant:
    """One field of a facet in a dataset: a value of the query language, and its name."""

    field: str
    label: str = ""  # "" for a facet with one field (the facet's title says it)


@dataclass(frozen=True)
class ScoreFacet:
    key: str
    title: str
    variants: Callable[[Dataset], list[ScoreVariant]]
    edges: Sequence[float] | None = UNIT_EDGES
    section: str = "Scores"
    meaning: str = ""


_FACETS: dict[str, ScoreFacet] = {}


def register_score_facet(facet: ScoreFacet) -> None:
    """Add (or replace, by key) a score facet of the grid's sidebar."""
    _FACETS[facet.key] = facet


def score_facets() -> list[ScoreFacet]:
    return list(_FACETS.values())


def score_facet(key: str) -> ScoreFacet | None:
    return _FACETS.get(key)


def per_dataset(read: Callable[[Dataset], T]) -> Callable[[Dataset], T]:
    """`read(dataset)` once per Dataset instance (a request's): several facets' variants
    share one query (every per-model score asks which models have scores)."""
    name = f"_score_facets_{read.__module__}.{read.__qualname__}"

    def once(dataset: Dataset) -> T:
        memo: dict[str, Any] = dataset.__dict__.setdefault("_score_facets_memo", {})
        if name not in memo:
            memo[name] = read(dataset)
        return memo[name]  # type: ignore[no-any-return]

    return once


def available(dataset: Dataset) -> list[tuple[ScoreFacet, list[ScoreVariant]]]:
    """The facets that have fields in `dataset`, with their fields, in registration order."""
    found = []
    for facet in _FACETS.values():
        variants = facet.variants(dataset)
        if variants:
            found.append((facet, variants))
    return found


def variant_of(dataset: Dataset, key: str, field: str) -> tuple[ScoreFacet, ScoreVariant] | None:
    """The facet `key` and its field `field` in `dataset`, or None if it has no such field."""
    facet = _FACETS.get(key)
    if facet is None:
        return None
    for variant in facet.variants(dataset):
        if variant.field == field:
            return facet, variant
    return None


# --------------------------------------------------------------------------- queries


def number_text(value: float) -> str:
    """A number as the query literal that reads back as the very same float: six
    significant digits when they do, else every digit; never an exponent."""
    short = f"{value:.6g}"
    text = short if float(short) == value else repr(float(value))
    return format(Decimal(text), "f")


def rounded(value: float) -> float:
    """`value` to six significant digits (a bucket edge as the pages show it)."""
    return float(f"{value:.6g}")


def range_query(field: str, low: float, high: float | None) -> str:
    """The query for one bucket: low <= field < high (no high: at or above low)."""
    if high is None:
        return f"{field} >= {number_text(low)}"
    return f"({field} >= {number_text(low)} AND {field} < {number_text(high)})"


def range_value(low: float, high: float | None) -> str:
    """A bucket as the grid's `score.<field>` parameter writes it: "<low>,<high>"."""
    return f"{number_text(low)},{'' if high is None else number_text(high)}"


def parse_range(raw: str) -> tuple[float, float | None]:
    """The "<low>,<high>" (or "<low>,") of a `score.<field>` parameter; ValueError if bad."""
    low_text, sep, high_text = raw.partition(",")
    if not sep:
        raise ValueError(raw)
    low = float(low_text)
    high = float(high_text) if high_text.strip() else None
    if not math.isfinite(low) or (high is not None and (not math.isfinite(high) or high <= low)):
        raise ValueError(raw)
    return low, high


# ------------------------------------------------------------------------- histograms


@dataclass
class ScoreBin:
    low: float
    high: float | None  # None: the open-ended last bucket
    count: int
    query: str  # the query language condition selecting the bucket
    value: str  # the grid parameter's value (range_value)


@dataclass
class ScoreHistogram:
    field: str
    basis: sampling.Basis
    bins: list[ScoreBin]
    scored: int  # items of the basis with a value (scaled when sampled)
    missing: int  # items without one
    minimum: float | None = None
    maximum: float | None = None


def _nice_step(span: float, bins: int) -> float:
    raw = span / bins
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def value_edges(values: list[float]) -> list[float]:
    """About BINS bucket edges over the values' range, on round numbers (whole numbers for
    counts); the last bucket is open-ended."""
    if not values:
        return []
    low, high = min(values), max(values)
    integers = all(float(v).is_integer() for v in values)
    if high <= low:
        return [low]
    step = _nice_step(high - low, BINS)
    if integers:
        step = max(1.0, math.ceil(step))
    start = math.floor(low / step) * step
    edges: list[float] = []
    edge = start
    while edge <= high and len(edges) <= 2 * BINS:
        edges.append(rounded(edge))
        edge = start + len(edges) * step
    edges = sorted(set(edges))
    # Rounding (or floor in floats) must never leave the smallest value out.
    if edges[0] > low:
        edges[0] = low
    return edges


def _histogram(field: str, edges: list[float], values: list[float], scale: float) -> list[ScoreBin]:
    counts = [0] * len(edges)
    for v in values:
        index = bisect_right(edges, v) - 1  # edges[index] <= v < edges[index + 1]
        if index >= 0:
            counts[index] += 1
    bins = []
    for i, low in enumerate(edges):
        high = edges[i + 1] if i + 1 < len(edges) else None
        bins.append(
            ScoreBin(
                low,
                high,
                round(counts[i] * scale),
                range_query(field, low, high),
                range_value(low, high),
            )
        )
    return bins


def _cache_key(dataset: Dataset, items: QuerySet[Item] | None, field: str) -> str:
    return f"{facets.view_cache_key(dataset, items)}:score:{field}"


def score_histogram(
    dataset: Dataset,
    items: QuerySet[Item] | None,
    facet: ScoreFacet,
    field: str,
    *,
    refresh: bool = False,
) -> ScoreHistogram:
    """The histogram of `field` (a variant of `facet`) over a view's items (None: the
    whole dataset), from the cache when fresh. QueryError when the field has no value in
    the dataset now (its model was deleted)."""
    key = _cache_key(dataset, items, field)
    if not refresh:
        cached = cache.get(key)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
    basis, _, params = sampling.sample_basis(dataset, items)
    ids: list[int] = params[0]  # sample_basis selects the basis by its ids
    value = sort_expression(field, dataset=dataset)
    found: list[Any] = list(
        Item.objects.filter(id__in=ids).annotate(_score=value).values_list("_score", flat=True)
    )
    values = [float(v) for v in found if v is not None]
    # Edges as the query literals read them back, so a count is what a click shows.
    edges = (
        sorted({rounded(e) for e in facet.edges})
        if facet.edges is not None
        else value_edges(values)
    )
    histogram = ScoreHistogram(
        field=field,
        basis=basis,
        bins=_histogram(field, edges, values, basis.scale),
        scored=round(len(values) * basis.scale),
        missing=round((len(found) - len(values)) * basis.scale),
        minimum=min(values) if values else None,
        maximum=max(values) if values else None,
    )
    cache.set(key, histogram, facets.CACHE_SECONDS)
    return histogram


def register_quality_facets() -> None:
    """The image quality signals (curation.quality) as score facets, over the stats
    page's fixed buckets (HISTOGRAM_EDGES), listed under "Image quality"."""
    from curation.quality import HISTOGRAM_EDGES, QUALITY_FIELDS

    for name, edges in HISTOGRAM_EDGES.items():
        field = QUALITY_FIELDS[name]
        register_score_facet(
            ScoreFacet(
                key=f"quality.{name}",
                title=name,
                variants=_one(f"quality.{name}"),
                edges=tuple(edges),
                section="Image quality",
                meaning=f"{field.meaning} ({field.scale})",
            )
        )


def _one(field: str) -> Callable[[Dataset], list[ScoreVariant]]:
    def variants(dataset: Dataset) -> list[ScoreVariant]:
        return [ScoreVariant(field)]

    return variants
