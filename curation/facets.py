"""Facet counts and dataset statistics (read by the UI's grid and stats pages), cheap at
any size.

Every figure here is computed over a *basis*: the items of a view (the grid's filters,
query, facets and slice; a search ranks those same items) or of the whole dataset,
counted exactly up to curation.sampling.SAMPLE_TARGET items and through a block sample
past that (curation.sampling), in which case the figures are scaled up and shown with an
"≈" marker. Results are cached per view for CACHE_SECONDS, so clicking
through facets never rescans a large dataset, and the grid never waits for them: its
sidebar asks for them once the page has loaded. The pages say when the figures were
counted and offer a refresh. UI actions that change tags or slices drop every cached
view of the dataset at once (``summary_forget`` moves the dataset's generation on).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.db.models import BooleanField, Count, QuerySet
from django.db.models.expressions import RawSQL

from curation import sampling, selectors
from curation.errors import CurationError
from curation.itemsets import slice_items, slice_items_q
from curation.models import Dataset, Item, Slice
from curation.quality import FLAGS, HISTOGRAM_EDGES, QUALITY_FIELDS, bucket_query
from curation.query import compile_query
from curation.sampling import Basis, sample_basis

CACHE_SECONDS = 60
TOP_LABELS = 60
TOP_VALUES = 12
MAX_CATEGORIES = 40  # a key with more distinct text values is shown as "many values"
HISTOGRAM_BINS = 16
BOXES_CAP = 20  # items with more boxes fall in the last bucket, "20+"


_OBJECT = "CASE WHEN jsonb_typeof({0}) = 'object' THEN {0} ELSE '{{}}'::jsonb END"
# Metadata as (key, value) pairs, one level of nesting flattened into dotted keys
# (camera.side): the form that the API's metadata filters and the query language take.
METADATA_PAIRS = (
    "LATERAL (SELECT e.key, e.value FROM jsonb_each(" + _OBJECT.format("s.metadata") + ") e "
    "WHERE jsonb_typeof(e.value) <> 'object' "
    "UNION ALL SELECT e.key || '.' || f.key, f.value FROM jsonb_each("
    + _OBJECT.format("s.metadata")
    + ") e, jsonb_each("
    + _OBJECT.format("e.value")
    + ") f "
    "WHERE jsonb_typeof(e.value) = 'object') AS e(key, value)"
)


# A metadata number as float8 for min/max and histograms (NULL for other values). jsonb
# numbers are numeric and may be far outside float8 (10**400, 1e-400): casting those
# straight to float8 is an error that would take the grid and the stats page down for
# everyone. Numbers beyond +-1e300 are left out and tiny ones count as 0, so every
# figure stays finite. The type test comes first inside the CASE, which (unlike AND in a
# WHERE) is evaluated in order.
_FLOAT = (
    "(CASE WHEN jsonb_typeof(e.value) <> 'number' THEN NULL"
    " WHEN abs((e.value #>> '{}')::numeric) > 1e300 THEN NULL"
    " WHEN abs((e.value #>> '{}')::numeric) < 1e-300 THEN 0::float8"
    " ELSE (e.value #>> '{}')::numeric::float8 END)"
)


@dataclass
class ValueCount:
    value: str
    count: int


@dataclass
class Bin:
    low: float
    high: float
    count: int


@dataclass
class MetadataKey:
    key: str
    kind: str  # "category", "number", "many" (too many distinct texts), "other"
    present: int  # items that have the key
    values: list[ValueCount] = field(default_factory=list)
    distinct: int = 0
    minimum: float | None = None
    maximum: float | None = None
    bins: list[Bin] = field(default_factory=list)


@dataclass
class LabelCount:
    label: str
    items: int
    annotations: int


@dataclass
class QualityBin:
    low: float
    high: float | None  # None: the open-ended last bucket
    count: int
    query: str  # the query language condition selecting the bucket


@dataclass
class QualityFigures:
    """Image quality over the basis: items per facet (curation.quality.FLAGS, by key) and
    a histogram of each numeric signal over fixed buckets."""

    flags: dict[str, int]
    histograms: dict[str, list[QualityBin]]
    computed: int  # items with signals


# The parts of a Summary, each computed on its own. A sidebar needs every part of its
# view, but of the view without a facet group that is on (curation.ui.grid.group_summaries)
# only that group's part: the label facets of the view without its label filter, not that
# view's metadata, quality and slices too (which doubled a cold sidebar's time).
PARTS = frozenset({"labels", "metadata", "boxes", "tags", "slices", "quality"})


@dataclass
class Summary:
    """The figures of a view. A part not in `parts` was not computed: its field is empty."""

    basis: Basis
    labels: list[LabelCount]
    metadata: list[MetadataKey]
    boxes_per_item: list[tuple[str, int]]  # ("0", n), ("1", n) ... ("20+", n)
    tags: list[tuple[int, str, int]]  # (id, name, items)
    slices: list[tuple[int, str, int, bool]]  # (id, name, items, dynamic)
    quality: QualityFigures | None = None
    parts: frozenset[str] = PARTS


def _generation_key(dataset: Dataset) -> str:
    return f"ui:summary-generation:{dataset.pk}"


def view_cache_key(dataset: Dataset, items: QuerySet[Item] | None) -> str:
    """The cache key of a view's figures: the dataset, its generation, and the view's SQL
    (curation.score_facets adds its field to it)."""
    generation = cache.get(_generation_key(dataset), 0)
    if items is None:
        view = "all"
    else:
        sql, params = items.order_by().values("id").query.sql_with_params()
        view = hashlib.sha256(f"{sql}|{params!r}".encode()).hexdigest()[:32]
    return f"ui:summary:{dataset.pk}:{generation}:{view}"


def summary_forget(dataset: Dataset) -> None:
    """Drop the cached figures of every view of a dataset (after a change made in the UI)."""
    key = _generation_key(dataset)
    cache.set(key, cache.get(key, 0) + 1, None)


def _parts_key(key: str, parts: frozenset[str]) -> str:
    return key if parts == PARTS else f"{key}:{','.join(sorted(parts))}"


def cached_summary(
    dataset: Dataset, items: QuerySet[Item] | None = None, *, parts: frozenset[str] = PARTS
) -> Summary | None:
    """The cached figures of a view (None: the whole dataset) with at least `parts`, or
    None when they must be counted first. Every part's figures serve any of its parts."""
    return _cached(view_cache_key(dataset, items), parts)


