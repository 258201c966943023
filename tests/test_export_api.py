"""Export endpoints: who may export, version exports by API, and export jobs."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from django.core.files.storage import default_storage

from curation import versions
from curation.bulk.write import shapes_upsert
from curation.export.jobs import export_run
from curation.jobs import JobContext, job_run
from curation.models import Dataset, Job, JobStatus, Slice
from curation.services import items_delete, slice_create
from tests.api_helpers import error_of, error_paths
from tests.slice_factories import box, write_items

pytestmark = pytest.mark.django_db


@pytest.fixture
def chosen(dataset: Any, alice: Any) -> Slice:
    write_items(
        dataset,
        [
            {"reference_id": "a", "annotations": [box("car")]},
            {"reference_id": "b", "annotations": [box("bus")]},
            {"reference_id": "c", "annotations": []},
        ],
    )
    new, _ = slice_create(dataset=dataset, user=alice, name="chosen", reference_ids=["a", "b"])
    return new


def body_of(response: Any) -> bytes:
    assert response.status_code == 200, response.content[:500]
    return b"".join(response.streaming_content)


@pytest.mark.parametrize("fmt", ["jsonl", "coco", "yolo"])
def test_a_viewer_exports_and_a_stranger_sees_nothing(
    client_for: Any, dataset: Any, victor: Any, charlie: Any, chosen: Slice, fmt: str
) -> None:
    base = f"/api/v1/datasets/{dataset.pk}"
    viewer, stranger = client_for(victor), client_for(charlie)
    assert body_of(viewer.get(f"{base}/export?format={fmt}"))
    assert body_of(viewer.get(f"{base}/slices/{chosen.pk}/export?format={fmt}"))
    error_of(stranger.get(f"{base}/export?format={fmt}"), 404, "not_found")
    error_of(stranger.get(f"{base}/slices/{chosen.pk}/export?format={fmt}"), 404, "not_found")
    error_of(client_for(None).get(f"{base}/export?format={fmt}"), 401)


@pytest.mark.parametrize("fmt", ["jsonl", "coco", "yolo"])
def test_a_version_downloads_the_same_bytes_whenever_and_however_it_is_made(
    client_for: Any, dataset: Any, alice: Any, victor: Any, chosen: Slice, fmt: str
) -> None:
    """Edits, renames, another day, another fetcher count, streamed or as a job: one file."""
    with time_machine.travel(datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC), tick=False):
        versions.slice_version_create(slice=chosen, user=alice)
    url = f"/api/v1/datasets/{dataset.pk}/slices/{chosen.pk}/export?format={fmt}&version=1"
    client = client_for(victor)
    with time_machine.travel(datetime(2032, 1, 1, 0, 0, 1, tzinfo=UTC), tick=False):
        before = body_of(client.get(url))
    shapes_upsert(dataset=dataset, rows=[{"id": "a/0", "reference_id": "a", **box("car", x=300)}])
    items_delete(dataset=dataset, reference_ids=["b"])
    Dataset.objects.filter(pk=dataset.pk).update(name="renamed")
    Slice.objects.filter(pk=chosen.pk).update(name="renamed too")
    with time_machine.travel(datetime(2033, 2, 2, 12, 30, 59, tzinfo=UTC), tick=False):
        after = body_of(client.get(url))
        started = client.post(
            f"/api/v1/datasets/{dataset.pk}/exports",
            {"format": fmt, "slice": chosen.pk, "version": 1},
            format="json",
        )
        job = job_run(job_id=started.json()["id"])
    assert job is not None and job.status == JobStatus.SUCCEEDED, job.message
    with default_storage.open(job.result["key"]) as f:
        stored = f.read()
    digest = hashlib.sha256(before).hexdigest()
    assert hashlib.sha256(after).hexdigest() == digest
    assert hashlib.sha256(stored).hexdigest() == digest == job.result["sha256"]
    assert b"sig=" not in before  # plain media URLs: nothing in the file expires
    if fmt == "jsonl":
        assert json.loads(after.splitlines()[0])["annotations"][0]["geometry"]["x"] == 10
    elif fmt == "coco":
        assert json.loads(after)["info"]["date_created"] == "2031-05-06T07:08:09Z"
    else:
        with tarfile.open(fileobj=io.BytesIO(after)) as tar:
            assert {m.mtime for m in tar.getmembers()} == {
                datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC).timestamp()
            }
    error_of(client.get(url.replace("version=1", "version=7")), 404, "not_found")


def test_a_version_export_can_still_ask_for_signed_urls(
    client_for: Any, dataset: Any, alice: Any, victor: Any, chosen: Slice
) -> None:
    versions.slice_version_create(slice=chosen, user=alice)
    base = f"/api/v1/datasets/{dataset.pk}/slices/{chosen.pk}/export?version=1"
    client = client_for(victor)
    assert b"sig=" in body_of(client.get(f"{base}&media_urls=signed"))
    assert b"sig=" in body_of(client.get(f"{base}&url_ttl=60"))
    live = f"/api/v1/datasets/{dataset.pk}/slices/{chosen.pk}/export"
    assert b"sig=" in body_of(client.get(live))
    assert b"sig=" not in body_of(client.get(f"{live}?media_urls=plain"))
    assert error_paths(client.get(f"{base}&media_urls=plain&url_ttl=60")) == ["url_ttl"]
    assert error_paths(client.get(f"{base}&media_urls=forever")) == ["media_urls"]


def test_an_export_job_stores_the_file_for_download(
    client_for: Any, dataset: Any, victor: Any, charlie: Any, chosen: Slice
) -> None:
    client = client_for(victor)
    base = f"/api/v1/datasets/{dataset.pk}/exports"
    started = client.post(base, {"format": "coco", "slice": chosen.pk}, format="json")
    assert started.status_code == 202, started.json()
    job_id = started.json()["id"]
    assert started.json()["kind"] == "export" and started.json()["status"] == "queued"
    error_of(client.get(f"{base}/{job_id}/download"), 409, "conflict")

    job = job_run(job_id=job_id)
    assert job is not None and job.status == JobStatus.SUCCEEDED, job.message
    assert job.result["filename"] == "street_scenes-chosen.json"
    assert job.result["items"] == 2 and job.progress_done == 2

    download = client.get(f"{base}/{job_id}/download")
    assert download.status_code == 200
    assert download["Content-Disposition"] == 'attachment; filename="street_scenes-chosen.json"'
    data = json.loads(b"".join(download.streaming_content))
    assert [i["file_name"] for i in data["images"]] == ["a", "b"]
    assert job.params["base_url"] == "http://testserver"
    assert client.get(base).json()["results"][0]["id"] == job_id

    error_of(client_for(charlie).get(f"{base}/{job_id}/download"), 404, "not_found")
    error_of(client_for(charlie).post(base, {"format": "coco"}, format="json"), 404, "not_found")


def test_running_an_export_job_again_rewrites_its_one_file(
    dataset: Any, alice: Any, chosen: Slice
) -> None:
    from curation.export.jobs import export_job_start

    job = export_job_start(dataset=dataset, user=alice, format="jsonl", slice=chosen)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    job.refresh_from_db()
    first = export_run(JobContext(job))
    second = export_run(JobContext(job))  # what a retry after a crash does
    assert first["key"] == second["key"]
    _, files = default_storage.listdir(first["key"].rsplit("/", 1)[0])
    assert files == [first["filename"]]
    with default_storage.open(first["key"]) as f:
        assert len(f.read().splitlines()) == 2


def test_export_jobs_refuse_bad_input_by_field(
    client_for: Any, dataset: Any, victor: Any, chosen: Slice
) -> None:
    client = client_for(victor)
    base = f"/api/v1/datasets/{dataset.pk}/exports"
    assert error_paths(client.post(base, {"format": "xml"}, format="json")) == ["format"]
    assert error_paths(client.post(base, {"format": "coco", "slice": 10**9}, format="json")) == [
        "slice"
    ]
    assert error_paths(client.post(base, {"format": "coco", "version": 1}, format="json")) == [
        "version"
    ]
    assert error_paths(
        client.post(base, {"format": "coco", "slice": chosen.pk, "version": 3}, format="json")
    ) == ["version"]
    assert not Job.objects.filter(kind="export").exists()


def test_an_export_jobs_links_point_at_the_service_that_made_it(
    client_for: Any, dataset: Any, victor: Any
) -> None:
    """Not at SITE_URL's default port: at the scheme, host and port the job was asked on."""
    write_items(dataset, [{"reference_id": "with-media"}])
    client = client_for(victor)
    started = client.post(
        f"/api/v1/datasets/{dataset.pk}/exports",
        {"format": "jsonl"},
        format="json",
        HTTP_HOST="127.0.0.1:9123",
    )
    assert started.status_code == 202, started.json()
    job = job_run(job_id=started.json()["id"])
    assert job is not None and job.status == JobStatus.SUCCEEDED, job.message
    with default_storage.open(job.result["key"]) as f:
        (record,) = [json.loads(line) for line in f.read().splitlines()]
    assert record["media_url"].startswith("http://127.0.0.1:9123/media/items/"), record
