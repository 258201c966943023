"""Reads: which embedding models a dataset can use, and which one it uses by default."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from curation.errors import Conflict, NotFound
from curation.models import Dataset
from embeddings.models import DatasetSearchDefault, EmbeddingModel


def models_of(*, dataset: Dataset) -> QuerySet[EmbeddingModel]:
    """Models a dataset can use (shared open_clip ones and its own custom ones), with the
    number of its items each has a vector for."""
    return (
        EmbeddingModel.objects.filter(Q(dataset__isnull=True) | Q(dataset=dataset))
        .annotate(vector_count=Count("embeddings", filter=Q(embeddings__dataset=dataset)))
        .order_by("id")
    )


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