def _cached(key: str, parts: frozenset[str]) -> Summary | None:
    """The view's whole figures, else its `parts` alone, or None. Whole figures are never
    older than a part beside them: a part is counted only when they are missing or on a
    refresh, and storing it drops them (dataset_summary)."""
    found: Summary | None = cache.get(key)
    if found is None and parts != PARTS:
        found = cache.get(_parts_key(key, parts))
    return found


def dataset_summary(
    dataset: Dataset,
    items: QuerySet[Item] | None = None,
    *,
    refresh: bool = False,
    parts: frozenset[str] = PARTS,
) -> Summary:
    """Facet counts and statistics of a view's items (None: the whole dataset), from the
    cache when fresh; only `parts` of them when that is all the caller shows."""
    unknown = parts - PARTS
    if unknown:
        raise ValueError(f"unknown summary parts: {sorted(unknown)}")
    # The key is taken before counting: a change made meanwhile (summary_forget) moves the
    # generation on, and these figures, counted before it, must not be stored under it.
    key = view_cache_key(dataset, items)
    if not refresh:
        cached = _cached(key, parts)
        if cached is not None:
            return cached
    summary = _summarise(dataset, items, parts)
    cache.set(_parts_key(key, parts), summary, CACHE_SECONDS)
    if parts != PARTS:
        cache.delete(key)  # whole figures counted before this refresh would shadow it
    return summary


# ---------------------------------------------------------------------------- computing


