"""Similarity search: the k nearest items to a vector, an item, an image or a text.

How a query is run (``knn``), and why:

* No filter: an HNSW scan of the (model, dataset) index with ``hnsw.ef_search`` raised to
  at least offset+limit (SET LOCAL, so only this transaction sees it). The scan yields up
  to ef_search rows; if it yields fewer than asked (a tiny dataset) the query is answered
  by an exact scan instead. Pages end at MAX_SEARCH_DEPTH, pgvector's ef_search limit, so
  no request can make every search scan all of a dataset's vectors exactly.
* A filter (slice, tags, metadata, or any item queryset, e.g. from the query language):
  an HNSW scan cannot see the filter, it returns at most ef_search candidates and the
  filter then throws most of them away. So, per query:
  1. count the filtered items, stopping at NUCLEUS_SEARCH_EXACT_MAX + 1. If the filter
     keeps at most that many, scan exactly those items (sorting a few thousand distances
     is fast and always returns exactly k);
  2. on pgvector >= 0.8 (the embedded server has 0.8.5), let the index do it: an
     iterative index scan (``hnsw.iterative_scan = relaxed_order``) keeps walking the
     graph until k rows pass the filter, visiting at most ``hnsw.max_scan_tuples``
     tuples, sized from the filter's selectivity; rows come back re-sorted exactly;
  3. on older pgvector (0.6 or 0.7 on an external server) take ef candidates from the
     index, ef sized from the filter's selectivity (k / selectivity, doubled for recall),
     keep the ones that pass the filter, and if fewer than k remain, raise ef from what
     was observed and try again (a top-up loop);
  4. when ef would exceed pgvector's limit of 1000 and still not find k, scan exactly.
  Every path ends exact when the index falls short, so the answer always has k rows
  whenever k items match.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.db.models.fields.json import KeyTransform

from curation.errors import InvalidInput, NotFound, field_error, invalid_field
from curation.itemsets import slice_items_q
from curation.models import Dataset, Item, Slice, SliceItem
from embeddings import vectors as vec
from embeddings.models import Embedding, EmbeddingModel

EF_SEARCH_MAX = 1000  # pgvector's upper bound for hnsw.ef_search
# pgvector's default for hnsw.max_scan_tuples (0.8): an iterative scan never visits fewer.
MAX_SCAN_TUPLES_MIN = 20_000
# Searches page through the nearest 1000 items at most: deeper pages are past what one
# HNSW scan returns, and answering them exactly would scan every vector of the dataset.
MAX_SEARCH_DEPTH = EF_SEARCH_MAX
DEPTH_MESSAGE = f"offset + limit must be at most {MAX_SEARCH_DEPTH}"
METADATA_OPS = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "exists")
_KEY_PART = re.compile(r"^[^.\x00]{1,200}$")


@dataclass(frozen=True)
class MetadataCondition:
    """`metadata.<key> <op> <value>`; `key` may be a dotted path into nested objects."""

    key: str
    op: str = "eq"
    value: Any = None

    def q(self, alias: str) -> tuple[Q, Any]:
        """The condition as a Q on an alias, and the expression the alias stands for."""
        parts = self.key.split(".")
        expr: Any = F("metadata")
        for part in parts:
            expr = KeyTransform(part, expr)
        if self.op == "exists":
            wanted = True if self.value is None else bool(self.value)
            return Q(**{f"{alias}__isnull": not wanted}), expr
        if self.op in ("eq", "ne"):
            if isinstance(self.value, dict | list):
                cond = Q(**{alias: self.value})
            else:
                # Scalars use containment, which the metadata GIN index answers.
                nested: Any = self.value
                for part in reversed(parts):
                    nested = {part: nested}
                cond = Q(metadata__contains=nested)
            return (~cond if self.op == "ne" else cond), expr
        if self.op == "in":
            return Q(**{f"{alias}__in": list(self.value)}), expr
        return Q(**{f"{alias}__{self.op}": self.value}), expr


@dataclass
class SearchFilter:
    """What to restrict a search to; every part must hold (AND).

    `items` takes a Q on Item or a queryset of items, so any other part of the service
    (e.g. the query language) can hand over its own restriction.
    """

    slice_id: int | None = None
    tags: Sequence[str] = ()
    metadata: Sequence[MetadataCondition] = ()
    items: Q | QuerySet[Item] | None = None
    exclude_item_ids: Sequence[int] = ()

    @property
    def restricts(self) -> bool:
        """Whether it narrows the dataset (exclusions of single items do not count)."""
        return bool(self.slice_id or self.tags or self.metadata or self.items is not None)

    def _slice(self, dataset: Dataset) -> Slice | None:
        if not self.slice_id:
            return None
        return Slice.objects.filter(pk=self.slice_id, dataset_id=dataset.pk).first()

    def queryset(self, dataset: Dataset, *, found: Slice | None = None) -> QuerySet[Item]:
        """The dataset's items that pass the filter, unordered (`found`: the filter's
        slice, when the caller has read it already)."""
        qs = Item.objects.filter(dataset_id=dataset.pk)
        if self.slice_id:
            found = found or self._slice(dataset)
            if found is None:
                return qs.none()
            # A dynamic slice has no member rows: its items are its query's matches now.
            qs = qs.filter(slice_items_q(found))
        for name in self.tags:
            qs = qs.filter(tag_links__tag__dataset_id=dataset.pk, tag_links__tag__name=name)
        for index, condition in enumerate(self.metadata):
            alias = f"_meta{index}"
            cond, expr = condition.q(alias)
            qs = qs.alias(**{alias: expr}).filter(cond)
        if isinstance(self.items, Q):
            qs = qs.filter(self.items)
        elif self.items is not None:
            qs = qs.filter(id__in=self.items.order_by().values("id"))
        return qs.order_by()

    def ids(self, dataset: Dataset) -> QuerySet[Any]:
        """The ids of the items that pass the filter, as a one-column queryset for
        `IN (...)`. A static slice alone is read from its member rows: through the items
        table (`queryset`) each member was looked up in curation_item again, which at
        1M items made a search of a 10,000-item slice take twice as long."""
        found = self._slice(dataset)
        alone = not (self.tags or self.metadata or self.items is not None)
        if found is not None and alone and not found.is_dynamic:
            return SliceItem.objects.filter(slice_id=found.pk).values("item_id")
        return self.queryset(dataset, found=found).values("id")


def metadata_condition(raw: Any, index: int) -> MetadataCondition:
    """Validate one `{"key", "op", "value"}` object from the API."""
    path = f"filter.metadata[{index}]"
    if not isinstance(raw, dict):
        raise invalid_field(path, "must be an object")
    key, op, value = raw.get("key"), raw.get("op", "eq"), raw.get("value")
    problems: list[dict[str, str]] = []
    if not isinstance(key, str) or not all(_KEY_PART.match(p) for p in key.split(".")):
        problems.append(
            {
                "path": f"{path}.key",
                "message": "must be a metadata key, e.g. weather or camera.model",
            }
        )
    if op not in METADATA_OPS:
        problems.append(field_error(f"{path}.op", f"must be one of {', '.join(METADATA_OPS)}"))
    elif op == "in" and not isinstance(value, list):
        problems.append(field_error(f"{path}.value", "must be a list for op 'in'"))
    elif op in ("lt", "lte", "gt", "gte") and (
        isinstance(value, bool) or not isinstance(value, int | float | str)
    ):
        problems.append(field_error(f"{path}.value", f"must be a number or a string for op '{op}'"))
    elif op in ("eq", "ne") and value is None and "value" not in raw:
        problems.append(field_error(f"{path}.value", "is required"))
    if problems:
        raise InvalidInput(
            "; ".join(f"{p['path']}: {p['message']}" for p in problems), fields=problems
        )
    return MetadataCondition(key=key, op=op, value=value)  # type: ignore[arg-type]


@dataclass
class Hit:
    item_id: int
    score: float  # cosine similarity, 1 = same direction


@dataclass
class SearchResult:
    model: EmbeddingModel
    hits: list[Hit]
    strategy: str
    offset: int
    limit: int
    has_more: bool = False
    items: dict[int, Item] = field(default_factory=dict)

    def items_in_order(self) -> list[tuple[Item, float]]:
        return [(self.items[h.item_id], h.score) for h in self.hits if h.item_id in self.items]


# --------------------------------------------------------------------------- strategies


def _exact(
    dataset: Dataset,
    model: EmbeddingModel,
    query: str,
    ids: QuerySet[Any] | None,
    exclude: Sequence[int],
    top: int,
) -> list[tuple[int, float]]:
    """Exact k-NN over the (filtered) vectors; `ids` from SearchFilter.ids.

    The distance is computed on the bare column, not on the ``::vector(D)`` cast the HNSW
    index is built on, so the planner cannot answer this with the (approximate) index.
    """
    where = [f"e.model_id = {int(model.pk)}", f"e.dataset_id = {int(dataset.pk)}"]
    params: list[Any] = [query]
    if ids is not None:
        sql, item_params = ids.query.sql_with_params()
        where.append(f"e.item_id IN ({sql})")
        params.extend(item_params)
    if exclude:
        where.append("e.item_id <> ALL(%s)")
        params.append(list(exclude))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT e.item_id, e.vector <=> %s::vector AS distance FROM {vec.TABLE} e "
            f"WHERE {' AND '.join(where)} ORDER BY distance, e.item_id LIMIT {int(top)}",
            params,
        )
        return [(int(i), float(d)) for i, d in cursor.fetchall()]


def _hnsw(
    dataset: Dataset,
    model: EmbeddingModel,
    query: str,
    ef: int,
    limit: int,
    index_type: str,
) -> list[tuple[int, float]]:
    """Approximate k-NN through the (model, dataset) HNSW index, `ef` candidates deep.

    The index ranks (in half precision where it is a halfvec index); the distances come
    from the stored full-precision vectors, and the rows are put in their order.
    """
    order = vec.distance_sql(model.dimension, index_type=index_type)
    sql = (
        f"SELECT item_id, vector <=> %s::vector AS distance FROM {vec.TABLE} "
        f"WHERE model_id = {int(model.pk)} AND dataset_id = {int(dataset.pk)} "
        f"ORDER BY {order} LIMIT {int(limit)}"
    )
    if ef == vec.session_ef_search() and not connection.in_atomic_block:
        # The connection already has this breadth (vectors.ef_search_default): one round
        # trip, no transaction. Not inside a caller's transaction: a SET LOCAL made earlier
        # in it would still be in force.
        with connection.cursor() as cursor:
            cursor.execute(sql, [query, query])
            rows = [(int(i), float(d)) for i, d in cursor.fetchall()]
    else:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL hnsw.ef_search = {int(ef)}")
            cursor.execute(sql, [query, query])
            rows = [(int(i), float(d)) for i, d in cursor.fetchall()]
    return sorted(rows, key=lambda row: (row[1], row[0]))


def _hnsw_iterative(
    dataset: Dataset,
    model: EmbeddingModel,
    query: str,
    ids: QuerySet[Any],
    exclude: Sequence[int],
    top: int,
    max_scan: int,
    index_type: str,
) -> list[tuple[int, float]]:
    """pgvector >= 0.8: the index scan itself continues until `top` rows pass the filter.

    relaxed_order, not strict_order: a strict scan must hold back (or drop) every row that
    comes out of distance order, so it walks further for the same rows; relaxed yields
    them as found, and the outer ORDER BY on the materialised rows puts them back in exact
    distance order (pgvector's documented pattern; `+ 0` keeps PostgreSQL 17+ from taking
    the CTE's own ORDER BY as already sorting the outer query). The scan stops after
    `max_scan` visited tuples (or when it would outgrow work_mem); if it stops short of
    `top`, the caller answers exactly. As in `_hnsw`, the index ranks and the distances
    (and so the final order) are full precision.
    """
    order = vec.distance_sql(model.dimension, index_type=index_type)
    sql, item_params = ids.query.sql_with_params()
    where = [
        f"model_id = {int(model.pk)}",
        f"dataset_id = {int(dataset.pk)}",
        f"item_id IN ({sql})",
    ]
    params: list[Any] = [query, *item_params]
    if exclude:
        where.append("item_id <> ALL(%s)")
        params.append(list(exclude))
    params.append(query)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        # ef_search is the first round's candidate list; later rounds widen it themselves.
        ef = max(settings.NUCLEUS_SEARCH_EF_SEARCH, min(top, EF_SEARCH_MAX))
        cursor.execute(f"SET LOCAL hnsw.ef_search = {int(ef)}")
        cursor.execute(f"SET LOCAL hnsw.max_scan_tuples = {int(max_scan)}")
        cursor.execute(
            "WITH nearest AS MATERIALIZED (SELECT item_id, vector <=> %s::vector AS distance "
            f"FROM {vec.TABLE} WHERE {' AND '.join(where)} "
            f"ORDER BY {order} LIMIT {int(top)}) "
            "SELECT item_id, distance FROM nearest ORDER BY distance + 0, item_id",
            params,
        )
        return [(int(i), float(d)) for i, d in cursor.fetchall()]


def max_scan_tuples(want: int, selectivity: float, rows: float) -> int:
    """How many tuples an iterative scan may visit to find `want` rows passing a filter.

    A filter keeping a fraction s of the rows passes about one visited tuple in 1/s, so
    `want` rows take about want / s visits; four times that leaves room for a filter whose
    matches lie away from the query (they are met later in the walk than their share
    says). Never below pgvector's default, never above the rows the index holds: past
    that the walk is longer than the exact scan it would replace.
    """
    needed = math.ceil(4 * want / max(selectivity, 1e-9))
    return max(MAX_SCAN_TUPLES_MIN, min(needed, math.ceil(rows)))


def _count_capped(ids: QuerySet[Any], cap: int) -> int:
    """How many items pass the filter, counting no further than `cap` + 1."""
    sql, params = ids.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM ({sql} LIMIT {int(cap) + 1}) s", params)
        return int(cursor.fetchone()[0])


def _estimate(ids: QuerySet[Any]) -> float:
    """The planner's row estimate for the filter (cheap; used only to size ef)."""
    sql, params = ids.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        import json

        plan = json.loads(plan)
    return float(plan[0]["Plan"]["Plan Rows"])


def knn(
    *,
    dataset: Dataset,
    model: EmbeddingModel,
    vector: np.ndarray,
    search_filter: SearchFilter | None,
    top: int,
) -> tuple[list[tuple[int, float]], str]:
    """The `top` nearest items as (item_id, cosine distance), best first, and how."""
    query = vec.vector_literal(vector)
    flt = search_filter or SearchFilter()
    exclude = list(flt.exclude_item_ids)
    ids = flt.ids(dataset) if flt.restricts else None
    if ids is not None and ids.query.is_empty():
        return [], "exact"  # e.g. a slice of another dataset: nothing passes
    indexed, index_rows, index_type = vec.index_info_for_search(model.pk, dataset.pk)
    if not indexed:
        # No index yet (the first embedding job is still loading): exact is all there is.
        return _exact(dataset, model, query, ids, exclude, top), "exact"

    if ids is None:
        want = top + len(exclude)
        if top <= EF_SEARCH_MAX:
            ef = min(EF_SEARCH_MAX, max(settings.NUCLEUS_SEARCH_EF_SEARCH, want))
            candidates = _hnsw(dataset, model, query, ef, min(want, ef), index_type)
            rows = [r for r in candidates if r[0] not in exclude]
            if len(rows) >= top:
                return rows[:top], "hnsw"
            if len(candidates) == EF_SEARCH_MAX:
                # As deep as the index goes, and short only by the excluded items: an exact
                # scan of every vector to add those few rows at depth 1000 is not worth it.
                return rows, "hnsw"
        return _exact(dataset, model, query, None, exclude, top), "exact"

    exact_max = settings.NUCLEUS_SEARCH_EXACT_MAX
    matching = _count_capped(ids, exact_max)
    if matching <= exact_max:
        return _exact(dataset, model, query, ids, exclude, top), "exact"

    # `matching` stopped counting at the cap, so it only bounds the selectivity from
    # below; the planner's estimate may know better.
    total = max(index_rows, float(matching), 1.0)
    selectivity = min(1.0, max(float(matching), _estimate(ids)) / total)
    want = top + len(exclude)

    if vec.has_iterative_scan():
        max_scan = max_scan_tuples(want, selectivity, total)
        rows = _hnsw_iterative(dataset, model, query, ids, exclude, top, max_scan, index_type)
        if len(rows) >= top:
            return rows, "hnsw-iterative"
        return _exact(dataset, model, query, ids, exclude, top), "exact"

    # pgvector < 0.8: a post-filter loop over ever deeper plain index scans.
    ef = min(
        EF_SEARCH_MAX, max(settings.NUCLEUS_SEARCH_EF_SEARCH, math.ceil(2 * want / selectivity))
    )
    while True:
        candidates = _hnsw(dataset, model, query, ef, ef, index_type)
        found = [c[0] for c in candidates]
        passing = set(Item.objects.filter(pk__in=ids, id__in=found).values_list("id", flat=True))
        passing.difference_update(exclude)
        rows = [c for c in candidates if c[0] in passing]
        if len(rows) >= top:
            return rows[:top], "hnsw-filtered"
        if ef >= EF_SEARCH_MAX or len(candidates) < ef:
            break  # the index has nothing deeper to give
        observed = max(len(rows), 1) / ef
        ef = min(EF_SEARCH_MAX, max(2 * ef, math.ceil(1.5 * top / observed)))
    return _exact(dataset, model, query, ids, exclude, top), "exact"


# ------------------------------------------------------------------------ entry points


def _check_page(offset: int, limit: int) -> None:
    problems = []
    if offset < 0:
        problems.append(field_error("offset", "must be >= 0"))
    if not 1 <= limit <= MAX_SEARCH_DEPTH:
        problems.append(field_error("limit", f"must be from 1 to {MAX_SEARCH_DEPTH}"))
    if offset + limit > MAX_SEARCH_DEPTH:
        problems.append(field_error("offset", DEPTH_MESSAGE))
    if problems:
        raise InvalidInput(
            "; ".join(f"{p['path']}: {p['message']}" for p in problems), fields=problems
        )


def search_vector(
    *,
    dataset: Dataset,
    model: EmbeddingModel,
    vector: Sequence[float] | np.ndarray,
    search_filter: SearchFilter | None = None,
    offset: int = 0,
    limit: int = 50,
) -> SearchResult:
    """Items of `dataset` nearest to `vector` under `model`, best first, one page."""
    _check_page(offset, limit)
    # A number past float32's range becomes inf here, which the finiteness check below
    # refuses with a 400; NumPy's overflow warning about it says nothing more.
    with np.errstate(over="ignore"):
        array = np.asarray(vector, dtype=np.float32).reshape(-1)
    if array.shape[0] != model.dimension:
        raise InvalidInput(
            f"vector: has {array.shape[0]} values; "
            f"model {model.name} has dimension {model.dimension}",
            fields=[field_error("vector", f"must have {model.dimension} values")],
        )
    if not np.all(np.isfinite(array)) or not np.any(array):
        raise InvalidInput(
            "vector: must be finite numbers, not all zero",
            fields=[field_error("vector", "must be finite numbers, not all zero")],
        )
    array = vec.normalize(array[None, :])[0]
    # One row more than the page tells whether there is a next page; at the deepest page
    # there is none to ask for.
    rows, strategy = knn(
        dataset=dataset,
        model=model,
        vector=array,
        search_filter=search_filter,
        top=min(offset + limit + 1, MAX_SEARCH_DEPTH),
    )
    page = rows[offset : offset + limit]
    hits = [Hit(item_id, 1.0 - distance) for item_id, distance in page]
    return SearchResult(
        model=model,
        hits=hits,
        strategy=strategy,
        offset=offset,
        limit=limit,
        has_more=len(rows) > offset + limit,
        items=items_by_id([h.item_id for h in hits]),
    )


# One fixed statement, not `in_bulk`: the ORM compiled its query anew for every search,
# which with the model's construction made the items' fetch cost a third of the kNN
# query itself (bench/search.py's service / raw SQL ratio).
_ITEMS_SQL = f"SELECT * FROM {Item._meta.db_table} WHERE id = ANY(%s)"


def items_by_id(ids: list[int]) -> dict[int, Item]:
    """The items with these ids, by id (missing ones left out)."""
    if not ids:
        return {}
    return {item.pk: item for item in Item.objects.raw(_ITEMS_SQL, [ids])}


def item_vector(*, model: EmbeddingModel, item: Item) -> np.ndarray:
    """The stored vector of an item; NotFound if it has none under `model`."""
    row = Embedding.objects.filter(model=model, item=item).values_list("vector", flat=True).first()
    if row is None:
        raise NotFound(
            f"Item {item.reference_id!r} has no vector under model {model.name}; "
            "run an embedding job first."
        )
    return np.asarray(row, dtype=np.float32)


def search_item(
    *,
    dataset: Dataset,
    model: EmbeddingModel,
    item: Item,
    search_filter: SearchFilter | None = None,
    offset: int = 0,
    limit: int = 50,
) -> SearchResult:
    """Items most like `item` (which is left out of its own results)."""
    if item.dataset_id != dataset.pk:
        raise NotFound("Item not found.")
    flt = replace(
        search_filter or SearchFilter(),
        exclude_item_ids=[*(search_filter.exclude_item_ids if search_filter else ()), item.pk],
    )
    return search_vector(
        dataset=dataset,
        model=model,
        vector=item_vector(model=model, item=item),
        search_filter=flt,
        offset=offset,
        limit=limit,
    )


def _encoder(model: EmbeddingModel) -> Any:
    from embeddings.clip import ModelSpec, encoder_for

    if not model.is_open_clip:
        raise InvalidInput(
            f"model: {model.name} is a custom model with uploaded vectors; it cannot embed "
            "texts or images. Search by item or by vector, or name an open_clip model.",
            fields=[field_error("model", "is a custom model; it cannot embed queries")],
        )
    return encoder_for(ModelSpec(model.architecture, model.weights))


def search_text(
    *,
    dataset: Dataset,
    model: EmbeddingModel,
    text: str,
    search_filter: SearchFilter | None = None,
    offset: int = 0,
    limit: int = 50,
) -> SearchResult:
    """Items whose images match a text prompt (the CLIP text tower)."""
    if not text.strip():
        raise invalid_field("text", "must not be blank")
    vector = _encoder(model).encode_texts([text])[0]
    return search_vector(
        dataset=dataset,
        model=model,
        vector=vector,
        search_filter=search_filter,
        offset=offset,
        limit=limit,
    )


def search_image(
    *,
    dataset: Dataset,
    model: EmbeddingModel,
    image: bytes,
    search_filter: SearchFilter | None = None,
    offset: int = 0,
    limit: int = 50,
) -> SearchResult:
    """Items that look like an uploaded image."""
    from embeddings.imaging import DecodeError, pixels_decode

    encoder = _encoder(model)
    try:
        pixels = pixels_decode(image, encoder.image_size)
    except DecodeError as exc:
        raise invalid_field("image", str(exc)) from None
    vector = encoder.encode_pixels(pixels[None, ...])[0]
    return search_vector(
        dataset=dataset,
        model=model,
        vector=vector,
        search_filter=search_filter,
        offset=offset,
        limit=limit,
    )
