"""The datasets page: the list, creating a dataset, and starting an ingest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from curation.jobs import job_run
from curation.models import Dataset, Item, Job, JobStatus
from tests.ingest_support import image_bytes
from tests.ui_factories import LONG_DESCRIPTION, populate

pytestmark = pytest.mark.django_db


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_it_lists_each_dataset_with_its_item_count_and_the_users_role(
    bob: User, dataset: Dataset
) -> None:
    populate(dataset, 3)
    body = logged_in(bob).get("/").content.decode()
    assert f'href="/datasets/{dataset.pk}/"' in body
    assert '<td class="num">3</td>' in body
    assert ">curator<" in body
    assert "none yet" in body  # no embeddings


def test_it_offers_ingest_only_to_curators(bob: User, victor: User, dataset: Dataset) -> None:
    assert f'id="ingest-{dataset.pk}"' in logged_in(bob).get("/").content.decode()
    assert f'id="ingest-{dataset.pk}"' not in logged_in(victor).get("/").content.decode()


def test_it_creates_a_dataset_owned_by_the_user(charlie: User) -> None:
    response = logged_in(charlie).post(
        "/datasets/new", {"name": "  drone survey ", "description": "2026"}
    )
    created = Dataset.objects.get(name="drone survey")
    assert created.owner == charlie
    assert response.status_code == 302
    assert response["Location"] == f"/?ingest={created.pk}#ingest-{created.pk}"


def test_it_shows_a_blank_name_on_the_form(alice: User) -> None:
    response = logged_in(alice).post("/datasets/new", {"name": ""})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert not Dataset.objects.exists()


def test_it_shows_a_name_already_taken_on_the_form(alice: User, dataset: Dataset) -> None:
    response = logged_in(alice).post("/datasets/new", {"name": dataset.name})
    assert response.status_code == 400
    assert "already exists" in response.content.decode()
    assert Dataset.objects.count() == 1


def test_it_starts_an_ingest_of_a_folder_under_an_import_root(
    bob: User, dataset: Dataset, import_root: Path
) -> None:
    folder = import_root / "photos" / "car"
    folder.mkdir(parents=True)
    for n in range(2):
        (folder / f"{n}.jpg").write_bytes(image_bytes(seed=str(n)))
    response = logged_in(bob).post(
        f"/datasets/{dataset.pk}/ingest",
        {"type": "folder", "path": "photos", "labels_from_folders": "on"},
    )
    job = Job.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/#job-{job.pk}"
    assert job.params["source"]["labels_from_folders"] is True
    assert job_run(job_id=job.pk).status == JobStatus.SUCCEEDED
    assert Item.objects.filter(dataset=dataset).count() == 2


def test_it_starts_an_ingest_of_an_uploaded_manifest(bob: User, dataset: Dataset) -> None:
    manifest = json.dumps({"reference_id": "a", "metadata": {"weather": "rain"}}).encode()
    upload = SimpleUploadedFile("items.jsonl", manifest, content_type="application/jsonl")
    response = logged_in(bob).post(
        f"/datasets/{dataset.pk}/ingest", {"type": "manifest", "file": upload}
    )
    assert response.status_code == 302
    job = Job.objects.get()
    assert job_run(job_id=job.pk).status == JobStatus.SUCCEEDED
    assert Item.objects.get(dataset=dataset).metadata == {"weather": "rain"}


@pytest.mark.parametrize(
    ("data", "field_message"),
    [
        ({"type": "folder", "path": ""}, "Name a folder under an import root."),
        ({"type": "folder", "path": "/etc"}, "is outside the import roots"),
        ({"type": "folder", "path": "missing"}, "is not a folder"),
        # No ~ expansion for a web user: a folder of that name under the import root.
        ({"type": "folder", "path": "~unknownuser/photos"}, "is not a folder"),
        ({"type": "folder", "path": "~/photos"}, "is not a folder"),
        ({"type": "manifest"}, "Upload a file or give a path"),
        ({"type": "tarball", "path": "x"}, "Select a valid choice."),
    ],
)
def test_it_shows_a_bad_ingest_source_on_the_form(
    bob: User, dataset: Dataset, data: dict[str, str], field_message: str
) -> None:
    response = logged_in(bob).post(f"/datasets/{dataset.pk}/ingest", data)
    assert response.status_code == 400
    body = response.content.decode()
    assert field_message in body
    assert f'id="ingest-{dataset.pk}" class="ingest-row">' in body  # the form is open, not hidden
    assert not Job.objects.exists()


def test_it_shows_an_upload_together_with_a_path_as_an_error(bob: User, dataset: Dataset) -> None:
    upload = SimpleUploadedFile("coco.json", b"{}", content_type="application/json")
    response = logged_in(bob).post(
        f"/datasets/{dataset.pk}/ingest", {"type": "coco", "path": "coco.json", "file": upload}
    )
    assert response.status_code == 400
    assert "one of them" in response.content.decode()
    assert not Job.objects.exists()


def test_it_shows_running_jobs_with_live_progress(alice: User, bob: User, dataset: Dataset) -> None:
    from curation.jobs import job_create

    job = job_create(kind="ingest", dataset=dataset, user=bob, params={}, enqueue=False)
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, progress_done=3, progress_total=12
    )
    body = logged_in(alice).get("/").content.decode()
    assert f'hx-get="/datasets/{dataset.pk}/jobs/{job.pk}/progress?compact=1"' in body
    assert 'hx-trigger="every 1s"' in body
    assert "width: 25%" in body


def test_the_description_is_whole_on_the_dataset_page_and_clamped_not_cut_in_the_list(
    bob: User, dataset: Dataset
) -> None:
    Dataset.objects.filter(pk=dataset.pk).update(description=LONG_DESCRIPTION)
    client = logged_in(bob)
    listed = client.get("/").content.decode()
    assert f'data-testid="dataset-description">{LONG_DESCRIPTION}</div>' in listed
    assert "data-clamp-toggle" in listed  # the browser decides whether it overflows
    page = client.get(f"/datasets/{dataset.pk}/").content.decode()
    assert f'data-testid="dataset-description">{LONG_DESCRIPTION}</p>' in page
