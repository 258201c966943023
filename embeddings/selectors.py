"""Reads: which embedding models a dataset can use, which one it uses by default and
whether its weights are random, vector counts, the filter of a search, and pages of
duplicate groups."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any, TypeAlias, TypedDict

import numpy as np
from django.db import connection
from django.db.models import IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django_stubs_ext import WithAnnotations

from curation.errors import Conflict, InvalidInput, NotFound, field_error, invalid_field
from curation.itemsets import slice_items_q
from curation.models import Dataset, Item, Slice, Tag
from curation.query import QueryError, compile_query, sort_expression
from embeddings import search
from embeddings import vectors as vec
from embeddings.models import (
    DatasetSearchDefault,
    DuplicateGroup,
    DuplicateMember,
    DuplicateRun,
    Embedding,
    EmbeddingModel,
    Projection,
    ProjectionPoint,
)

# Vectors counted one by one per (model, dataset); past this many the count is the
# planner's row estimate of the pair's HNSW index, kept current by ANALYZE and autovacuum.
VECTOR_COUNT_EXACT_MAX = 100_000


class VectorCounts(TypedDict):
    vector_count: int
    vector_count_estimated: bool


# An embedding model as models_of returns it: with its vector count for the dataset.
CountedEmbeddingModel: TypeAlias = "WithAnnotations[EmbeddingModel, VectorCounts]"


class _RowCount(Subquery):
    """How many rows a subquery returns (the subquery may be sliced, to cap the count)."""

    template = "(SELECT count(*) FROM (%(subquery)s) _rows)"
    output_field = IntegerField()


def models_of(*, dataset: Dataset) -> list[CountedEmbeddingModel]:
    """Models a dataset can use (shared open_clip ones and its own custom ones), with the
    number of its items each has a vector for (`vector_count`, an estimate when
    `vector_count_estimated`)."""
    # Only this dataset's vectors, through the (dataset, model, item) index: shared models
    # have vectors in every dataset, and none of those are this dataset's business.
    capped = Embedding.objects.filter(dataset_id=dataset.pk, model_id=OuterRef("pk")).values("pk")[
        : VECTOR_COUNT_EXACT_MAX + 1
    ]
    models = list(
        EmbeddingModel.objects.filter(Q(dataset__isnull=True) | Q(dataset=dataset))
        # vector_count_estimated is set below, where the capped count is replaced.
        .annotate(vector_count=_RowCount(capped), vector_count_estimated=Value(False))
        .order_by("id")
    )
    for model in models:
        if model.vector_count > VECTOR_COUNT_EXACT_MAX:
            model.vector_count_estimated = True
            _, estimate = vec.index_state(model.pk, dataset.pk)
            model.vector_count = max(model.vector_count, round(estimate))
    return models


def model_of(*, dataset: Dataset, model_id: int) -> EmbeddingModel:
    """A model the dataset can use, by id: a shared one or the dataset's own."""
    model = EmbeddingModel.objects.filter(
        Q(dataset=dataset) | Q(dataset__isnull=True), pk=model_id
    ).first()
    if model is None:
        raise NotFound("No such embedding model for this dataset.")
    return model


def model_named(*, dataset: Dataset, name: str) -> EmbeddingModel:
    """The model called `name` for this dataset: its own custom model first, then a shared one."""
    found = (
        EmbeddingModel.objects.filter(Q(dataset=dataset) | Q(dataset__isnull=True), name=name)
        .order_by("dataset_id")  # NULLS LAST: the dataset's own model wins
        .first()
    )
    if found is None:
        raise NotFound(f"No embedding model {name!r} for this dataset.")
    return found


def default_model_or_none(*, dataset: Dataset) -> EmbeddingModel | None:
    """The model a dataset's searches use when none is named; None before it has one."""
    row = DatasetSearchDefault.objects.select_related("model").filter(dataset=dataset).first()
    return row.model if row is not None else None


def default_model(*, dataset: Dataset) -> EmbeddingModel:
    """The model a dataset's searches use when none is named; a 409 before it has one."""
    model = default_model_or_none(dataset=dataset)
    if model is None:
        raise Conflict(
            "This dataset has no embeddings yet: start an embedding job "
            "(POST /api/v1/datasets/{id}/embeddings/jobs) or upload vectors first."
        )
    return model