def _labels(sample_sql: str, params: list[Any], scale: float) -> list[LabelCount]:
    # The annotations' (item, label) index: one descent per item. ShapeCount's primary key
    # starts with (dataset, source, dim, key), so reading an item's labels there skips
    # over every label of the dataset: 4 to 6 times slower, measured on a 5,000-item sample.
    # Grouped twice, by (label, item) and then by label, both hashed: count(DISTINCT item)
    # sorted every annotation instead (24-25 ms against 15-17 for a 5,000-item sample at 1M).
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH s AS ({sample_sql}) "
            "SELECT label, count(*), sum(n)::bigint FROM ("
            "  SELECT a.label, a.item_id, count(*) AS n FROM s"
            "  JOIN curation_annotation a ON a.item_id = s.id GROUP BY a.label, a.item_id"
            ") g GROUP BY label ORDER BY count(*) DESC, label LIMIT %s",
            [*params, TOP_LABELS],
        )
        return [
            LabelCount(label, round(items * scale), round(annotations * scale))
            for label, items, annotations in cursor.fetchall()
        ]


def _metadata(sample_sql: str, params: list[Any], scale: float) -> list[MetadataKey]:
    """The 50 commonest keys of the basis's metadata, what kind each is, the top values of
    categories and the histograms of numbers.

    One statement: the basis's (key, value) pairs are expanded once and grouped by value
    (g), and every figure is read from those groups: a key's count is the sum of its
    values' counts, its distinct texts the number of its text groups, a histogram the
    sum over each value's bucket. A category has a handful of values, so the groups are
    far fewer than the pairs, and the number parsing (_FLOAT) runs once a value. Reading
    the pairs themselves three times (sorting all of them by key and value for the
    distinct count) took 85-90 ms for a 5,000-item sample at 1M, this 45 ms; as three
    statements, each expanding the pairs again, about 0.1 s each."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH s AS ({sample_sql}), "
            "g AS MATERIALIZED ("
            "  SELECT v.key, v.value, v.t, v.n, "
            + _FLOAT.replace("e.value", "v.value")
            + " AS x FROM ("
            "    SELECT e.key, e.value, min(jsonb_typeof(e.value)) AS t, count(*) AS n"
            f"    FROM s, {METADATA_PAIRS} GROUP BY e.key, e.value"
            "  ) v"
            "), k AS MATERIALIZED ("
            "  SELECT key, present, numbers, texts, distinct_texts, low, high,"
            "    row_number() OVER (ORDER BY present DESC, key) AS r,"
            "    CASE WHEN numbers > 0 AND numbers >= texts THEN 'number'"
            "      WHEN texts > 0 AND distinct_texts <= %s THEN 'category'"
            "      WHEN texts > 0 THEN 'many' ELSE 'other' END AS kind"
            "  FROM ("
            "    SELECT key, sum(n)::bigint AS present,"
            "      coalesce(sum(n) FILTER (WHERE t = 'number'), 0)::bigint AS numbers,"
            "      coalesce(sum(n) FILTER (WHERE t IN ('string', 'boolean')), 0)::bigint AS texts,"
            "      count(*) FILTER (WHERE t IN ('string', 'boolean')) AS distinct_texts,"
            "      min(x) AS low, max(x) AS high"
            "    FROM g GROUP BY key ORDER BY sum(n) DESC, key LIMIT 50"
            "  ) a"
            ") "
            # 0: the keys, in order
            "SELECT 0 AS part, r, key, present AS n, numbers, texts, distinct_texts, low,"
            "  high, NULL::text AS value FROM k "
            # 1: the top values of each category, as text (true and "true" are one)
            "UNION ALL SELECT 1, NULL, key, n, NULL, NULL, NULL, NULL, NULL, value FROM ("
            "  SELECT g.key, g.value #>> '{}' AS value, sum(g.n)::bigint AS n, row_number() OVER ("
            "    PARTITION BY g.key ORDER BY sum(g.n) DESC, g.value #>> '{}') AS rank"
            "  FROM g JOIN k ON k.key = g.key AND k.kind = 'category'"
            "  WHERE g.t IN ('string', 'boolean') GROUP BY g.key, g.value #>> '{}'"
            ") v WHERE rank <= %s "
            # 2: the histogram of each number, over its range. The top value falls past
            # the last bucket (width_bucket's upper bound is exclusive): LEAST puts it
            # back. One distinct value is one bucket.
            "UNION ALL SELECT 2, CASE WHEN k.high > k.low"
            "  THEN LEAST(width_bucket(g.x, k.low, k.high, %s), %s) ELSE 1 END,"
            "  g.key, sum(g.n)::bigint, NULL, NULL, NULL, NULL, NULL, NULL"
            "  FROM g JOIN k ON k.key = g.key AND k.kind = 'number'"
            "  AND k.low IS NOT NULL AND k.high IS NOT NULL"
            "  WHERE g.t = 'number' AND g.x IS NOT NULL GROUP BY 2, 3 "
            "ORDER BY part, r, key, n DESC, value",
            [*params, MAX_CATEGORIES, TOP_VALUES, HISTOGRAM_BINS, HISTOGRAM_BINS],
        )
        rows = cursor.fetchall()
    keys: list[MetadataKey] = []
    by_key: dict[str, MetadataKey] = {}
    for part, r, key, n, numbers, texts, distinct, low, high, value in rows:
        if part == 0:
            if numbers and numbers >= texts:
                kind = "number"
            elif texts and distinct <= MAX_CATEGORIES:
                kind = "category"
            elif texts:
                kind = "many"
            else:
                kind = "other"
            found = MetadataKey(
                key=key,
                kind=kind,
                present=round(n * scale),
                distinct=distinct,
                minimum=low if kind == "number" else None,
                maximum=high if kind == "number" else None,
            )
            if found.minimum is not None and found.maximum is not None:
                found.bins = _bins(float(found.minimum), float(found.maximum))
            keys.append(found)
            by_key[key] = found
        elif part == 1:
            by_key[key].values.append(ValueCount(value, round(n * scale)))
        else:
            bins = by_key[key].bins
            index = min(max(int(r) - 1, 0), len(bins) - 1)
            bins[index].count += round(n * scale)
    return keys


def _bins(low: float, high: float) -> list[Bin]:
    """HISTOGRAM_BINS equal buckets from low to high (one, when they are equal)."""
    if high == low:
        return [Bin(low, high, 0)]
    width = (high - low) / HISTOGRAM_BINS
    return [Bin(low + i * width, low + (i + 1) * width, 0) for i in range(HISTOGRAM_BINS)]


def _boxes_per_item(
    dataset: Dataset, sample_sql: str, params: list[Any], scale: float
) -> list[tuple[str, int]]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH s AS ({sample_sql}) "
            "SELECT LEAST(coalesce(c.n, 0), %s), count(*) FROM s "
            "LEFT JOIN curation_shapecount c ON c.dataset_id = %s AND c.source = 0 "
            "AND c.dim = 2 AND c.key = 'box' AND c.item_id = s.id GROUP BY 1 ORDER BY 1",
            [*params, BOXES_CAP, dataset.pk],
        )
        found = dict(cursor.fetchall())
    if not found:
        return []
    top = max(found)
    return [
        (f"{n}+" if n == BOXES_CAP else str(n), round(found.get(n, 0) * scale))
        for n in range(top + 1)
    ]


def _quality(dataset: Dataset, ids: list[int], scale: float) -> QualityFigures:
    """Items per quality facet and the signals' histograms, over the basis's ids.

    The facets are counted with the very queries their links apply (one aggregate, a
    FILTER per facet), so a count is what clicking it shows. The ids are one array
    parameter: `id__in` binds each of the 5,000 on its own, which cost more Python time
    (about 40 ms) than the aggregate itself."""
    basis = Item.objects.filter(
        RawSQL("curation_item.id = ANY(%s::bigint[])", [ids], output_field=BooleanField())
    )
    counts = basis.aggregate(
        _computed=Count("id", filter=compile_query("quality.brightness != null", dataset=dataset)),
        **{f.key: Count("id", filter=compile_query(f.query, dataset=dataset)) for f in FLAGS},
    )
    computed = counts.pop("_computed")
    histograms: dict[str, list[QualityBin]] = {}
    names = list(HISTOGRAM_EDGES)
    # Column names and edges are constants of curation.quality; only the ids are bound.
    selects = " UNION ALL ".join(
        f"SELECT {i}, width_bucket({QUALITY_FIELDS[name].column}, %s::float8[]), count(*) "
        f"FROM q WHERE {QUALITY_FIELDS[name].column} IS NOT NULL GROUP BY 2"
        for i, name in enumerate(names)
    )
    columns = ", ".join(QUALITY_FIELDS[name].column for name in names)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH q AS MATERIALIZED (SELECT {columns} FROM curation_item "
            f"WHERE id = ANY(%s::bigint[])) {selects}",
            [ids, *(HISTOGRAM_EDGES[name] for name in names)],
        )
        found = {(i, bucket): n for i, bucket, n in cursor.fetchall()}
    for i, name in enumerate(names):
        edges = HISTOGRAM_EDGES[name]
        bins = []
        for b, low in enumerate(edges, start=1):
            high = edges[b] if b < len(edges) else None
            bins.append(
                QualityBin(
                    low, high, round(found.get((i, b), 0) * scale), bucket_query(name, low, high)
                )
            )
        histograms[name] = bins
    return QualityFigures(
        flags={k: round(v * scale) for k, v in counts.items()},
        histograms=histograms,
        computed=round(computed * scale),
    )


def _dynamic_count(found: Slice) -> int:
    """A dynamic slice's matches now, counted no further than SAMPLE_TARGET."""
    try:
        return slice_items(found)[: sampling.SAMPLE_TARGET].count()
    except CurationError:  # its saved query no longer compiles (a renamed model)
        return 0


