"""Where weights come from: random mode says so, missing weights fail with a way out."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from curation.models import Dataset, Job
from embeddings.clip import WeightsUnavailable
from embeddings.models import EmbeddingModel
from embeddings.services import embed_enqueue_missing, embed_job_start


@pytest.fixture
def offline(settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """The default ViT-B-32 + LAION-2B, on a machine without the weights or the hub."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings.NUCLEUS_EMBEDDING_ARCH = "ViT-B-32"
    settings.NUCLEUS_EMBEDDING_WEIGHTS = "laion2b_s34b_b79k"
    settings.NUCLEUS_EMBEDDING_CACHE_DIR = str(tmp_path / "empty-cache")
    settings.NUCLEUS_EMBEDDING_RANDOM_FALLBACK = False


@pytest.mark.usefixtures("offline")
def test_it_refuses_to_start_a_job_and_names_both_ways_to_get_weights(
    dataset: Dataset, alice: Any
) -> None:
    with pytest.raises(WeightsUnavailable) as error:
        embed_job_start(dataset=dataset, user=alice)

    message = error.value.message
    assert "laion2b_s34b_b79k" in message
    assert (
        "pretrained tag" in message
        and "NUCLEUS_EMBEDDING_WEIGHTS=/path/to/checkpoint.pt" in message
    )
    assert error.value.status_code == 503
    assert not Job.objects.exists()


@pytest.mark.usefixtures("offline")
def test_it_refuses_a_checkpoint_file_that_does_not_exist(
    dataset: Dataset, alice: Any, settings: Any, tmp_path: Any
) -> None:
    settings.NUCLEUS_EMBEDDING_WEIGHTS = str(tmp_path / "missing.pt")

    with pytest.raises(WeightsUnavailable, match=r"missing\.pt"):
        embed_job_start(dataset=dataset, user=alice)


@pytest.mark.usefixtures("offline")
def test_it_falls_back_to_random_weights_loudly_when_allowed(
    dataset: Dataset, alice: Any, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.NUCLEUS_EMBEDDING_RANDOM_FALLBACK = True

    with caplog.at_level(logging.WARNING, logger="embeddings.clip"):
        job = embed_job_start(dataset=dataset, user=alice)

    model = EmbeddingModel.objects.get(pk=job.params["model_id"])
    assert model.random_weights and model.weights == "random" and model.name == "ViT-B-32/random"
    assert any("RANDOM weights" in r.getMessage() for r in caplog.records)


@pytest.mark.usefixtures("offline")
def test_it_does_not_fail_an_ingest_when_weights_are_missing(dataset: Dataset, alice: Any) -> None:
    assert embed_enqueue_missing(dataset=dataset, user=alice) is None
    assert not Job.objects.exists()


def test_it_queues_one_embedding_job_for_new_items(
    dataset: Dataset, alice: Any, settings: Any
) -> None:
    settings.NUCLEUS_EMBEDDING_WEIGHTS = "random"

    first = embed_enqueue_missing(dataset=dataset, user=alice)
    second = embed_enqueue_missing(dataset=dataset, user=alice)

    assert first is not None and second == first  # the queued job will see the new items too
    assert first.params["mode"] == "missing"
    assert Job.objects.filter(kind="embed").count() == 1
