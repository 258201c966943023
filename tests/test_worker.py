"""The real job worker: runs queued jobs, and a killed worker's job resumes elsewhere
without losing or duplicating items."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from curation.ingest.services import ingest_enqueue
from curation.models import Annotation, Item, Job, JobStatus
from tests.worker_support import (  # noqa: F401
    Workers,
    make_folder,
    wait_for,
    waiting_on_a_lock,
    workers_fixture,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_worker_runs_a_queued_ingest(
    workers: Workers, dataset: Any, alice: Any, import_root: Path
) -> None:
    folder = make_folder(import_root, 12)
    job = ingest_enqueue(
        dataset=dataset, user=alice, source={"type": "folder", "path": str(folder)}
    )
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED

    workers.start()
    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, "the job to finish")

    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.message
    assert job.progress_done == 12
    assert Item.objects.filter(dataset=dataset).count() == 12


def test_killed_worker_job_resumes_without_loss_or_duplicates(
    workers: Workers, dataset: Any, alice: Any, import_root: Path
) -> None:
    count = 240
    folder = make_folder(import_root, count)
    # The files go in sorted order: bus/ (80), car/ (80), truck/ (80). The test holds the
    # row of one car/ item that already exists, so the worker writes every chunk before it
    # and then waits on that row: it is killed mid-ingest for certain, not by timing.
    blocker = Item.objects.create(dataset=dataset, reference_id="car/0099.jpg")
    job = ingest_enqueue(
        dataset=dataset,
        user=alice,
        source={"type": "folder", "path": str(folder), "labels_from_folders": True},
    )
    db = connection.settings_dict
    with psycopg.connect(host=db["HOST"], dbname=db["NAME"], user=db["USER"]) as lock:
        lock.execute("SELECT 1 FROM curation_item WHERE id = %s FOR UPDATE", [blocker.pk])
        first = workers.start()
        wait_for(lambda: waiting_on_a_lock(lock), "the worker to reach the held row")
        first.send_signal(signal.SIGKILL)
        first.wait()

    job.refresh_from_db()
    done_at_kill = job.progress_done
    assert job.status == JobStatus.RUNNING
    assert 80 <= done_at_kill < 120, "killed after bus/ and before the held car/ item"
    landed_at_kill = set(Item.objects.filter(dataset=dataset).values_list("id", flat=True))
    assert len(landed_at_kill) >= done_at_kill - 5  # a checkpoint is at most one chunk behind

    workers.start()
    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, "the resumed job to finish")

    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.message
    assert job.attempts == 2
    assert job.progress_done == count
    assert job.error_count == 0
    items = Item.objects.filter(dataset=dataset)
    assert items.count() == count
    assert items.values("reference_id").distinct().count() == count
    blocker.refresh_from_db()
    assert blocker.media_key  # the held item was one of the folder's, ingested in the end
    # Items written before the kill were kept as they were, not deleted and re-created.
    assert landed_at_kill <= set(items.values_list("id", flat=True))
    # One folder-label annotation per item: nothing done twice.
    assert Annotation.objects.filter(dataset=dataset).count() == count
    assert [import_root] == settings.NUCLEUS_IMPORT_ROOTS
