"""NUL characters, which PostgreSQL text and jsonb cannot hold, are refused in search
inputs with a 400 naming the field, never a 500 from the database."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from curation.models import Dataset
from tests.api_helpers import error_paths, url
from tests.embedding_factories import custom_model, items_with_vectors

Client = Callable[[User | None], APIClient]


@pytest.fixture
def vectors(dataset: Dataset) -> None:
    model = custom_model(dataset, 4)
    rng = np.random.default_rng(3)
    metadata = [{"w": "rain", "n": i} for i in range(6)]
    items_with_vectors(
        dataset, model, rng.normal(size=(6, 4)).astype(np.float32), metadata=metadata
    )


@pytest.mark.usefixtures("vectors")
@pytest.mark.parametrize(
    ("condition", "path"),
    [
        ({"key": "w", "op": "eq", "value": "a\x00b"}, "filter.metadata[0].value"),
        ({"key": "w", "op": "ne", "value": {"k\x00": 1}}, "filter.metadata[0].value"),
        # The element itself: the body's check (curation.storable) names the exact place.
        ({"key": "w", "op": "in", "value": ["ok", "a\x00b"]}, "filter.metadata[0].value[1]"),
        ({"key": "n", "op": "gt", "value": "a\x00"}, "filter.metadata[0].value"),
    ],
    ids=["eq", "ne-object-key", "in", "gt"],
)
def test_a_metadata_value_with_nul_is_a_400(
    client_for: Client, victor: User, dataset: Dataset, condition: dict[str, Any], path: str
) -> None:
    response = client_for(victor).post(
        url(dataset, "search/vector"),
        {"vector": [1.0, 0.0, 0.0, 0.0], "filter": {"metadata": [condition]}},
        format="json",
    )

    assert error_paths(response) == [path]


@pytest.mark.parametrize("field", ["text", "model"])
def test_a_similarity_condition_with_nul_is_a_400(
    client_for: Client, alice: User, dataset: Dataset, field: str
) -> None:
    similarity = {"text": "a red car", field: "a\x00b"}

    response = client_for(alice).post(
        url(dataset, "slices/from-query"),
        {"name": "s", "query": "", "similarity": similarity},
        format="json",
    )

    assert error_paths(response) == [f"similarity.{field}"]
