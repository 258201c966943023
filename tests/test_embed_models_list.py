"""Listing a dataset's embedding models counts its own vectors only, through the index,
never the vectors other datasets have under the same shared model."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from curation.models import Dataset
from embeddings import selectors
from embeddings.models import EmbeddingModel, ModelKind
from tests.api_helpers import url
from tests.embedding_factories import items_with_vectors

Client = Callable[[User | None], APIClient]


@pytest.fixture
def shared(dataset: Dataset, charlie: User) -> EmbeddingModel:
    """A shared model with 3 vectors in `dataset` and 40 in somebody else's dataset."""
    model = EmbeddingModel.objects.create(
        name="shared", kind=ModelKind.OPEN_CLIP, architecture="x", weights="w", dimension=4
    )
    rng = np.random.default_rng(2)
    items_with_vectors(dataset, model, rng.normal(size=(3, 4)).astype(np.float32), index=False)
    theirs = Dataset.objects.create(name="theirs", owner=charlie)
    items_with_vectors(theirs, model, rng.normal(size=(40, 4)).astype(np.float32), index=False)
    return model


def scanned_embedding_rows(plan: Any) -> Iterator[int]:
    """Rows that scans of the embeddings table hand up, over the whole plan tree."""
    if plan.get("Relation Name") == "embeddings_embedding":
        yield int(plan["Actual Rows"] * plan["Actual Loops"])
    for child in plan.get("Plans", []):
        yield from scanned_embedding_rows(child)


def test_it_counts_the_datasets_vectors_of_shared_models(
    client_for: Client, victor: User, dataset: Dataset, shared: EmbeddingModel
) -> None:
    [listed] = client_for(victor).get(url(dataset, "embedding-models")).json()

    assert listed["name"] == "shared"
    assert listed["vector_count"] == 3 and listed["vector_count_estimated"] is False


def test_it_reads_no_vector_of_another_dataset(dataset: Dataset, shared: EmbeddingModel) -> None:
    with CaptureQueriesContext(connection) as queries:
        list(selectors.models_of(dataset=dataset))
    [sql] = [q["sql"] for q in queries.captured_queries if "embeddings_embedding" in q["sql"]]

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # as on a big table: use the index
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan

    assert sum(scanned_embedding_rows(plan[0]["Plan"])) <= 3


def test_past_the_exact_limit_the_count_is_an_estimate(
    dataset: Dataset, shared: EmbeddingModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(selectors, "VECTOR_COUNT_EXACT_MAX", 2)

    [model] = selectors.models_of(dataset=dataset)

    assert model.vector_count_estimated is True and model.vector_count >= 3