def random_weight_defaults(*, dataset_ids: Iterable[int]) -> list[EmbeddingModel]:
    """The random-weight models that any of these datasets searches with by default (the
    UI warns that their scores mean nothing), each once, in id order."""
    rows = (
        DatasetSearchDefault.objects.filter(
            dataset_id__in=list(dataset_ids), model__random_weights=True
        )
        .select_related("model")
        .order_by("model_id")
    )
    return list({row.model_id: row.model for row in rows}.values())


def vector_count(*, dataset: Dataset, model: EmbeddingModel) -> int:
    """How many of the dataset's items have a vector under the model (exact)."""
    return Embedding.objects.filter(dataset=dataset, model=model).count()


def model_for_search(*, dataset: Dataset, name: str | None) -> EmbeddingModel:
    return model_named(dataset=dataset, name=name) if name else default_model(dataset=dataset)


def search_filter_from(*, dataset: Dataset, raw: dict[str, Any] | None) -> search.SearchFilter:
    """Turn the API's filter object into a SearchFilter, checking names against the dataset."""
    raw = raw or {}
    tags = list(raw.get("tags") or [])
    known = set(Tag.objects.filter(dataset=dataset, name__in=tags).values_list("name", flat=True))
    unknown = [
        field_error(f"filter.tags[{i}]", f"no tag {t!r} in this dataset")
        for i, t in enumerate(tags)
        if t not in known
    ]
    if unknown:
        raise InvalidInput(unknown[0]["path"] + ": " + unknown[0]["message"], fields=unknown)
    conditions = [search.metadata_condition(c, i) for i, c in enumerate(raw.get("metadata") or [])]
    restrictions: list[Q] = []
    if (raw.get("query") or "").strip():
        try:
            restrictions.append(compile_query(raw["query"], dataset=dataset))
        except QueryError as exc:
            for field in exc.fields:
                field["path"] = "filter." + field["path"]
            raise
    if raw.get("slice") is not None:
        restrictions.append(_slice_restriction(dataset, raw["slice"]))
    items = None
    for restriction in restrictions:
        items = restriction if items is None else items & restriction
    return search.SearchFilter(tags=tags, metadata=conditions, items=items)


def _slice_restriction(dataset: Dataset, slice_id: int) -> Q:
    """The items of a slice as a filter: its members, or a dynamic slice's matches now."""
    found = Slice.objects.filter(pk=slice_id, dataset=dataset).first()
    if found is None:
        raise invalid_field("filter.slice", "no such slice in this dataset")
    try:
        return slice_items_q(found)
    except QueryError as exc:
        message = f"the dynamic slice's query no longer works: {exc.message}"
        raise invalid_field("filter.slice", message) from None


def duplicate_groups(
    *, run: DuplicateRun, kind: str | None, offset: int, limit: int
) -> list[DuplicateGroup]:
    """One page of a duplicates run's groups, by id, with their members' items."""
    groups = DuplicateGroup.objects.filter(run=run).select_related("representative")
    if kind is not None:
        groups = groups.filter(kind=kind)
    return list(groups.prefetch_related("members__item").order_by("id")[offset : offset + limit])


def duplicate_group_of(*, run: DuplicateRun, item_id: int) -> DuplicateGroup | None:
    """The group an item heads or belongs to in a run (the one it heads first)."""
    member = (
        DuplicateMember.objects.filter(group__run=run, item_id=item_id)
        .select_related("group")
        .order_by("-is_representative", "group_id")
        .first()
    )
    return member.group if member is not None else None


def duplicate_group_in(*, run: DuplicateRun, group_id: int) -> DuplicateGroup | None:
    """One group of a run, with its representative, or None."""
    return (
        DuplicateGroup.objects.filter(run=run, pk=group_id).select_related("representative").first()
    )


def duplicate_members(*, group: DuplicateGroup, limit: int) -> list[DuplicateMember]:
    """Up to `limit` members of a group with their items, the representative first."""
    return list(
        DuplicateMember.objects.filter(group=group)
        .select_related("item")
        .order_by("-is_representative", "id")[:limit]
    )


# ---------------------------------------------------------------------- embedding map

# Categories a colour array names one by one; the rest share the last code ("other").
MAX_CATEGORIES = 255


