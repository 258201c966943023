"""Concurrent bulk writes of the same items wait for each other instead of deadlocking,
and a job that hits a transient database error resumes from its last checkpoint."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest
from django.db import OperationalError, connection

from curation.bulk.write import items_upsert
from curation.jobs import JobContext, job_create, job_run, job_runner
from curation.models import Annotation, Dataset, Item, JobStatus


def rows(refs: list[str], label: str) -> list[dict[str, Any]]:
    return [
        {
            "reference_id": ref,
            "metadata": {"writer": label},
            "annotations": [
                {
                    "id": f"{ref}-a",
                    "label": label,
                    "geometry": {"x": 1, "y": 1, "width": 2, "height": 2},
                }
            ],
        }
        for ref in refs
    ]


@pytest.mark.django_db(transaction=True)
def test_two_writers_of_the_same_items_in_opposite_orders_both_succeed(dataset: Dataset) -> None:
    refs = [f"img-{i:05d}" for i in range(3000)]
    for round_ in range(3):
        errors: list[BaseException] = []

        def write(batch: list[dict[str, Any]], errors: list[BaseException] = errors) -> None:
            try:
                items_upsert(dataset=dataset, rows=batch)
            except BaseException as exc:  # reported below, with the round
                errors.append(exc)
            finally:
                connection.close()

        threads = [
            threading.Thread(target=write, args=(rows(refs, f"a{round_}"),)),
            threading.Thread(target=write, args=(rows(refs[::-1], f"b{round_}"),)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [], f"round {round_}: {errors!r}"

    assert Item.objects.filter(dataset=dataset).count() == len(refs)
    assert Annotation.objects.filter(dataset=dataset).count() == len(refs)
    # One writer won each round, whole: every item carries the same writer's data.
    assert Item.objects.filter(dataset=dataset).values("metadata").distinct().count() == 1


calls: list[int] = []


@job_runner("test-flaky-once")
def flaky_runner(ctx: JobContext) -> dict[str, Any]:
    """Checkpoint once, then fail with a deadlock the first time through."""
    position = int(ctx.state.get("position", 0))
    calls.append(position)
    if position == 0:
        with ctx.checkpoint(done=1, state={"position": 1}):
            pass
    if len(calls) == 1:
        deadlock = OperationalError("deadlock detected")
        deadlock.__cause__ = psycopg.errors.DeadlockDetected("deadlock detected")
        raise deadlock
    return {"position": ctx.state["position"]}


@pytest.mark.django_db
def test_a_job_resumes_after_a_transient_database_error(dataset: Dataset, alice: Any) -> None:
    calls.clear()
    job = job_create(kind="test-flaky-once", dataset=dataset, user=alice, params={})
    job = job_run(job_id=job.pk)
    assert job is not None
    assert job.status == JobStatus.SUCCEEDED, job.message
    # The second run started from the committed checkpoint, not from the beginning.
    assert calls == [0, 1]
    assert job.result == {"position": 1}
