"""Searches page through the nearest 1000 items at most, and every page of those is
answered by the HNSW index: no request makes the search scan all vectors exactly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from curation.errors import InvalidInput
from curation.models import Dataset, Item
from embeddings.search import MAX_SEARCH_DEPTH, search_item, search_vector
from tests.api_helpers import error_paths, url
from tests.embedding_factories import clustered, custom_model, items_with_vectors

Client = Callable[[User | None], APIClient]
DIM = 8


@pytest.fixture
def indexed(dataset: Dataset) -> tuple[Any, np.ndarray, list[Item]]:
    model = custom_model(dataset, DIM)
    data = clustered(MAX_SEARCH_DEPTH + 100, DIM, 10, seed=4)
    return model, data, items_with_vectors(dataset, model, data)


def test_the_deepest_page_comes_from_the_index(
    dataset: Dataset, indexed: tuple[Any, np.ndarray, list[Item]]
) -> None:
    model, data, _ = indexed

    result = search_vector(
        dataset=dataset, model=model, vector=data[0], offset=MAX_SEARCH_DEPTH - 100, limit=100
    )

    assert result.strategy == "hnsw"
    assert len(result.hits) == 100 and not result.has_more


def test_the_deepest_page_of_items_like_an_item_comes_from_the_index(
    dataset: Dataset, indexed: tuple[Any, np.ndarray, list[Item]]
) -> None:
    model, _, items = indexed

    result = search_item(
        dataset=dataset, model=model, item=items[0], offset=MAX_SEARCH_DEPTH - 50, limit=50
    )

    assert result.strategy == "hnsw"
    assert items[0].pk not in {h.item_id for h in result.hits}
    assert not result.has_more


def test_it_refuses_pages_past_the_depth(dataset: Dataset) -> None:
    model = custom_model(dataset, DIM)
    items_with_vectors(dataset, model, clustered(20, DIM, 2, seed=1), index=False)

    with pytest.raises(InvalidInput) as raised:
        search_vector(
            dataset=dataset, model=model, vector=[1.0] * DIM, offset=MAX_SEARCH_DEPTH - 10, limit=20
        )

    assert [f["path"] for f in raised.value.fields] == ["offset"]


def test_the_api_refuses_pages_past_the_depth(
    client_for: Client, victor: User, dataset: Dataset
) -> None:
    model = custom_model(dataset, DIM)
    items_with_vectors(dataset, model, clustered(20, DIM, 2, seed=1), index=False)

    response = client_for(victor).post(
        url(dataset, "search/vector"),
        {"vector": [1.0] * DIM, "offset": MAX_SEARCH_DEPTH, "limit": 1},
        format="json",
    )

    assert error_paths(response) == ["offset"]
