"""Hooks through which another app extends curation without curation importing it.

Curation never imports the embeddings app: embeddings builds on curation. Where curation
needs a vector capability (the similarity condition of a slice, queuing embeddings after
an ingest, dropping a dataset's vectors with it), it calls the provider registered here,
and the embeddings app registers its own in EmbeddingsConfig.ready(), the same way the
query compiler's ``register_field`` takes the vector fields of the query language. Without
a provider, curation works on: there is no similarity search, and nothing to queue or drop.
"""

from __future__ import annotations

from typing import Any, Protocol

from django.db.models import Q

from curation.errors import InvalidInput, field_error
from curation.models import Dataset


class Vectors(Protocol):
    """What curation asks of a vector capability."""

    def similar_item_ids(
        self, *, dataset: Dataset, spec: dict[str, Any], within: Q | None
    ) -> list[int]:
        """Evaluate a similarity condition now: ids of the nearest items (within a filter)."""
        ...

    def items_ingested(self, *, dataset: Dataset, user: Any) -> None:
        """New or changed items landed in `dataset` (queue what derives from them)."""
        ...

    def dataset_deleting(self, *, dataset: Dataset) -> None:
        """`dataset` is being deleted in this transaction: delete what hangs off it."""
        ...


class NoVectors:
    """The capability when no app provides one: no similarity search, nothing to do."""

    def similar_item_ids(
        self, *, dataset: Dataset, spec: dict[str, Any], within: Q | None
    ) -> list[int]:
        message = "similarity search is not available in this installation"
        raise InvalidInput(f"similarity: {message}", fields=[field_error("similarity", message)])

    def items_ingested(self, *, dataset: Dataset, user: Any) -> None:
        return None

    def dataset_deleting(self, *, dataset: Dataset) -> None:
        return None


_vectors: Vectors = NoVectors()


def vectors_register(provider: Vectors) -> None:
    """Make `provider` the vector capability (from an AppConfig.ready())."""
    global _vectors
    _vectors = provider


def vectors() -> Vectors:
    """The registered vector capability (NoVectors when none is)."""
    return _vectors


__all__ = ["NoVectors", "Vectors", "vectors", "vectors_register"]
