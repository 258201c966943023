"""Reads: which embedding models a dataset can use, and which one it uses by default."""

from __future__ import annotations

from typing import TypeAlias, TypedDict

from django.db.models import IntegerField, OuterRef, Q, Subquery, Value
from django_stubs_ext import WithAnnotations

from curation.errors import Conflict, NotFound
from curation.models import Dataset
from embeddings import vectors as vec
from embeddings.models import DatasetSearchDefault, Embedding, EmbeddingModel

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


def default_model(*, dataset: Dataset) -> EmbeddingModel:
    """The model a dataset's searches use when none is named."""
    row = DatasetSearchDefault.objects.select_related("model").filter(dataset=dataset).first()
    if row is None:
        raise Conflict(
            "This dataset has no embeddings yet: start an embedding job "
            "(POST /api/v1/datasets/{id}/embeddings/jobs) or upload vectors first."
        )
    return row.model


def model_for_search(*, dataset: Dataset, name: str | None) -> EmbeddingModel:
    return model_named(dataset=dataset, name=name) if name else default_model(dataset=dataset)
