"""Export endpoints: who may export, version exports by API, and export jobs."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.core.files.storage import default_storage

from curation import slices
from curation.bulk import shapes_upsert
from curation.export import export_run
from curation.jobs import JobContext, job_run
from curation.models import Job, JobStatus, Slice
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


def without_signatures(body: bytes) -> bytes:
    return re.sub(rb"sig=[^\"&,\s]+", b"sig=...", body)


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
def test_a_version_downloads_the_same_after_edits(
    client_for: Any, dataset: Any, alice: Any, victor: Any, chosen: Slice, fmt: str
) -> None:
    slices.slice_version_create(slice=chosen, user=alice)
    url = f"/api/v1/datasets/{dataset.pk}/slices/{chosen.pk}/export?format={fmt}&version=1"
    client = client_for(victor)
    before = body_of(client.get(url))
    shapes_upsert(dataset=dataset, rows=[{"id": "a/0", "reference_id": "a", **box("car", x=300)}])
    items_delete(dataset=dataset, reference_ids=["b"])
    after = body_of(client.get(url))
    if fmt == "jsonl":
        assert without_signatures(before) == without_signatures(after)
        assert json.loads(after.splitlines()[0])["annotations"][0]["geometry"]["x"] == 10
    elif fmt == "coco":
        first, second = json.loads(before), json.loads(after)
        for data in (first, second):
            data.pop("info")
            for image in data["images"]:
                image.pop("coco_url")
        assert first == second and len(second["images"]) == 2
    else:
        assert len(after) == len(before)  # the same members, labels and sizes
    error_of(client.get(url.replace("version=1", "version=7")), 404, "not_found")


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
    assert client.get(base).json()["results"][0]["id"] == job_id

    error_of(client_for(charlie).get(f"{base}/{job_id}/download"), 404, "not_found")
    error_of(client_for(charlie).post(base, {"format": "coco"}, format="json"), 404, "not_found")


def test_running_an_export_job_again_rewrites_its_one_file(
    dataset: Any, alice: Any, chosen: Slice
) -> None:
    from curation.export import export_job_start

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
