"""A short job never waits behind a long one: embedding jobs have their own queue and
workers, so an ingest starts at once while an embedding job occupies its worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.db import connection

from curation.ingest.services import ingest_enqueue
from curation.jobs import DEFAULT_QUEUE, job_create, job_queues
from curation.models import Item, Job, JobStatus
from embeddings.services import EMBED_JOB
from embeddings.tasks import EMBED_QUEUE
from tests.worker_support import Workers, make_folder, wait_for, workers_fixture  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def queue_entry(job: Job) -> tuple[str, str]:
    """The (queue, status) of the procrastinate job that runs `job`."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT queue_name, status FROM procrastinate_jobs WHERE args->>'job_id' = %s",
            [str(job.pk)],
        )
        row = cursor.fetchone()
    assert row is not None
    return row[0], row[1]


def test_job_kinds_have_their_queues(dataset: Any, alice: Any) -> None:
    assert job_queues() == [DEFAULT_QUEUE, EMBED_QUEUE]
    embed = job_create(kind=EMBED_JOB, dataset=dataset, user=alice, params={})
    export = job_create(kind="export", dataset=dataset, user=alice, params={})
    assert queue_entry(embed) == (EMBED_QUEUE, "todo")
    assert queue_entry(export) == (DEFAULT_QUEUE, "todo")


def test_a_small_ingest_completes_while_a_long_embedding_job_runs(
    workers: Workers, dataset: Any, alice: Any, import_root: Path
) -> None:
    embed = job_create(kind=EMBED_JOB, dataset=dataset, user=alice, params={"mode": "missing"})
    settings = connection.settings_dict
    # The test holds the embedding job's row: the worker that took the job waits on it for
    # as long as the test likes, as a job embedding 2,000 images would keep it busy.
    with psycopg.connect(host=settings["HOST"], dbname=settings["NAME"], user="postgres") as lock:
        lock.execute("SELECT 1 FROM curation_job WHERE id = %s FOR UPDATE", [embed.pk])
        for queue in job_queues():  # the workers `manage.py serve` starts
            workers.start(queue)
        wait_for(lambda: queue_entry(embed)[1] == "doing", "a worker to take the embedding job")

        folder = make_folder(import_root, 3)
        ingest = ingest_enqueue(
            dataset=dataset, user=alice, source={"type": "folder", "path": str(folder)}
        )
        wait_for(lambda: Job.objects.get(pk=ingest.pk).is_finished, "the small ingest")

        ingest.refresh_from_db()
        assert ingest.status == JobStatus.SUCCEEDED, ingest.message
        assert Item.objects.filter(dataset=dataset).count() == 3
        assert queue_entry(embed)[1] == "doing"  # still held: the ingest did not wait for it
        lock.execute(
            "UPDATE curation_job SET status = 'cancelled', finished = now() WHERE id = %s",
            [embed.pk],
        )
    wait_for(lambda: queue_entry(embed)[1] == "succeeded", "the embedding worker to let go")
