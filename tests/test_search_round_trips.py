"""An unfiltered search at the service's breadth is one round trip for the neighbours: the
connection starts at that hnsw.ef_search and the index is remembered; another breadth
still gets its own SET LOCAL, and a dropped index is forgotten at once."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from curation.models import Dataset
from embeddings import vectors as vec
from embeddings.search import search_vector
from tests.embedding_factories import clustered, custom_model, items_with_vectors

DIM = 32


def _session_ef() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SHOW hnsw.ef_search")
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])


def _searched(dataset: Dataset, **kwargs: Any) -> list[str]:
    model = custom_model(dataset, DIM)
    data = clustered(400, DIM, 4, seed=3)
    items_with_vectors(dataset, model, data)
    search_vector(dataset=dataset, model=model, vector=data[0], limit=10)  # index remembered
    with CaptureQueriesContext(connection) as captured:
        result = search_vector(dataset=dataset, model=model, vector=data[1], **kwargs)
    assert result.strategy == "hnsw"
    return [q["sql"] for q in captured.captured_queries]


def test_connections_start_at_the_service_breadth(settings: Any, dataset: Dataset) -> None:
    assert _session_ef() == settings.NUCLEUS_SEARCH_EF_SEARCH
    assert vec.session_ef_search() == settings.NUCLEUS_SEARCH_EF_SEARCH


@pytest.mark.django_db(transaction=True)  # as a request runs it: not in a transaction
def test_an_unfiltered_search_is_one_query_for_neighbours_and_one_for_items(
    dataset: Dataset,
) -> None:
    queries = _searched(dataset, limit=10)
    assert not any("hnsw.ef_search" in q for q in queries)
    assert not any("pg_index" in q for q in queries)  # the index was remembered
    assert len(queries) == 2, queries  # the neighbours, then their items


def test_inside_a_transaction_the_breadth_is_always_set(dataset: Dataset) -> None:
    # A SET LOCAL earlier in the caller's transaction would still be in force.
    queries = _searched(dataset, limit=10)
    assert any("SET LOCAL hnsw.ef_search" in q for q in queries)


@pytest.mark.django_db(transaction=True)
def test_another_breadth_is_set_for_its_query_alone(settings: Any, dataset: Dataset) -> None:
    settings.NUCLEUS_SEARCH_EF_SEARCH = 40  # after the connection started at another
    queries = _searched(dataset, limit=10)
    assert any("SET LOCAL hnsw.ef_search = 40" in q for q in queries)
    assert _session_ef() != 40  # the connection's own default is left as it was


def test_a_dropped_index_is_forgotten_at_once(dataset: Dataset) -> None:
    model = custom_model(dataset, DIM)
    data = clustered(300, DIM, 4, seed=4)
    items_with_vectors(dataset, model, data)
    assert vec.index_info_for_search(model.pk, dataset.pk)[0]
    vec.vector_index_drop(model_id=model.pk, dataset_id=dataset.pk)
    assert not vec.index_info_for_search(model.pk, dataset.pk)[0]
    result = search_vector(dataset=dataset, model=model, vector=np.ones(DIM), limit=5)
    assert result.strategy == "exact"
