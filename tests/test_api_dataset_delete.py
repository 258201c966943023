"""Deleting a dataset: every row that belongs to it, table by table, and its vector indexes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from curation import versions
from curation.models import (
    Annotation,
    Dataset,
    Item,
    ItemTag,
    Job,
    Model,
    Prediction,
    Slice,
    SliceItem,
    SliceVersion,
    SliceVersionItem,
    Tag,
)
from curation.services import tag_add
from embeddings.models import (
    DuplicateGroup,
    DuplicateMember,
    DuplicateRun,
    Embedding,
    EmbeddingModel,
    GroupKind,
)
from tests.api_helpers import add_items, box, url
from tests.embedding_factories import custom_model, items_with_vectors


def _fill(dataset: Dataset, prefix: str) -> None:
    """Give a dataset one of everything: items with shapes, a slice with a version, a tag,
    a job, a custom embedding model with indexed vectors, a duplicates run."""
    rows = [
        {
            "reference_id": f"{prefix}{i}",
            "annotations": [box()],
            "predictions": [box(model="yolo", confidence=0.5)],
        }
        for i in range(3)
    ]
    add_items(dataset, *rows)
    found = Slice.objects.create(dataset=dataset, name="s")
    found.items.add(*Item.objects.filter(dataset=dataset))
    versions.slice_version_create(slice=found, user=None)
    tag_add(dataset=dataset, name="t", reference_ids=[f"{prefix}0"])
    job = Job.objects.create(kind="ingest", dataset=dataset)
    model = custom_model(dataset, 4)
    vectored = items_with_vectors(
        dataset, model, np.random.default_rng(0).normal(size=(3, 4)), prefix=f"{prefix}v"
    )
    run = DuplicateRun.objects.create(dataset=dataset, job=job, threshold=0.9, neighbors=5)
    group = DuplicateGroup.objects.create(
        run=run, kind=GroupKind.NEAR, representative=vectored[0], size=2
    )
    for item in vectored[:2]:
        DuplicateMember.objects.create(group=group, item=item)


def _owned_rows(dataset: Dataset) -> dict[str, int]:
    return {
        "items": Item.objects.filter(dataset=dataset).count(),
        "annotations": Annotation.objects.filter(item__dataset=dataset).count(),
        "predictions": Prediction.objects.filter(item__dataset=dataset).count(),
        "models": Model.objects.filter(dataset=dataset).count(),
        "slices": Slice.objects.filter(dataset=dataset).count(),
        "members": SliceItem.objects.filter(item__dataset=dataset).count(),
        "versions": SliceVersion.objects.filter(slice__dataset=dataset).count(),
        "version_items": SliceVersionItem.objects.filter(version__slice__dataset=dataset).count(),
        "tags": Tag.objects.filter(dataset=dataset).count(),
        "tag_links": ItemTag.objects.filter(item__dataset=dataset).count(),
        "jobs": Job.objects.filter(dataset=dataset).count(),
        "embedding_models": EmbeddingModel.objects.filter(dataset=dataset).count(),
        "vectors": Embedding.objects.filter(dataset=dataset).count(),
        "duplicate_runs": DuplicateRun.objects.filter(dataset=dataset).count(),
        "duplicate_members": DuplicateMember.objects.filter(group__run__dataset=dataset).count(),
    }


def _indexes(dataset_id: int) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'i' AND relname ~ %s",
            [f"^emb_hnsw_m[0-9]+_d{dataset_id}$"],
        )
        return [name for (name,) in cursor.fetchall()]


@pytest.fixture
def other(alice: Any) -> Dataset:
    kept = Dataset.objects.create(name="kept", owner=alice)
    _fill(kept, "k")
    return kept


def test_it_deletes_every_row_and_index_of_the_dataset_and_nothing_else(
    dataset, other, alice, client_for, django_capture_on_commit_callbacks
):
    _fill(dataset, "d")
    assert all(_owned_rows(dataset).values()) and _indexes(dataset.pk)
    kept_before = _owned_rows(other)
    with django_capture_on_commit_callbacks(execute=True):
        assert client_for(alice).delete(url(dataset)).status_code == 204
    assert not Dataset.objects.filter(pk=dataset.pk).exists()
    assert not any(_owned_rows(dataset).values()), _owned_rows(dataset)
    assert _indexes(dataset.pk) == []
    assert _owned_rows(other) == kept_before
    assert _indexes(other.pk)


def test_it_deletes_by_dataset_without_listing_the_items(dataset, alice, client_for):
    # Django's cascade would load every item (and shape) id and delete them in batches of
    # ids: gigabytes of memory at a million items. Set-based DELETEs never list them.
    _fill(dataset, "d")
    with CaptureQueriesContext(connection) as queries:
        assert client_for(alice).delete(url(dataset)).status_code == 204
    listed = [q["sql"] for q in queries if '"curation_item"."id" IN (' in q["sql"]]
    assert listed == []
    assert not Item.objects.exists()
