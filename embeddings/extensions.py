"""The vector capability embeddings gives curation (curation.extensions.Vectors),
registered in EmbeddingsConfig.ready(): curation calls it and never imports this app."""

from __future__ import annotations

from typing import Any

from django.db import models, transaction
from django.db.models import Q

from curation.errors import invalid_field
from curation.models import Dataset, Item
from embeddings import search
from embeddings.duplicate_candidates import phash_index_drop
from embeddings.models import (
    Autotag,
    AutotagExample,
    AutotagRound,
    AutotagScore,
    DuplicateEdge,
    DuplicateGroup,
    DuplicateMember,
    DuplicateRun,
    Embedding,
)
from embeddings.selectors import model_for_search
from embeddings.services import embed_enqueue_missing
from embeddings.vectors import vector_index_drop


class EmbeddingsVectors:
    """Similarity conditions by vector search, embedding after ingest, vectors deleted with
    their dataset."""

    def similar_item_ids(
        self, *, dataset: Dataset, spec: dict[str, Any], within: Q | None
    ) -> list[int]:
        """Evaluate a similarity condition now: ids of the nearest items (within a filter)."""
        model = model_for_search(dataset=dataset, name=spec.get("model"))
        search_filter = search.SearchFilter(items=within) if within is not None else None
        limit = int(spec.get("limit", 100))
        if spec.get("text") is not None:
            result = search.search_text(
                dataset=dataset,
                model=model,
                text=spec["text"],
                search_filter=search_filter,
                limit=limit,
            )
        else:
            item = Item.objects.filter(
                dataset=dataset, reference_id=spec.get("reference_id")
            ).first()
            if item is None:
                raise invalid_field(
                    "similarity.reference_id",
                    f"no item {spec.get('reference_id')!r} in this dataset (deleted since?)",
                )
            result = search.search_item(
                dataset=dataset, model=model, item=item, search_filter=search_filter, limit=limit
            )
        min_score = spec.get("min_score")
        return [h.item_id for h in result.hits if min_score is None or h.score >= min_score]

    def items_ingested(self, *, dataset: Dataset, user: Any) -> None:
        embed_enqueue_missing(dataset=dataset, user=user)

    def dataset_deleting(self, *, dataset: Dataset) -> None:
        # As curation.services.dataset_delete does for its own tables: one set-based
        # DELETE per large table by dataset, children before parents, each filter a subquery.
        runs = DuplicateRun.objects.filter(dataset=dataset).values("pk")
        autotags = Autotag.objects.filter(dataset=dataset).values("pk")
        big_tables: list[models.QuerySet[Any]] = [
            # Autotag scores (a row per item and round) and examples: set-based, before
            # the items, rather than collected by the dataset's cascade.
            AutotagScore.objects.filter(
                round__in=AutotagRound.objects.filter(autotag__in=autotags).values("pk")
            ),
            AutotagExample.objects.filter(autotag__in=autotags),
            DuplicateMember.objects.filter(group__in=DuplicateGroup.objects.filter(run__in=runs)),
            DuplicateGroup.objects.filter(run__in=runs),
            DuplicateEdge.objects.filter(run__in=runs),
            DuplicateRun.objects.filter(dataset=dataset),
            Embedding.objects.filter(dataset=dataset),
        ]
        for rows in big_tables:
            # _raw_delete: one DELETE ... WHERE, without the cascade's collecting (these
            # tables' children are already gone) and without signals (none are used).
            rows._raw_delete(rows.db)
        dataset_id = dataset.pk
        # After the commit, so that the dataset's HNSW indexes are dropped CONCURRENTLY: a
        # plain DROP INDEX would lock the embeddings table, which every dataset shares. An
        # index left behind by a crash in between is empty and only takes space (ids are
        # not reused).
        transaction.on_commit(lambda: vector_index_drop(dataset_id=dataset_id))
        transaction.on_commit(lambda: phash_index_drop(dataset_id=dataset_id))
