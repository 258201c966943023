"""The real job worker: runs queued jobs, and a killed worker's job resumes elsewhere
without losing or duplicating items."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from PIL import Image

from curation.ingest import ingest_enqueue
from curation.models import Annotation, Item, Job, JobStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
HANG_GUARD = 180  # seconds: only stops a hung test, never judges speed


def make_folder(root: Path, count: int) -> Path:
    folder = root / "frames"
    for i in range(count):
        label = ("car", "truck", "bus")[i % 3]
        sub = folder / label
        sub.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (48, 32), (i % 256, (7 * i) % 256, 90)).save(sub / f"{i:04d}.jpg")
    return folder


class Workers:
    """Start and stop `manage.py worker` processes against the test database."""

    def __init__(self, media: Path, import_root: Path) -> None:
        self.env = {
            **os.environ,
            "NUCLEUS_DB_NAME": connection.settings_dict["NAME"],
            "NUCLEUS_MEDIA_ROOT": str(media),
            "NUCLEUS_IMPORT_ROOTS": str(import_root),
            "NUCLEUS_INGEST_CHUNK": "5",
            "NUCLEUS_STALLED_JOB_SECONDS": "3",
            "PYTHONUNBUFFERED": "1",
        }
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "worker"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def workers(_media_in_tmp: Path, import_root: Path) -> Iterator[Workers]:
    w = Workers(_media_in_tmp, import_root)
    yield w
    w.stop_all()


def wait_for(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + HANG_GUARD
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


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