def _per_link(
    sample_sql: str, params: list[Any], scale: float, table: str, column: str
) -> dict[int, int]:
    """Items of the basis per tag or static slice id (scaled when sampled), through the
    link table (curation_itemtag.tag_id, curation_sliceitem.slice_id)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH s AS ({sample_sql}) SELECT l.{column}, count(*) FROM s "
            f"JOIN {table} l ON l.item_id = s.id GROUP BY l.{column}",
            params,
        )
        return {link_id: round(n * scale) for link_id, n in cursor.fetchall()}


def _dynamic_count_in(found: Slice, items: QuerySet[Item]) -> int:
    """A dynamic slice's matches among a view's items, counted no further than SAMPLE_TARGET."""
    try:
        return items.filter(slice_items_q(found))[: sampling.SAMPLE_TARGET].count()
    except CurationError:
        return 0


def _summarise(
    dataset: Dataset, items: QuerySet[Item] | None, parts: frozenset[str] = PARTS
) -> Summary:
    basis, sample_sql, params = sample_basis(dataset, items)
    scale = basis.scale
    tags: list[tuple[int, str, int]] = []
    slices: list[tuple[int, str, int, bool]] = []
    if items is None:
        if "tags" in parts:
            tags = [(t.pk, t.name, t.item_count) for t in selectors.tags_of(dataset=dataset)]
        if "slices" in parts:
            slices = [
                (
                    s.pk,
                    s.name,
                    # a static slice's count is bounded (count_capped)
                    _dynamic_count(s) if s.is_dynamic else selectors.slice_item_count(slice=s)[0],
                    s.is_dynamic,
                )
                for s in selectors.slices_of(dataset=dataset)
            ]
    else:
        # Within the view: every tag and slice of the dataset stays listed (a facet that
        # is on must stay there to be turned off), with the view's items in it.
        if "tags" in parts:
            in_view = _per_link(sample_sql, params, scale, "curation_itemtag", "tag_id")
            # Names only: the dataset-wide counts of tags_of cost 25 ms at 1M, for nothing.
            tags = [
                (pk, name, in_view.get(pk, 0))
                for pk, name in selectors.tag_names_of(dataset=dataset)
            ]
        if "slices" in parts:
            in_slices = _per_link(sample_sql, params, scale, "curation_sliceitem", "slice_id")
            slices = [
                (
                    s.pk,
                    s.name,
                    _dynamic_count_in(s, items) if s.is_dynamic else in_slices.get(s.pk, 0),
                    s.is_dynamic,
                )
                for s in selectors.slices_of(dataset=dataset)
            ]
    return Summary(
        basis=basis,
        labels=_labels(sample_sql, params, scale) if "labels" in parts else [],
        metadata=_metadata(sample_sql, params, scale) if "metadata" in parts else [],
        boxes_per_item=(
            _boxes_per_item(dataset, sample_sql, params, scale) if "boxes" in parts else []
        ),
        tags=tags,
        slices=slices,
        # sample_basis selects the basis by its ids (sampling._BY_IDS, [ids]).
        quality=_quality(dataset, params[0], scale) if "quality" in parts else None,
        parts=parts,
    )
