"""The evaluate job as a job: each chunk of items is a checkpoint of its own, so a run is
cancelled within a chunk and keeps no partial rows, and a killed run resumes writing each
match once; and the per-user limit on queued or running evaluation jobs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User

from curation.errors import InvalidInput
from curation.jobs import job_cancel, job_run
from curation.models import Dataset, Job, JobStatus, Model
from curation.query import compile_query
from evaluation import scope, services
from evaluation.models import EvaluationMatch, EvaluationRun
from evaluation.scope import Seen
from evaluation.selectors import matches_of
from tests.api_helpers import add_items, error_of, evaluation_world, url
from tests.test_evaluation import Killed, random_world, run_job, start, stored_matches


@pytest.fixture
def chunked(dataset: Dataset, alice: User, monkeypatch: pytest.MonkeyPatch) -> EvaluationRun:
    """30 random images read 7 at a time (5 chunks), and a clean run to compare with."""
    add_items(dataset, *random_world(8, images=30).rows)
    monkeypatch.setattr(scope, "CHUNK_ITEMS", 7)
    return run_job(start(dataset, alice, name="clean"))


def test_each_chunk_commits_and_a_killed_run_resumes_writing_each_match_once(
    dataset: Dataset, alice: User, chunked: EvaluationRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean = chunked
    run = start(dataset, alice, name="killed")
    insert = services._matches_insert
    calls: list[int] = []

    def dying(target: EvaluationRun, batch: Any) -> None:
        calls.append(len(batch))
        insert(target, batch)
        if len(calls) == 3:  # in the third chunk, after its rows were sent
            raise Killed()

    monkeypatch.setattr(services, "_matches_insert", dying)
    with pytest.raises(Killed):
        job_run(job_id=run.job_id)
    job = Job.objects.get(pk=run.job_id)
    assert job.status == JobStatus.RUNNING and job.progress_done == 2 and job.progress_total == 6
    # The first two chunks' rows committed, the third's rolled back with its checkpoint.
    assert EvaluationMatch.objects.filter(run=run).count() == sum(calls[:2]) > 0
    through = job.state["through"]
    assert not EvaluationMatch.objects.filter(run=run, item_id__gt=through).exists()
    # Unfinished: no metrics, and its partial rows are nobody's outcomes yet.
    run.refresh_from_db()
    assert run.metrics == {} and run.finished is None
    assert not matches_of(run=run).exists()
    with pytest.raises(InvalidInput, match="has not finished"):
        compile_query("eval[killed].fp >= 1", dataset=dataset)

    monkeypatch.setattr(services, "_matches_insert", insert)
    run = run_job(run)
    assert run.job is not None and run.job.attempts == 2 and run.job.progress_done == 6
    assert stored_matches(run) == stored_matches(clean)  # each once (it asserts so too)
    assert run.metrics == clean.metrics and run.counts == clean.counts


def test_a_cancelled_run_stops_at_the_next_chunk_and_keeps_no_rows(
    dataset: Dataset, alice: User, chunked: EvaluationRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = start(dataset, alice, name="cancelled")
    read = services.scope_chunks
    seen: list[int] = []

    def cancelling(target: EvaluationRun, item_ids: list[int]) -> Iterator[Seen]:
        for chunk in read(target, item_ids):
            seen.append(len(chunk.item_ids))
            if len(seen) == 3:  # a user cancels while the third chunk is being matched
                assert EvaluationMatch.objects.filter(run=target).exists()
                job_cancel(job=Job.objects.get(pk=target.job_id))
            yield chunk

    monkeypatch.setattr(services, "scope_chunks", cancelling)
    job = job_run(job_id=run.job_id)
    assert job is not None and job.status == JobStatus.CANCELLED
    assert seen == [7, 7, 7]  # it read no further than the chunk it was on
    assert job.progress_done == 2
    run.refresh_from_db()
    assert run.metrics == {} and run.finished is None
    assert not EvaluationMatch.objects.filter(run=run).exists()


def test_a_user_has_a_few_evaluation_jobs_queued_or_running_at_once(
    dataset: Dataset, alice: User, bob: User, client_for: Any
) -> None:
    evaluation_world(dataset)
    model = Model.objects.get(name="yolo")
    curator = client_for(bob)

    def evaluate(client: Any, name: str) -> Any:
        body = {"name": name, "model": model.pk}
        return client.post(url(dataset, "evaluations"), body, format="json")

    for n in range(services.MAX_ACTIVE_EVALUATION_JOBS):
        assert evaluate(curator, f"run {n}").status_code == 202
    refused = error_of(evaluate(curator, "one more"), 429, "too_many_jobs")
    assert "evaluation jobs queued or running (at most 3)" in refused["message"]
    assert not EvaluationRun.objects.filter(name="one more").exists()
    # A suite's job counts too.
    suite = curator.post(url(dataset, "scenario-suites"), {"name": "gates"}, format="json")
    suite_url = url(dataset, f"scenario-suites/{suite.json()['id']}")
    body = {"name": "t", "metric": "map", "threshold": 0.5}
    assert curator.post(f"{suite_url}/tests", body, format="json").status_code == 201
    queued = curator.post(f"{suite_url}/evaluations", {"model": model.pk}, format="json")
    error_of(queued, 429, "too_many_jobs")
    # Someone else still may; a finished job frees its place.
    assert evaluate(client_for(alice), "alice's").status_code == 202
    first = EvaluationRun.objects.get(name="run 0")
    assert first.job_id is not None
    job_run(job_id=first.job_id)
    assert evaluate(curator, "one more").status_code == 202


def test_a_curator_cancels_a_queued_run_from_its_page(
    dataset: Dataset, bob: User, victor: User
) -> None:
    from django.test import Client

    evaluation_world(dataset)
    run = start_as(dataset, bob)
    page = f"/datasets/{dataset.pk}/evaluations/{run.pk}/"
    viewer, curator = Client(), Client()
    viewer.force_login(victor)
    curator.force_login(bob)
    assert 'data-testid="run-cancel"' not in viewer.get(page).content.decode()
    body = curator.get(page).content.decode()
    action = re.search(r'<form method="post" action="([^"]+)" data-testid="run-cancel"', body)
    assert action is not None
    assert curator.post(action.group(1), {"next": page}).status_code == 302
    job = job_run(job_id=run.job_id)  # a worker picks it up: it does not run
    assert job is not None and job.status == JobStatus.CANCELLED
    assert "A cancelled run keeps no matches." in curator.get(page).content.decode()
    assert not EvaluationMatch.objects.filter(run=run).exists()


def start_as(dataset: Dataset, user: User) -> EvaluationRun:
    return services.evaluation_create(
        dataset=dataset, user=user, name="queued", model_id=Model.objects.get(name="yolo").pk
    )
