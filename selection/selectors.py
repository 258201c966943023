"""Reads of the selection app: the pool's item ids, the stored scores its strategies rank
by (insights' uncertainty and embedding scores), labels, metadata values, vectors (in
chunks) and the items near a slice. The views and the engine call these; they never query.

Every read over the pool is chunked by item id (CHUNK ids per statement), so a 1M-item
pool is a few hundred bounded round trips, never one giant IN list nor a Python object per
vector value (vectors come through COPY BINARY, embeddings.projection.vectors_read).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.db.models import QuerySet

from curation.itemsets import ItemSet, item_ids_sql
from curation.models import Annotation, Dataset, Item, ItemTag, Model, Prediction, Slice, Tag
from embeddings import vectors as vec
from embeddings.models import Embedding, EmbeddingModel
from embeddings.projection import vectors_read
from embeddings.selectors import models_of
from insights.models import ItemScore, ItemUncertainty
from selection.models import Selection

CHUNK = 20_000


def pool_ids(*, pool: ItemSet) -> np.ndarray:
    """The pool's item ids, sorted."""
    sql, params = item_ids_sql(pool.queryset())
    out: list[np.ndarray] = []
    with transaction.atomic(), connection.cursor() as cursor:
        # A server-side cursor would do too; a sorted id array of 1M is 8 MB.
        cursor.execute(f"SELECT s.id FROM ({sql}) AS s(id) ORDER BY s.id", params)
        while rows := cursor.fetchmany(100_000):
            out.append(np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def chunks(ids: np.ndarray, size: int = CHUNK) -> Iterator[np.ndarray]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _id_list(ids: np.ndarray) -> list[int]:
    return [int(i) for i in ids]


def embedded_mask(*, model: EmbeddingModel, dataset: Dataset, ids: np.ndarray) -> np.ndarray:
    """Which of `ids` (sorted) have a vector of `model`: the dataset's embedded ids in one
    scan of the (dataset, model, item) index, matched in NumPy. At 1M items: 1.2 s, where
    fifty IN lists of 20,000 ids took most of 33 s (bench/selection.py)."""
    rows = Embedding.objects.filter(model=model, dataset=dataset).order_by()
    sql, params = rows.values("item_id").query.sql_with_params()
    out: list[np.ndarray] = []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        while got := cursor.fetchmany(100_000):
            out.append(np.fromiter((r[0] for r in got), dtype=np.int64, count=len(got)))
    have = np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
    return np.isin(ids, have)


def vectors_of(
    *, model: EmbeddingModel, dataset: Dataset, ids: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(ids, unit vectors) of these items, CHUNK at a time, in id order."""
    for part in chunks(ids):
        got_ids, got = vectors_read(model=model, dataset=dataset, item_ids=_id_list(part))
        yield got_ids, got


def uncertainty_values(*, model: Model, field: str, ids: np.ndarray) -> np.ndarray:
    """The model's stored uncertainty `field` of each item; NaN where it has none."""
    out = np.full(len(ids), np.nan)
    for part in chunks(ids):
        rows = ItemUncertainty.objects.filter(model=model, item_id__in=_id_list(part))
        for item_id, value in rows.values_list("item_id", field):
            out[np.searchsorted(ids, item_id)] = float(value)
    return out


def has_uncertainty(*, model: Model, ids: np.ndarray) -> bool:
    return any(
        ItemUncertainty.objects.filter(model=model, item_id__in=_id_list(part)).exists()
        for part in chunks(ids)
    )


def score_values(*, model: EmbeddingModel, field: str, ids: np.ndarray) -> np.ndarray:
    """The stored embedding score (uniqueness, ...) of each item; NaN where it has none."""
    out = np.full(len(ids), np.nan)
    for part in chunks(ids):
        rows = ItemScore.objects.filter(model=model, item_id__in=_id_list(part))
        for item_id, value in rows.exclude(**{f"{field}__isnull": True}).values_list(
            "item_id", field
        ):
            out[np.searchsorted(ids, item_id)] = float(value)
    return out


def labels_of(*, ids: np.ndarray, model: Model | None) -> list[list[str]]:
    """Each item's distinct labels: its annotations' (model None) or the model's
    predictions'."""
    out: list[list[str]] = [[] for _ in range(len(ids))]
    for part in chunks(ids):
        rows: QuerySet[Any] = (
            Annotation.objects.filter(item_id__in=_id_list(part))
            if model is None
            else Prediction.objects.filter(model=model, item_id__in=_id_list(part))
        )
        for item_id, label in rows.order_by().values_list("item_id", "label").distinct():
            out[int(np.searchsorted(ids, item_id))].append(str(label))
    return out


def has_labels(*, ids: np.ndarray, model: Model | None) -> bool:
    for part in chunks(ids):
        rows: QuerySet[Any] = (
            Annotation.objects.filter(item_id__in=_id_list(part))
            if model is None
            else Prediction.objects.filter(model=model, item_id__in=_id_list(part))
        )
        if rows.exists():
            return True
    return False


def metadata_values(*, ids: np.ndarray, key: str) -> list[Any]:
    """Each item's metadata value at a dotted key (None where absent), as text."""
    path = key.split(".")
    out: list[Any] = [None] * len(ids)
    with connection.cursor() as cursor:
        for part in chunks(ids):
            cursor.execute(
                "SELECT id, metadata #>> %s::text[] FROM curation_item WHERE id = ANY(%s)",
                [path, _id_list(part)],
            )
            for item_id, value in cursor.fetchall():
                out[int(np.searchsorted(ids, item_id))] = value
    return out


def target_item_ids(*, dataset: Dataset, slice: Slice | None, tag: Tag | None) -> np.ndarray:
    """The items of a slice (now) or a tag, sorted."""
    if slice is not None:
        return pool_ids(pool=ItemSet(dataset=dataset, slice=slice))
    assert tag is not None
    got = ItemTag.objects.filter(tag=tag).values_list("item_id", flat=True)
    return np.sort(np.fromiter(got, dtype=np.int64))


def mean_vector(*, model: EmbeddingModel, dataset: Dataset, ids: np.ndarray) -> np.ndarray | None:
    """The normalised mean of these items' vectors; None when none has one."""
    total: np.ndarray | None = None
    for _, got in vectors_of(model=model, dataset=dataset, ids=ids):
        if len(got):
            s = got.sum(axis=0, dtype=np.float64)
            total = s if total is None else total + s
    if total is None or not np.linalg.norm(total):
        return None
    unit: np.ndarray = (total / np.linalg.norm(total)).astype(np.float32)
    return unit


def items_near(
    *,
    model: EmbeddingModel,
    dataset: Dataset,
    of: np.ndarray,
    radius: float,
    neighbors: int,
) -> np.ndarray:
    """Items within cosine distance `radius` among the `neighbors` nearest of each item of
    `of`, through the (model, dataset) HNSW index (one LATERAL query per 500 items, as the
    duplicates job asks it)."""
    dim = int(model.dimension)
    model_id, dataset_id = int(model.pk), int(dataset.pk)
    cast = vec.index_info(model_id, dataset_id)[2]
    sql = f"""
        SELECT DISTINCT n.item_id
        FROM {vec.TABLE} a
        CROSS JOIN LATERAL (
            SELECT b.item_id, b.vector <=> a.vector AS distance
            FROM {vec.TABLE} b
            WHERE b.model_id = {model_id} AND b.dataset_id = {dataset_id}
            ORDER BY b.vector::{cast}({dim}) <=> a.vector::{cast}({dim})
            LIMIT {int(neighbors) + 1}
        ) n
        WHERE a.model_id = {model_id} AND a.dataset_id = {dataset_id} AND a.item_id = ANY(%s)
            AND n.distance <= %s
    """
    found: list[int] = []
    for part in chunks(of, 500):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL hnsw.ef_search = {max(40, 2 * (int(neighbors) + 1))}")
            cursor.execute(sql, [_id_list(part), float(radius) + 1e-6])
            found.extend(int(r[0]) for r in cursor.fetchall())
    return np.unique(np.asarray(found, dtype=np.int64))


def thumbnails(*, dataset: Dataset, ids: Sequence[int]) -> list[Item]:
    """These items, in this order (the preview's first tiles)."""
    by_id = {i.pk: i for i in Item.objects.filter(dataset=dataset, pk__in=list(ids))}
    return [by_id[i] for i in ids if i in by_id]


def selections_of(*, dataset: Dataset) -> list[Selection]:
    return list(
        Selection.objects.filter(dataset=dataset).select_related("slice", "job").order_by("-id")
    )


def selection_of(*, dataset: Dataset, selection_id: int) -> Selection | None:
    return (
        Selection.objects.filter(dataset=dataset, pk=selection_id)
        .select_related("slice", "job")
        .first()
    )


def models_for_builder(*, dataset: Dataset) -> dict[str, Any]:
    """The names the builder offers: prediction models, embedding models, slices, tags."""
    return {
        "models": list(
            Model.objects.filter(dataset=dataset).order_by("name").values_list("name", flat=True)
        ),
        "embedding_models": [m.name for m in models_of(dataset=dataset)],
        "slices": [
            {"id": pk, "name": name}
            for pk, name in Slice.objects.filter(dataset=dataset)
            .order_by("name")
            .values_list("id", "name")[:500]
        ],
        "tags": list(
            Tag.objects.filter(dataset=dataset).order_by("name").values_list("name", flat=True)
        ),
    }
