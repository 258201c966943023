"""Uniqueness, representativeness and outlier scores on constructed vectors whose answer
is known: an isolated item, a tight cluster and a looser one."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from rest_framework.test import APIClient

from curation.jobs import job_run
from curation.models import Dataset, Item, JobStatus
from curation.query import compile_query
from insights import uniqueness
from insights.models import ItemScore, ScoreRun
from insights.uniqueness import scores_job_start
from tests.api_helpers import error_paths
from tests.embedding_factories import custom_model, items_with_vectors

DIM = 8


class Crash(BaseException):
    pass


def constructed() -> np.ndarray:
    """20 items tight around e0, 20 looser around e1, one alone along e5."""
    rng = np.random.default_rng(0)
    e = np.eye(DIM, dtype=np.float32)
    tight = e[0] + 0.01 * rng.normal(size=(20, DIM)).astype(np.float32)
    loose = e[1] + 0.15 * rng.normal(size=(20, DIM)).astype(np.float32)
    return np.vstack([tight, loose, e[5][None, :]])


@pytest.fixture(name="scored")
def scored_fixture(dataset: Dataset, alice: Any) -> dict[str, Any]:
    model = custom_model(dataset, DIM)
    items = items_with_vectors(dataset, model, constructed())
    job = job_run(job_id=scores_job_start(dataset=dataset, user=alice, model=model, neighbors=5).pk)
    assert job is not None and job.status == JobStatus.SUCCEEDED, job and job.message
    return {"model": model, "items": items, "job": job}


def scores_of(items: list[Item], field: str) -> list[float]:
    by_item = dict(ItemScore.objects.values_list("item_id", field))
    return [by_item[i.pk] for i in items]


def test_the_isolated_item_is_the_most_unique_and_the_outlier(scored: dict[str, Any]) -> None:
    items = scored["items"]
    tight, loose, alone = items[:20], items[20:40], items[40]
    uniqueness_of = dict(zip(items, scores_of(items, "uniqueness"), strict=True))
    assert uniqueness_of[alone] == 1.0
    assert max(uniqueness_of[i] for i in tight) < min(uniqueness_of[i] for i in loose)
    assert max(uniqueness_of[i] for i in tight) < 0.1
    outlier = dict(zip(items, scores_of(items, "outlier"), strict=True))
    assert outlier[alone] == max(outlier.values()) and outlier[alone] > 0.9
    # Local: the loose cluster is sparse but regular, so its items are not outliers.
    assert max(outlier[i] for i in loose) < 0.6
    represent = dict(zip(items, scores_of(items, "representativeness"), strict=True))
    assert represent[alone] == 0.0
    assert min(represent[i] for i in tight) > 0.9
    for values in (uniqueness_of, outlier, represent):
        assert all(0.0 <= v <= 1.0 for v in values.values())
    result = scored["job"].result
    assert result["items"] == 41 and result["neighbors"] == 5
    run = ScoreRun.objects.get()
    assert run.status == ScoreRun.Status.FINISHED and run.item_count == 41


def test_scores_are_query_fields(dataset: Dataset, scored: dict[str, Any]) -> None:
    items = scored["items"]

    def refs(query: str) -> set[str]:
        q = compile_query(query, dataset=dataset)
        return set(Item.objects.filter(q).values_list("reference_id", flat=True))

    assert refs("uniqueness > 0.8") == {items[40].reference_id}
    assert refs('uniqueness["constructed"] >= 1') == {items[40].reference_id}
    assert refs("outlier > 0.9") == {items[40].reference_id}
    assert refs("representativeness < 0.01") == {items[40].reference_id}
    assert refs("uniqueness < 0.01") == {i.reference_id for i in items[:20]}
    assert len(refs("uniqueness <= 1 and not outlier > 0.9")) == 40


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ('uniqueness["nope"] > 0.5', "No scores of a model named 'nope'"),
        ('uniqueness > "high"', "compare it with a number"),
        ("uniqueness.x > 0.5", "no sub-fields"),
    ],
)
def test_bad_score_conditions_say_why(
    dataset: Dataset, scored: dict[str, Any], query: str, message: str
) -> None:
    with pytest.raises(Exception) as caught:
        Item.objects.filter(compile_query(query, dataset=dataset)).count()
    assert message in str(caught.value)


@pytest.mark.django_db
def test_a_dataset_without_scores_says_how_to_get_them(dataset: Dataset) -> None:
    with pytest.raises(Exception) as caught:
        compile_query("uniqueness > 0.5", dataset=dataset)
    assert "No item has scores yet" in str(caught.value)


def test_the_job_resumes_where_it_stopped(
    dataset: Dataset, alice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = custom_model(dataset, DIM)
    items_with_vectors(dataset, model, np.vstack([constructed()] * 30))  # 1,230 items
    asked: list[list[int]] = []
    real = uniqueness.batch_scores

    def crash_on_second_batch(run: Any, model: Any, item_ids: Any, centres: Any) -> Any:
        asked.append(list(item_ids))
        if len(asked) == 2:
            raise Crash()
        return real(run, model, item_ids, centres)

    monkeypatch.setattr(uniqueness, "batch_scores", crash_on_second_batch)
    job = scores_job_start(dataset=dataset, user=alice, model=model, neighbors=5)
    with pytest.raises(Crash):
        job_run(job_id=job.pk)
    assert ItemScore.objects.count() == 500  # the first batch committed with its checkpoint
    finished = job_run(job_id=job.pk)
    assert finished is not None and finished.status == JobStatus.SUCCEEDED, finished.message
    assert not set(asked[0]) & {i for batch in asked[2:] for i in batch}
    assert ItemScore.objects.count() == 1230
    assert ItemScore.objects.filter(uniqueness__isnull=True).count() == 0
    assert ScoreRun.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_connections_give_the_scores_of_one_and_resume_where_they_stopped(
    dataset: Dataset, alice: Any, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    rng = np.random.default_rng(1)
    base = np.vstack([constructed()] * 3)  # 123 items; copies moved apart, so no ties
    model = custom_model(dataset, DIM)
    items = items_with_vectors(dataset, model, base + 0.002 * rng.normal(size=base.shape))
    monkeypatch.setattr(uniqueness, "_BATCH", 10)  # 13 batches: 7 chunks of two

    def scores() -> dict[int, tuple[float, ...]]:
        # Not the centres' similarity: each run draws its k-means sample with its own seed.
        fields = ("knn_distance", "lof", "uniqueness", "outlier")
        rows = ItemScore.objects.values_list("item_id", *fields)
        return {r[0]: tuple(round(v, 6) for v in r[1:]) for r in rows}

    settings.NUCLEUS_SCORES_CONNECTIONS = 1
    job = scores_job_start(dataset=dataset, user=alice, model=model, neighbors=5)
    assert job_run(job_id=job.pk).status == JobStatus.SUCCEEDED
    one = scores()

    settings.NUCLEUS_SCORES_CONNECTIONS = 2
    threads: set[str] = set()
    crash_at = sorted(i.pk for i in items)[30]  # the first id of the 4th batch: 2nd chunk
    real = uniqueness.batch_scores

    def crash_once(run: Any, model: Any, item_ids: Any, centres: Any) -> Any:
        threads.add(threading.current_thread().name)
        if item_ids[0] == crash_at and "crashed" not in threads:
            threads.add("crashed")
            raise Crash()
        return real(run, model, item_ids, centres)

    monkeypatch.setattr(uniqueness, "batch_scores", crash_once)
    job = scores_job_start(dataset=dataset, user=alice, model=model, neighbors=5)
    with pytest.raises(Crash):
        job_run(job_id=job.pk)
    assert ItemScore.objects.count() == 20  # the first chunk committed with its checkpoint
    finished = job_run(job_id=job.pk)
    assert finished is not None and finished.status == JobStatus.SUCCEEDED, finished.message
    assert all(name.startswith("scores-knn") for name in threads - {"crashed"})
    assert scores() == one and len(one) == 123


def test_a_new_run_replaces_the_scores(
    dataset: Dataset, alice: Any, scored: dict[str, Any]
) -> None:
    job = scores_job_start(dataset=dataset, user=alice, model=scored["model"], neighbors=3)
    assert job_run(job_id=job.pk).status == JobStatus.SUCCEEDED
    assert ScoreRun.objects.get().neighbors == 3
    assert ItemScore.objects.count() == 41


@pytest.mark.django_db
def test_neighbors_out_of_range_is_refused(dataset: Dataset, alice: Any) -> None:
    model = custom_model(dataset, DIM)
    with pytest.raises(Exception) as caught:
        scores_job_start(dataset=dataset, user=alice, model=model, neighbors=0)
    assert "neighbors" in str(caught.value)


# ------------------------------------------------------------------------------- API


def test_the_api_ranks_by_each_score_for_viewers_and_starts_jobs_for_curators(
    dataset: Dataset,
    scored: dict[str, Any],
    bob: Any,
    victor: Any,
    charlie: Any,
    client_for: Callable[[Any], APIClient],
) -> None:
    url = f"/api/v1/datasets/{dataset.pk}/insights/scores"
    viewer = client_for(victor)
    page = viewer.get(url, {"limit": 3}).json()
    assert page["run"]["model"] == "constructed" and page["random_weights"] is False
    assert page["results"][0]["item"]["reference_id"] == scored["items"][40].reference_id
    assert page["results"][0]["uniqueness"] == 1.0 and page["next_offset"] == 3
    least = viewer.get(url, {"sort": "-representativeness", "limit": 41}).json()["results"]
    values = [r["representativeness"] for r in least]
    assert values == sorted(values, reverse=True) and values[-1] == 0.0
    outliers = viewer.get(url, {"sort": "outlier", "limit": 500}).json()["results"]
    assert outliers[-1]["item"]["reference_id"] == scored["items"][40].reference_id
    assert error_paths(viewer.get(url, {"sort": "size"})) == ["sort"]
    assert error_paths(viewer.get(url, {"limit": 0})) == ["limit"]
    assert viewer.get(url, {"model": "nope"}).status_code == 404
    assert client_for(charlie).get(url).status_code == 404

    assert viewer.post(url, {}, format="json").status_code == 403
    assert error_paths(client_for(bob).post(url, {"neighbors": 500}, format="json")) == [
        "neighbors"
    ]
    started = client_for(bob).post(url, {"neighbors": 4}, format="json")
    assert started.status_code == 202 and started.json()["kind"] == "insights_scores"


def test_each_score_is_a_grid_facet_whose_buckets_narrow_the_grid(
    scored: dict[str, Any], dataset: Dataset, alice: Any
) -> None:
    from django.test import Client

    from tests.ui_factories import check_score_facet

    client = Client()
    client.force_login(alice)
    items = scored["items"]
    for score in uniqueness.SCORES:
        values = dict(zip([i.pk for i in items], scores_of(items, score), strict=True))
        bins = check_score_facet(client, dataset, f'{score}["constructed"]', values)
        assert [text for text, _, _, _ in bins][-2:] == ["[0.8, 0.9)", "≥ 0.9"]
        assert len({count for _, count, _, _ in bins}) > 1  # spread over the buckets
