"""The real job worker: runs queued jobs, and a killed worker's job resumes elsewhere
without losing or duplicating items."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from curation.ingest import ingest_enqueue
from curation.models import Annotation, Item, Job, JobStatus
from tests.worker_support import Workers, make_folder, wait_for, workers_fixture  # noqa: F401

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
    job = ingest_enqueue(
        dataset=dataset,
        user=alice,
        source={"type": "folder", "path": str(folder), "labels_from_folders": True},
    )
    first = workers.start()
    wait_for(lambda: Job.objects.get(pk=job.pk).progress_done >= 20, "the first checkpoints")
    first.send_signal(signal.SIGKILL)
    first.wait()

    job.refresh_from_db()
    done_at_kill = job.progress_done
    assert job.status == JobStatus.RUNNING
    assert 0 < done_at_kill < count, "the worker must be killed mid-ingest"
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
    # Items written before the kill were kept as they were, not deleted and re-created.
    assert landed_at_kill <= set(items.values_list("id", flat=True))
    # One folder-label annotation per item: nothing done twice.
    assert Annotation.objects.filter(dataset=dataset).count() == count
    assert [import_root] == settings.NUCLEUS_IMPORT_ROOTS
