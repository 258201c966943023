"""Search through the REST API: text, image, item and vector queries, filters, access."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from curation.jobs import job_run
from curation.models import Dataset, Item
from embeddings.services import embed_job_start
from tests.api_helpers import error_of, error_paths, url
from tests.embedding_factories import (
    clustered,
    custom_model,
    items_with_images,
    items_with_vectors,
    jpeg_bytes,
    tiny_clip_fixture,  # noqa: F401
)

Client = Callable[[User | None], APIClient]


@pytest.fixture
def embedded(dataset: Dataset, alice: User, tiny_clip: str) -> list[Item]:
    metadata = [{"weather": "rain" if i % 2 else "clear", "n": i} for i in range(8)]
    items = items_with_images(dataset, 8, metadata=metadata)
    job = job_run(job_id=embed_job_start(dataset=dataset, user=alice).pk)
    assert job.result["embedded"] == 8
    return items


def scores_of(body: dict[str, Any]) -> list[float]:
    return [r["score"] for r in body["results"]]


def test_it_finds_items_for_a_text_prompt(
    client_for: Client, victor: User, dataset: Dataset, embedded: list[Item]
) -> None:
    response = client_for(victor).post(
        url(dataset, "search/text"), {"text": "a red bus at night", "limit": 5}, format="json"
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert len(body["results"]) == 5 and body["next_offset"] == 5
    assert scores_of(body) == sorted(scores_of(body), reverse=True)
    assert body["random_weights"] is True and body["model"]["random_weights"] is True
    assert {r["item"]["reference_id"] for r in body["results"]} <= {
        i.reference_id for i in embedded
    }


def test_it_finds_the_item_whose_image_is_uploaded(
    client_for: Client, victor: User, dataset: Dataset, embedded: list[Item]
) -> None:
    upload = SimpleUploadedFile(
        "query.jpg", jpeg_bytes(3 + 1000 * dataset.pk), content_type="image/jpeg"
    )
    response = client_for(victor).post(
        url(dataset, "search/image"),
        {
            "image": upload,
            "limit": "3",
            "filter": json.dumps({"metadata": [{"key": "weather", "value": "rain"}]}),
        },
        format="multipart",
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    top = body["results"][0]
    assert top["item"]["reference_id"] == embedded[3].reference_id  # the same picture
    assert top["score"] > 0.999
    assert all(r["item"]["metadata"]["weather"] == "rain" for r in body["results"])
    assert body["random_weights"] is True


def test_it_finds_items_like_an_item_but_not_the_item_itself(
    client_for: Client, victor: User, dataset: Dataset, embedded: list[Item]
) -> None:
    response = client_for(victor).post(
        url(dataset, "search/item"),
        {"reference_id": embedded[0].reference_id, "limit": 10},
        format="json",
    )

    assert response.status_code == 200, response.json()
    refs = [r["item"]["reference_id"] for r in response.json()["results"]]
    assert len(refs) == 7 and embedded[0].reference_id not in refs
    assert response.json()["next_offset"] is None


def test_it_searches_by_a_raw_vector_with_filters(
    client_for: Client, victor: User, dataset: Dataset
) -> None:
    model = custom_model(dataset, 16)
    data = clustered(40, 16, 2, seed=1)
    items_with_vectors(dataset, model, data, metadata=[{"n": i} for i in range(40)])
    body = {
        "vector": data[0].tolist(),
        "limit": 5,
        "filter": {"metadata": [{"key": "n", "op": "gte", "value": 30}]},
    }

    response = client_for(victor).post(url(dataset, "search/vector"), body, format="json")

    assert response.status_code == 200, response.json()
    results = response.json()["results"]
    assert len(results) == 5 and all(r["item"]["metadata"]["n"] >= 30 for r in results)
    assert response.json()["random_weights"] is False


def test_it_restricts_results_with_the_query_language(
    client_for: Client, victor: User, dataset: Dataset
) -> None:
    model = custom_model(dataset, 16)
    data = clustered(60, 16, 2, seed=3)
    meta = [{"n": i, "weather": "rain" if i % 3 == 0 else "clear"} for i in range(60)]
    items_with_vectors(dataset, model, data, metadata=meta)
    query = 'metadata.weather = "rain" AND metadata.n >= 30'
    body = {"vector": data[1].tolist(), "limit": 50, "filter": {"query": query}}

    response = client_for(victor).post(url(dataset, "search/vector"), body, format="json")

    assert response.status_code == 200, response.json()
    found = {r["item"]["metadata"]["n"] for r in response.json()["results"]}
    assert found == {i for i in range(30, 60) if i % 3 == 0}
    bad = {"vector": data[1].tolist(), "filter": {"query": "metadata.weather = AND"}}
    response = client_for(victor).post(url(dataset, "search/vector"), bad, format="json")
    assert error_paths(response) == ["filter.query"]


def test_it_pages_with_offset_and_limit(client_for: Client, victor: User, dataset: Dataset) -> None:
    model = custom_model(dataset, 16)
    data = clustered(30, 16, 2, seed=2)
    items_with_vectors(dataset, model, data)
    client = client_for(victor)

    def page(offset: int) -> dict[str, Any]:
        return client.post(
            url(dataset, "search/vector"),
            {"vector": data[1].tolist(), "offset": offset, "limit": 12},
            format="json",
        ).json()

    pages = [page(0), page(12), page(24)]
    refs = [r["item"]["reference_id"] for p in pages for r in p["results"]]
    assert len(refs) == 30 == len(set(refs))
    assert [p["next_offset"] for p in pages] == [12, 24, None]


def test_it_hides_datasets_the_user_has_no_role_on(
    client_for: Client, charlie: User, dataset: Dataset
) -> None:
    model = custom_model(dataset, 4)
    items_with_vectors(dataset, model, np.eye(4, dtype=np.float32))
    body = {"vector": [1, 0, 0, 0]}

    error_of(client_for(charlie).post(url(dataset, "search/vector"), body, format="json"), 404)
    error_of(client_for(None).post(url(dataset, "search/vector"), body, format="json"), 401)


@pytest.mark.parametrize(
    ("tail", "body", "paths"),
    [
        ("search/text", {"text": ""}, ["text"]),
        ("search/vector", {"vector": [1, 2]}, ["vector"]),
        ("search/vector", {"vector": [0, 0, 0, 0]}, ["vector"]),
        ("search/vector", {"vector": [1, 0, 0, 0], "limit": 0}, ["limit"]),
        ("search/vector", {"vector": [1, 0, 0, 0], "filter": {"slice": 999999}}, ["filter.slice"]),
        (
            "search/vector",
            {"vector": [1, 0, 0, 0], "filter": {"tags": ["nope"]}},
            ["filter.tags[0]"],
        ),
        (
            "search/vector",
            {
                "vector": [1, 0, 0, 0],
                "filter": {"metadata": [{"key": "n", "op": "like", "value": 1}]},
            },
            ["filter.metadata[0].op"],
        ),
        ("search/item", {"item_id": 1, "reference_id": "x"}, ["item_id"]),
        ("search/vector", {"vector": [1, 0, 0, 0], "model": "no-such-model"}, None),
    ],
)
def test_it_explains_bad_queries(
    client_for: Client,
    victor: User,
    dataset: Dataset,
    tail: str,
    body: dict[str, Any],
    paths: list[str] | None,
) -> None:
    model = custom_model(dataset, 4)
    items_with_vectors(dataset, model, np.eye(4, dtype=np.float32))

    response = client_for(victor).post(url(dataset, tail), body, format="json")

    if paths is None:
        error_of(response, 404)
    else:
        assert error_paths(response) == paths


def test_it_refuses_a_custom_models_text_query(
    client_for: Client, victor: User, dataset: Dataset
) -> None:
    model = custom_model(dataset, 4)
    items_with_vectors(dataset, model, np.eye(4, dtype=np.float32))

    response = client_for(victor).post(
        url(dataset, "search/text"), {"text": "a cat"}, format="json"
    )

    assert error_paths(response) == ["model"]


def test_it_refuses_an_upload_that_is_no_image(
    client_for: Client, victor: User, dataset: Dataset, embedded: list[Item]
) -> None:
    upload = SimpleUploadedFile("query.jpg", b"definitely not a jpeg", content_type="image/jpeg")
    response = client_for(victor).post(
        url(dataset, "search/image"), {"image": upload}, format="multipart"
    )
    assert error_paths(response) == ["image"]


def test_it_says_when_a_dataset_has_no_embeddings_yet(
    client_for: Client, victor: User, dataset: Dataset
) -> None:
    response = client_for(victor).post(
        url(dataset, "search/text"), {"text": "a cat"}, format="json"
    )
    assert "embedding job" in error_of(response, 409, "conflict")["message"]


def test_search_hits_are_serialized_together_as_the_item_list_serializes_them(
    client_for: Client, victor: User, dataset: Dataset, django_assert_num_queries: Any
) -> None:
    model = custom_model(dataset, 16)
    items = items_with_vectors(dataset, model, clustered(40, 16, 3, seed=5))
    client = client_for(victor)
    query = {"item_id": items[0].pk, "limit": 2}
    assert client.post(url(dataset, "search/item"), query, format="json").status_code == 200
    counts = []
    for limit in (2, 12):
        with CaptureQueriesContext(connection) as captured:
            response = client.post(
                url(dataset, "search/item"), {**query, "limit": limit}, format="json"
            )
        assert response.status_code == 200, response.json()
        counts.append(len(captured.captured_queries))
        hits = response.json()["results"]
        assert len(hits) == limit
        listed = client.get(
            url(
                dataset,
                "items?" + "&".join(f"reference_id={h['item']['reference_id']}" for h in hits),
            )
        ).json()["results"]
        by_id = {row["id"]: row for row in listed}
        assert [h["item"] for h in hits] == [by_id[h["item"]["id"]] for h in hits]
    assert counts[0] == counts[1]  # nothing read per hit
