"""The embeddings API: models, embedding jobs, user-supplied vectors, the default model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from curation.jobs import job_run
from curation.models import Dataset, Job
from embeddings.models import Embedding, EmbeddingModel
from tests.api_helpers import add_items, error_of, error_paths, url
from tests.embedding_factories import items_with_images, tiny_clip_fixture  # noqa: F401

Client = Callable[[User | None], APIClient]


@pytest.mark.usefixtures("tiny_clip")
def test_a_curator_starts_an_embedding_job_and_the_models_say_random_weights(
    client_for: Client, bob: User, victor: User, dataset: Dataset
) -> None:
    items_with_images(dataset, 5)

    response = client_for(bob).post(url(dataset, "embeddings/jobs"), {}, format="json")

    assert response.status_code == 202, response.json()
    job = job_run(job_id=response.json()["id"])
    assert job.status == "succeeded" and job.result["embedded"] == 5
    models = client_for(victor).get(url(dataset, "embedding-models")).json()
    [used] = [m for m in models if m["vector_count"]]
    assert used["vector_count"] == 5 and used["random_weights"] is True
    assert used["is_default"] is True and used["dimension"] == 32 and used["shared"] is True


@pytest.mark.usefixtures("tiny_clip")
def test_only_curators_start_jobs_and_strangers_see_nothing(
    client_for: Client, victor: User, charlie: User, dataset: Dataset
) -> None:
    error_of(client_for(victor).post(url(dataset, "embeddings/jobs"), {}, format="json"), 403)
    error_of(client_for(charlie).post(url(dataset, "embeddings/jobs"), {}, format="json"), 404)
    error_of(client_for(charlie).get(url(dataset, "embedding-models")), 404)
    error_of(client_for(None).get(url(dataset, "embedding-models")), 401)
    assert not Job.objects.exists()


def test_it_answers_503_naming_both_ways_when_weights_are_missing(
    client_for: Client,
    bob: User,
    dataset: Dataset,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings.NUCLEUS_EMBEDDING_CACHE_DIR = str(tmp_path)
    settings.NUCLEUS_EMBEDDING_ARCH, settings.NUCLEUS_EMBEDDING_WEIGHTS = (
        "ViT-B-32",
        "laion2b_s34b_b79k",
    )

    response = client_for(bob).post(url(dataset, "embeddings/jobs"), {}, format="json")

    message = error_of(response, 503, "weights_unavailable")["message"]
    assert "pretrained tag" in message and "checkpoint" in message


def test_it_refuses_an_unknown_slice_or_mode(
    client_for: Client, bob: User, dataset: Dataset
) -> None:
    assert error_paths(
        client_for(bob).post(url(dataset, "embeddings/jobs"), {"mode": "some"}, format="json")
    ) == ["mode"]
    response = client_for(bob).post(
        url(dataset, "embeddings/jobs"), {"slice": 424242}, format="json"
    )
    assert error_paths(response) == ["slice"]


def test_users_upload_vectors_of_their_own_model(
    client_for: Client, bob: User, dataset: Dataset
) -> None:
    add_items(dataset, {"reference_id": "a"}, {"reference_id": "b"})
    client = client_for(bob)
    created = client.post(
        url(dataset, "embedding-models"), {"name": "my-model", "dimension": 3}, format="json"
    )
    assert created.status_code == 201, created.json()
    model_id = created.json()["id"]

    rows = [{"reference_id": "a", "vector": [3, 0, 4]}, {"reference_id": "b", "vector": [0, 1, 0]}]
    response = client.post(
        url(dataset, f"embedding-models/{model_id}/vectors"), {"vectors": rows}, format="json"
    )

    assert response.status_code == 200, response.json()
    assert response.json() == {"written": 2, "rows": 2}
    stored = Embedding.objects.get(model_id=model_id, item__reference_id="a").vector
    assert np.allclose(stored, [0.6, 0.0, 0.8])  # normalised
    again = client.post(
        url(dataset, f"embedding-models/{model_id}/vectors"), {"vectors": rows}, format="json"
    )
    assert again.status_code == 200 and Embedding.objects.filter(model_id=model_id).count() == 2


def test_it_names_every_bad_vector_row_and_writes_none(
    client_for: Client, bob: User, dataset: Dataset
) -> None:
    add_items(dataset, {"reference_id": "a"}, {"reference_id": "b"})
    model = EmbeddingModel.objects.create(name="m", dataset=dataset, kind="custom", dimension=3)
    rows = [
        {"reference_id": "a", "vector": [1, 0, 0]},
        {"reference_id": "b", "vector": [1, 0]},
        {"reference_id": "zzz", "vector": [1, 0, 0]},
        {"reference_id": "b", "vector": [0, 0, 0]},
        {"reference_id": "b", "vector": [1, "x", 0]},
    ]

    response = client_for(bob).post(
        url(dataset, f"embedding-models/{model.pk}/vectors"), {"vectors": rows}, format="json"
    )

    assert error_paths(response) == [
        "vectors[1].vector",
        "vectors[2].reference_id",
        "vectors[3].vector",
        "vectors[4].vector",
    ]
    assert "dimension is 3" in error_of(response, 400)["fields"][0]["message"]
    assert not Embedding.objects.exists()


def test_a_reference_id_with_a_nul_is_a_bad_row_not_a_500(
    client_for: Client, bob: User, dataset: Dataset
) -> None:
    add_items(dataset, {"reference_id": "a"})
    model = EmbeddingModel.objects.create(name="m", dataset=dataset, kind="custom", dimension=3)
    rows = [
        {"reference_id": "a", "vector": [1, 0, 0]},
        {"reference_id": "a\x00", "vector": [1, 0, 0]},
    ]

    response = client_for(bob).post(
        url(dataset, f"embedding-models/{model.pk}/vectors"), {"vectors": rows}, format="json"
    )

    assert error_of(response, 400)["fields"] == [
        {"path": "vectors[1].reference_id", "message": "must not contain NUL characters"}
    ]
    assert not Embedding.objects.exists()


def test_model_names_and_dimensions_are_checked(
    client_for: Client, bob: User, dataset: Dataset
) -> None:
    client = client_for(bob)
    client.post(url(dataset, "embedding-models"), {"name": "m", "dimension": 8}, format="json")

    error_of(
        client.post(url(dataset, "embedding-models"), {"name": "m", "dimension": 8}, format="json"),
        409,
    )
    assert error_paths(
        client.post(
            url(dataset, "embedding-models"), {"name": "n", "dimension": 5000}, format="json"
        )
    ) == ["dimension"]


def test_a_curator_chooses_the_default_model_and_deletes_a_custom_one(
    client_for: Client, bob: User, dataset: Dataset
) -> None:
    client = client_for(bob)
    first = client.post(
        url(dataset, "embedding-models"), {"name": "first", "dimension": 4}, format="json"
    ).json()
    second = client.post(
        url(dataset, "embedding-models"), {"name": "second", "dimension": 4}, format="json"
    ).json()

    response = client.put(
        url(dataset, "embedding-models/default"), {"model": "second"}, format="json"
    )

    assert response.status_code == 200 and response.json()["is_default"] is True
    listed = {
        m["name"]: m["is_default"] for m in client.get(url(dataset, "embedding-models")).json()
    }
    assert listed == {"first": False, "second": True}
    assert client.delete(url(dataset, f"embedding-models/{first['id']}")).status_code == 204
    assert not EmbeddingModel.objects.filter(pk=first["id"]).exists()
    assert EmbeddingModel.objects.filter(pk=second["id"]).exists()


def test_custom_models_of_other_datasets_stay_invisible(
    client_for: Client, bob: User, charlie: User, dataset: Dataset
) -> None:
    theirs = Dataset.objects.create(name="theirs", owner=charlie)
    model = EmbeddingModel.objects.create(name="secret", dataset=theirs, kind="custom", dimension=4)

    client = client_for(bob)
    error_of(client.get(url(dataset, f"embedding-models/{model.pk}")), 404)
    error_of(
        client.post(
            url(dataset, f"embedding-models/{model.pk}/vectors"), {"vectors": [{}]}, format="json"
        ),
        404,
    )
    assert client.get(url(dataset, "embedding-models")).json() == []