def projection_current(*, dataset: Dataset, projection_id: int | None = None) -> Projection | None:
    """The projection the map shows: the one named, or the newest finished one (with its
    model); None when there is none."""
    found = Projection.objects.filter(dataset=dataset).select_related("model")
    if projection_id is not None:
        return found.filter(pk=projection_id).first()
    return found.filter(status=Projection.Status.FINISHED).order_by("-id").first()


def projections_of(*, dataset: Dataset) -> list[Projection]:
    return list(Projection.objects.filter(dataset=dataset).select_related("model", "job")[:20])


def projection_points(*, projection: Projection) -> tuple[np.ndarray, np.ndarray]:
    """(item ids int64, coordinates float32 n x 2) of a projection, in item order: one COPY
    BINARY of an index-only scan, decoded by NumPy."""
    row = np.dtype(
        [
            ("fields", ">i2"),
            ("id_len", ">i4"),
            ("id", ">i8"),
            ("x_len", ">i4"),
            ("x", ">f4"),
            ("y_len", ">i4"),
            ("y", ">f4"),
        ]
    )
    out = io.BytesIO()
    with (
        connection.cursor() as cursor,
        cursor.copy(
            "COPY (SELECT item_id, x::real, y::real FROM embeddings_projectionpoint"
            f" WHERE projection_id = {int(projection.pk)} ORDER BY item_id)"
            " TO STDOUT (FORMAT BINARY)"
        ) as copy,
    ):
        for block in copy:
            out.write(block)
    rows = np.frombuffer(out.getvalue()[19:-2], dtype=row)
    coords = np.empty((len(rows), 2), dtype=np.float32)
    coords[:, 0] = rows["x"]
    coords[:, 1] = rows["y"]
    return rows["id"].astype(np.int64), coords


def _projection_items(projection: Projection) -> QuerySet[Item]:
    return Item.objects.filter(
        dataset_id=projection.dataset_id,
        pk__in=ProjectionPoint.objects.filter(projection=projection).values("item_id"),
    )


def projection_colours(
    *, projection: Projection, dataset: Dataset, text: str, ids: np.ndarray
) -> tuple[str, np.ndarray, list[str]]:
    """A value of the query language (`metadata.weather`, `annotations.car`, `eval["run"].fp`)
    per point, aligned with `ids` (the points' item ids, in order).

    Returns ("numeric", float32 with NaN for missing, []) when every present value is a number
    (or a boolean), else ("categorical", uint8 codes with 0 for missing, legend) where code k
    is legend[k - 1] (the most frequent values first; past MAX_CATEGORIES, "other").
    QueryError (a 400 naming `color`) when `text` names no value.
    """
    try:
        value = sort_expression(text, dataset=dataset)
    except QueryError as exc:
        raise invalid_field("color", exc.message) from None
    rows = list(
        _projection_items(projection)
        .annotate(_colour=value)
        .values_list("pk", "_colour")
        .iterator(chunk_size=10_000)
    )
    at = np.searchsorted(ids, np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)))
    values = [r[1] for r in rows]
    present = [v for v in values if v is not None]
    if all(isinstance(v, (int, float, bool)) for v in present):
        out = np.full(len(ids), np.nan, dtype=np.float32)
        numbers = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float32)
        out[at] = numbers
        return "numeric", out, []
    texts = ["" if v is None else str(v) for v in values]
    counts: dict[str, int] = {}
    for t in texts:
        if t:
            counts[t] = counts.get(t, 0) + 1
    ranked = sorted(counts, key=lambda t: (-counts[t], t))
    legend = ranked[:MAX_CATEGORIES]
    if len(ranked) > MAX_CATEGORIES:
        legend = [*ranked[: MAX_CATEGORIES - 1], "other"]
    code_of = {t: k + 1 for k, t in enumerate(legend)}
    other = len(legend)
    codes = np.zeros(len(ids), dtype=np.uint8)
    codes[at] = np.array([code_of.get(t, other) if t else 0 for t in texts], dtype=np.uint8)
    return "categorical", codes, legend


def projection_mask(
    *, projection: Projection, items: QuerySet[Item], ids: np.ndarray
) -> np.ndarray:
    """Which points (aligned with `ids`) are among `items` (a grid view's filter): bool array."""
    matching = np.fromiter(
        items.filter(pk__in=ProjectionPoint.objects.filter(projection=projection).values("item_id"))
        .order_by()
        .values_list("pk", flat=True)
        .iterator(chunk_size=10_000),
        dtype=np.int64,
    )
    return np.isin(ids, matching)
