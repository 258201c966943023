"""The jobs page and the live progress fragment that htmx polls."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from curation.jobs import job_create
from curation.models import Dataset, Job, JobStatus

pytestmark = pytest.mark.django_db


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def job(dataset: Dataset, bob: User) -> Job:
    return job_create(kind="ingest", dataset=dataset, user=bob, params={}, enqueue=False)


def test_it_shows_progress_and_keeps_polling_a_running_job(
    alice: User, dataset: Dataset, job: Job
) -> None:
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, progress_done=30, progress_total=40
    )
    response = logged_in(alice).get(f"/datasets/{dataset.pk}/jobs/{job.pk}/progress")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'hx-trigger="every 1s"' in body
    assert "width: 75%" in body
    assert "30 / 40" in body


def test_it_stops_polling_a_finished_job_and_lists_its_errors(
    alice: User, dataset: Dataset, job: Job
) -> None:
    errors = [{"reference_id": "cam/7.jpg", "message": "cannot identify image file"}]
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.SUCCEEDED, progress_done=9, progress_total=10, error_count=1, errors=errors
    )
    response = logged_in(alice).get(f"/datasets/{dataset.pk}/jobs/{job.pk}/progress")
    assert response.status_code == 286  # htmx stops polling on 286
    body = response.content.decode()
    assert "hx-trigger" not in body
    assert "1 item error" in body
    assert "cam/7.jpg: cannot identify image file" in body


def test_it_shows_why_a_job_failed(alice: User, job: Job) -> None:
    Job.objects.filter(pk=job.pk).update(status=JobStatus.FAILED, message="SourceError: not JSON")
    body = logged_in(alice).get("/jobs/").content.decode()
    assert "SourceError: not JSON" in body
    assert "status-failed" in body


def test_it_filters_jobs_by_status_and_dataset(alice: User, dataset: Dataset, job: Job) -> None:
    done = job_create(kind="ingest", dataset=dataset, user=alice, params={}, enqueue=False)
    Job.objects.filter(pk=done.pk).update(status=JobStatus.SUCCEEDED)
    body = logged_in(alice).get(f"/jobs/?dataset={dataset.pk}&status=succeeded").content.decode()
    assert f'id="job-{done.pk}"' in body
    assert f'id="job-{job.pk}"' not in body


def test_a_curator_cancels_a_job(bob: User, dataset: Dataset, job: Job) -> None:
    response = logged_in(bob).post(
        f"/datasets/{dataset.pk}/jobs/{job.pk}/cancel", {"next": "/jobs/"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/jobs/"
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED


def test_cancelling_a_finished_job_says_why_not(bob: User, dataset: Dataset, job: Job) -> None:
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    client = logged_in(bob)
    response = client.post(f"/datasets/{dataset.pk}/jobs/{job.pk}/cancel", follow=True)
    assert "already succeeded; it cannot be cancelled" in response.content.decode()
    assert Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED


def test_only_curators_see_the_cancel_button(bob: User, victor: User, job: Job) -> None:
    cancel = f"/jobs/{job.pk}/cancel"
    assert cancel in logged_in(bob).get("/jobs/").content.decode()
    assert cancel not in logged_in(victor).get("/jobs/").content.decode()


@pytest.mark.parametrize("before", ["\N{SUPERSCRIPT TWO}", "9" * 30, "-1", "x"])
def test_a_before_cursor_that_is_not_a_job_id_lists_from_the_start(
    alice: User, job: Job, before: str
) -> None:
    response = logged_in(alice).get("/jobs/", {"before": before})
    assert response.status_code == 200
    assert f"#{job.pk}" in response.content.decode()
