"""A search's slice filter keeps a slice's items now: a static slice's members, or the
matches of a dynamic slice's query (which has no member rows)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from curation.models import Dataset, Item, Slice
from curation.slices import slice_create_from_query
from embeddings.models import EmbeddingModel
from embeddings.search import SearchFilter, search_vector
from tests.api_helpers import error_of, url
from tests.embedding_factories import custom_model, items_with_vectors

Client = Callable[[User | None], APIClient]


@pytest.fixture
def rainy(dataset: Dataset) -> tuple[EmbeddingModel, list[Item]]:
    model = custom_model(dataset, 4)
    rng = np.random.default_rng(7)
    metadata = [{"weather": "rain" if i % 3 == 0 else "sun"} for i in range(12)]
    items = items_with_vectors(
        dataset, model, rng.normal(size=(12, 4)).astype(np.float32), metadata=metadata
    )
    return model, items


def rain_ids(items: list[Item]) -> set[int]:
    return {i.pk for i in items if i.metadata["weather"] == "rain"}


def test_it_searches_within_the_matches_of_a_dynamic_slice(
    dataset: Dataset, alice: User, rainy: tuple[EmbeddingModel, list[Item]]
) -> None:
    model, items = rainy
    dynamic, _ = slice_create_from_query(
        dataset=dataset, user=alice, name="rain", query='metadata.weather = "rain"'
    )

    result = search_vector(
        dataset=dataset,
        model=model,
        vector=[1.0, 0.0, 0.0, 0.0],
        search_filter=SearchFilter(slice_id=dynamic.pk),
        limit=12,
    )

    assert {h.item_id for h in result.hits} == rain_ids(items)


def test_the_api_slice_filter_follows_a_dynamic_slice(
    client_for: Client,
    victor: User,
    alice: User,
    dataset: Dataset,
    rainy: tuple[EmbeddingModel, list[Item]],
) -> None:
    _, items = rainy
    dynamic, _ = slice_create_from_query(
        dataset=dataset, user=alice, name="rain", query='metadata.weather = "rain"'
    )

    response = client_for(victor).post(
        url(dataset, "search/vector"),
        {"vector": [1.0, 0.0, 0.0, 0.0], "limit": 12, "filter": {"slice": dynamic.pk}},
        format="json",
    )

    assert response.status_code == 200, response.json()
    assert {r["item"]["id"] for r in response.json()["results"]} == rain_ids(items)


def test_a_dynamic_slice_whose_query_broke_is_a_400_naming_the_filter(
    client_for: Client,
    victor: User,
    alice: User,
    dataset: Dataset,
    rainy: tuple[EmbeddingModel, list[Item]],
) -> None:
    referenced = Slice.objects.create(dataset=dataset, name="B")
    dynamic, _ = slice_create_from_query(dataset=dataset, user=alice, name="A", query='slice = "B"')
    referenced.delete()

    response = client_for(victor).post(
        url(dataset, "search/vector"),
        {"vector": [1.0, 0.0, 0.0, 0.0], "filter": {"slice": dynamic.pk}},
        format="json",
    )

    error = error_of(response, 400)
    assert [f["path"] for f in error["fields"]] == ["filter.slice"]
    assert "no longer works" in error["message"]


def test_a_static_slice_is_read_from_its_member_rows(
    dataset: Dataset, rainy: tuple[EmbeddingModel, list[Item]]
) -> None:
    """Its members' ids come from curation_sliceitem alone, not looked up again in
    curation_item (twice the time at 1M items), and the answer is the same."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from curation.models import SliceItem

    model, items = rainy
    static = Slice.objects.create(dataset=dataset, name="rain, fixed")
    SliceItem.objects.bulk_create(
        [SliceItem(slice=static, item=i) for i in items if i.pk in rain_ids(items)]
    )
    with CaptureQueriesContext(connection) as seen:
        result = search_vector(
            dataset=dataset,
            model=model,
            vector=[1.0, 0.0, 0.0, 0.0],
            search_filter=SearchFilter(slice_id=static.pk),
            limit=12,
        )
    assert {h.item_id for h in result.hits} == rain_ids(items)
    nearest = [q["sql"] for q in seen.captured_queries if "<=>" in q["sql"]]
    assert nearest and all("curation_sliceitem" in sql for sql in nearest)
    assert not any('"curation_item"' in sql or "curation_item " in sql for sql in nearest)
    # A slice of another dataset keeps nothing.
    other = Dataset.objects.create(name="other", owner=dataset.owner)
    elsewhere = Slice.objects.create(dataset=other, name="elsewhere")
    result = search_vector(
        dataset=dataset,
        model=model,
        vector=[1.0, 0.0, 0.0, 0.0],
        search_filter=SearchFilter(slice_id=elsewhere.pk),
        limit=12,
    )
    assert result.hits == []
