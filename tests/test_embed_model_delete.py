"""Deleting a custom model removes its vectors, then drops its HNSW indexes CONCURRENTLY,
outside any transaction, so the embeddings table every dataset shares is never locked."""

from __future__ import annotations

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from curation.models import Dataset
from embeddings import vectors as vec
from embeddings.models import Embedding, EmbeddingModel
from embeddings.services import embedding_model_delete
from tests.embedding_factories import custom_model, items_with_vectors


@pytest.mark.django_db(transaction=True)
def test_it_drops_the_models_indexes_concurrently_after_deleting_its_vectors(
    dataset: Dataset,
) -> None:
    model = custom_model(dataset, 4)
    items_with_vectors(dataset, model, np.eye(4, dtype=np.float32))
    assert vec.index_state(model.pk, dataset.pk)[0] is True
    model_id = model.pk

    with CaptureQueriesContext(connection) as queries:
        embedding_model_delete(model=model)

    drops = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DROP INDEX")]
    assert drops == [f'DROP INDEX CONCURRENTLY IF EXISTS "{vec.index_name(model_id, dataset.pk)}"']
    assert vec.index_state(model_id, dataset.pk) == (False, 0.0)
    assert not EmbeddingModel.objects.filter(pk=model_id).exists()
    assert not Embedding.objects.filter(model_id=model_id).exists()


def test_inside_a_transaction_it_drops_them_plainly(dataset: Dataset) -> None:
    model = custom_model(dataset, 4)
    items_with_vectors(dataset, model, np.eye(4, dtype=np.float32))
    model_id = model.pk

    embedding_model_delete(model=model)

    assert vec.index_state(model_id, dataset.pk) == (False, 0.0)
    assert not Embedding.objects.filter(model_id=model_id).exists()
