"""A full disk must not take the service down: jobs refuse to start below the free-space
floor (507), a job that runs out mid-way pauses and resumes from its checkpoint, the UI
warns, and /healthz reports it."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import FileSystemStorage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client

from curation.ingest.services import ingest_enqueue
from curation.jobs import job_run
from curation.models import Item, Job, JobStatus
from tests.api_helpers import error_of, url
from tests.worker_support import Workers, make_folder, wait_for, workers_fixture  # noqa: F401

LOW = 10**9  # MB: a floor no disk here reaches, so free space is "low"


class FillingStorage(FileSystemStorage):
    """Local storage on a disk that is full after `room` more files (None: never)."""

    room: int | None = None

    def _save(self, name: str, content: Any) -> str:
        if FillingStorage.room is not None:
            if FillingStorage.room <= 0:
                raise OSError(errno.ENOSPC, "No space left on device", name)
            FillingStorage.room -= 1
        return str(super()._save(name, content))


@pytest.fixture
def filling_storage(settings: Any, _media_in_tmp: Path) -> Any:
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": f"{__name__}.FillingStorage",
            "OPTIONS": {"location": str(_media_in_tmp)},
        },
    }
    yield FillingStorage
    FillingStorage.room = None


def health(client: Client | None = None) -> tuple[int, dict[str, Any]]:
    response = (client or Client()).get("/healthz")
    assert response["Content-Type"] == "application/json"
    return response.status_code, json.loads(response.content)


@pytest.mark.django_db
def test_jobs_refuse_to_start_below_the_floor_with_a_507(
    settings: Any, dataset: Any, bob: Any, victor: Any, client_for: Any, import_root: Path
) -> None:
    (import_root / "m.jsonl").write_text('{"reference_id": "a"}\n')
    settings.NUCLEUS_MIN_FREE_DISK_MB = LOW
    ingest = client_for(bob).post(
        url(dataset, "ingest"), {"source": {"type": "manifest", "path": "m.jsonl"}}, format="json"
    )
    body = error_of(ingest, 507, "insufficient_storage")
    assert "NUCLEUS_MIN_FREE_DISK_MB" in body["message"]
    upload = client_for(bob).post(
        url(dataset, "ingest"),
        {"type": "manifest", "file": SimpleUploadedFile("m.jsonl", b'{"reference_id": "a"}\n')},
        format="multipart",
    )
    error_of(upload, 507, "insufficient_storage")
    export = client_for(victor).post(url(dataset, "exports"), {"format": "jsonl"}, format="json")
    error_of(export, 507, "insufficient_storage")
    assert not Job.objects.exists()

    settings.NUCLEUS_MIN_FREE_DISK_MB = 0
    ingest = client_for(bob).post(
        url(dataset, "ingest"), {"source": {"type": "manifest", "path": "m.jsonl"}}, format="json"
    )
    assert ingest.status_code == 202


@pytest.mark.django_db
def test_the_ui_warns_when_disk_space_is_low(settings: Any, bob: Any, dataset: Any) -> None:
    client = Client()
    client.force_login(bob)
    assert 'data-testid="disk-low-banner"' not in client.get("/").content.decode()
    settings.NUCLEUS_MIN_FREE_DISK_MB = LOW
    page = client.get("/").content.decode()
    assert 'data-testid="disk-low-banner"' in page
    assert "Disk space is low" in page


@pytest.mark.django_db
def test_healthz_is_503_when_disk_is_low_or_no_worker_is_alive(settings: Any, dataset: Any) -> None:
    with connection.cursor() as cursor:  # workers that other tests stopped or killed
        cursor.execute("DELETE FROM procrastinate_workers")
    code, report = health()
    assert code == 503  # no worker has sent a heartbeat
    assert report["status"] == "unhealthy"
    assert report["database"] == {"ok": True}
    assert report["workers"] == {"ok": False, "alive": 0}
    assert report["disk"]["ok"] is True
    settings.NUCLEUS_MIN_FREE_DISK_MB = LOW
    code, report = health()
    assert code == 503
    assert report["disk"] == {"ok": False, "free_mb": report["disk"]["free_mb"], "floor_mb": LOW}
    assert dataset.name not in json.dumps(report)


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_healthz_is_200_with_a_live_worker_and_counts_the_queue(
    workers: Workers, dataset: Any, alice: Any, import_root: Path
) -> None:
    def waiting() -> int:
        return int(health()[1]["queues"].get("default", {}).get("todo", 0))

    # Queue rows outlive the tables each test empties, so count the difference.
    before = waiting()
    folder = make_folder(import_root, 2)
    ingest_enqueue(dataset=dataset, user=alice, source={"type": "folder", "path": str(folder)})
    assert waiting() == before + 1
    workers.start()
    wait_for(lambda: health()[0] == 200, "a worker's heartbeat")
    _, report = health()
    assert report["status"] == "ok"
    assert report["workers"]["alive"] >= 1


@pytest.mark.django_db
def test_a_job_that_runs_out_of_disk_pauses_and_resumes_from_its_checkpoint(
    settings: Any, filling_storage: Any, dataset: Any, alice: Any, import_root: Path
) -> None:
    settings.NUCLEUS_INGEST_CHUNK = 5
    count = 20
    folder = make_folder(import_root, count)
    job = ingest_enqueue(
        dataset=dataset, user=alice, source={"type": "folder", "path": str(folder)}
    )
    filling_storage.room = 14  # an image and its thumbnail per item: the second chunk fails

    job = job_run(job_id=job.pk)
    assert job is not None
    assert job.status == JobStatus.QUEUED, job.message
    assert job.message.startswith("Paused: the disk is full")
    assert job.progress_done == 5
    assert Item.objects.filter(dataset=dataset).count() == 5
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE args->>'job_id' = %s "
            "AND status = 'todo' AND scheduled_at > now()",
            [str(job.pk)],
        )
        assert cursor.fetchone()[0] == 1  # queued again, for later

    filling_storage.room = None  # space was freed
    job = job_run(job_id=job.pk)
    assert job is not None
    assert job.status == JobStatus.SUCCEEDED, job.message
    assert job.message == ""
    assert job.attempts == 2
    assert job.progress_done == count
    assert job.error_count == 0
    items = Item.objects.filter(dataset=dataset)
    assert items.count() == items.values("reference_id").distinct().count() == count


@pytest.mark.django_db
def test_a_queued_job_waits_instead_of_starting_below_the_floor(
    settings: Any, dataset: Any, alice: Any, import_root: Path
) -> None:
    folder = make_folder(import_root, 3)
    job = ingest_enqueue(
        dataset=dataset, user=alice, source={"type": "folder", "path": str(folder)}
    )
    settings.NUCLEUS_MIN_FREE_DISK_MB = LOW
    job = job_run(job_id=job.pk)
    assert job is not None
    assert job.status == JobStatus.QUEUED
    assert "MB of disk free" in job.message
    assert not Item.objects.filter(dataset=dataset).exists()
