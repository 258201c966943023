"""The jobs page and the live progress fragment that htmx polls."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from curation.export.jobs import export_job_start
from curation.jobs import job_create, job_run
from curation.models import Dataset, Job, JobStatus
from curation.services import slice_create
from curation.ui.jobs import duration_text
from tests.ui_factories import populate

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


def test_a_queued_job_shows_an_empty_bar_and_that_it_waits(
    alice: User, dataset: Dataset, job: Job
) -> None:
    body = logged_in(alice).get(f"/datasets/{dataset.pk}/jobs/{job.pk}/progress").content.decode()
    assert "width: 0%" in body
    assert "width: 30%" not in body
    assert "indeterminate" not in body
    assert "waiting for a worker" in body


def test_a_running_job_with_no_total_yet_has_an_indeterminate_bar(
    alice: User, dataset: Dataset, job: Job
) -> None:
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, progress_done=4)
    body = logged_in(alice).get(f"/datasets/{dataset.pk}/jobs/{job.pk}/progress").content.decode()
    assert "indeterminate" in body
    assert "width: " not in body
    assert 'data-testid="job-count">4<' in body


def test_jobs_list_rows_link_to_the_job_page(alice: User, dataset: Dataset, job: Job) -> None:
    body = logged_in(alice).get("/jobs/").content.decode()
    assert f'href="/datasets/{dataset.pk}/jobs/{job.pk}" data-testid="job-link"' in body


START = datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)


def test_the_job_page_shows_parameters_timing_result_and_the_dataset_it_filled(
    victor: User, dataset: Dataset, job: Job
) -> None:
    Job.objects.filter(pk=job.pk).update(
        params={"source": {"kind": "folder", "path": "drone"}},
        status=JobStatus.SUCCEEDED,
        progress_done=12,
        progress_total=12,
        started=START,
        finished=START + timedelta(minutes=3, seconds=7),
        result={"created": 12, "updated": 0, "errors": 0, "total": 12},
    )
    response = logged_in(victor).get(f"/datasets/{dataset.pk}/jobs/{job.pk}")
    assert response.status_code == 200
    body = response.content.decode()
    assert '<dt>source.kind</dt><dd class="mono">folder</dd>' in body
    assert '<dt>source.path</dt><dd class="mono">drone</dd>' in body
    assert "2026-03-01 10:00:00" in body and "2026-03-01 10:03:07" in body
    assert 'data-testid="job-duration">3 min 07 s<' in body
    assert '<dt>created</dt><dd class="mono">12</dd>' in body
    assert f'href="/datasets/{dataset.pk}/" data-testid="job-made-dataset"' in body
    assert "width: 100%" in body
    assert 'hx-trigger="every 1s"' not in body  # finished: nothing polls


def test_the_job_page_of_a_queued_job_has_no_duration_and_keeps_polling(
    alice: User, dataset: Dataset, job: Job
) -> None:
    body = logged_in(alice).get(f"/datasets/{dataset.pk}/jobs/{job.pk}").content.decode()
    assert 'data-testid="job-started"><span class="muted">not yet' in body
    assert 'data-testid="job-duration"><span class="muted">—' in body
    assert "The result shows here when the job has finished." in body
    assert 'hx-trigger="every 1s"' in body
    assert 'data-testid="job-made' not in body


def test_the_job_page_shows_why_it_failed_and_every_kept_error(
    alice: User, dataset: Dataset, job: Job
) -> None:
    errors = [{"reference_id": f"cam/{n}.jpg", "message": "truncated"} for n in range(3)]
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.FAILED,
        message="SourceError: not JSON",
        error_count=3,
        errors=errors,
        started=START,
        finished=START + timedelta(seconds=4.25),
    )
    body = logged_in(alice).get(f"/datasets/{dataset.pk}/jobs/{job.pk}").content.decode()
    assert "SourceError: not JSON" in body
    assert '<details class="job-errors small" open>' in body
    assert all(f"cam/{n}.jpg: truncated" in body for n in range(3))
    assert 'data-testid="job-duration">4.2 s<' in body
    assert 'data-testid="job-made' not in body  # a failed job made nothing to link to


def test_a_duplicates_job_links_to_the_duplicates_page(
    alice: User, dataset: Dataset, bob: User
) -> None:
    found = job_create(kind="duplicates", dataset=dataset, user=bob, params={}, enqueue=False)
    Job.objects.filter(pk=found.pk).update(status=JobStatus.SUCCEEDED, result={"groups": 3})
    body = logged_in(alice).get(f"/datasets/{dataset.pk}/jobs/{found.pk}").content.decode()
    page = reverse("embeddings-ui:duplicates-page", args=[dataset.pk])
    assert f'href="{page}" data-testid="job-made-duplicates">3 duplicate groups<' in body


def test_a_selection_job_links_to_the_slice_it_made(
    alice: User, dataset: Dataset, bob: User
) -> None:
    made, _ = slice_create(dataset=dataset, user=bob, name="to label")
    picked = job_create(kind="selection", dataset=dataset, user=bob, params={}, enqueue=False)
    Job.objects.filter(pk=picked.pk).update(
        status=JobStatus.SUCCEEDED, result={"selection": 1, "slice": made.pk, "items": 40}
    )
    client = logged_in(alice)
    body = client.get(f"/datasets/{dataset.pk}/jobs/{picked.pk}").content.decode()
    url = reverse("ui:slice", args=[dataset.pk, made.pk])
    assert f'href="{url}" data-testid="job-made-slice">The selected slice (40 items)<' in body
    # Its selection deleted before it ran: the job made no slice, so no link.
    Job.objects.filter(pk=picked.pk).update(result={"selection": None, "message": "deleted"})
    body = client.get(f"/datasets/{dataset.pk}/jobs/{picked.pk}").content.decode()
    assert 'data-testid="job-made' not in body


def test_an_export_job_links_to_its_download(alice: User, dataset: Dataset) -> None:
    populate(dataset, 3)
    started = export_job_start(dataset=dataset, user=alice, format="coco")
    job_run(job_id=started.pk)
    client = logged_in(alice)
    body = client.get(f"/datasets/{dataset.pk}/jobs/{started.pk}").content.decode()
    download = f"/api/v1/datasets/{dataset.pk}/exports/{started.pk}/download"
    assert f'href="{download}" data-testid="job-made-download">Download ' in body
    assert '<dt>format</dt><dd class="mono">coco</dd>' in body
    assert '<dt>items</dt><dd class="mono">3</dd>' in body
    assert "exports/" not in body.split('data-testid="job-result"')[1].split("</dl>")[0]
    response = client.get(download)
    assert response.status_code == 200
    assert len(json.loads(b"".join(response.streaming_content))["images"]) == 3


def test_the_job_page_is_checked_like_the_jobs_list(
    charlie: User, alice: User, dataset: Dataset, job: Job
) -> None:
    path = f"/datasets/{dataset.pk}/jobs/{job.pk}"
    assert logged_in(charlie).get(path).status_code == 404  # no role: not even that it exists
    assert f"#{job.pk}" not in logged_in(charlie).get("/jobs/").content.decode()
    assert Client().get(path).status_code == 302  # to the login page
    other = Dataset.objects.create(name="elsewhere", owner=alice)
    assert logged_in(alice).get(f"/datasets/{other.pk}/jobs/{job.pk}").status_code == 404
    assert logged_in(alice).get(f"/datasets/{dataset.pk}/jobs/{job.pk + 1000}").status_code == 404


@pytest.mark.parametrize(
    ("elapsed", "text"),
    [
        (timedelta(milliseconds=850), "850 ms"),
        (timedelta(seconds=4.25), "4.2 s"),
        (timedelta(minutes=3, seconds=7), "3 min 07 s"),
        (timedelta(hours=2, minutes=5, seconds=59), "2 h 05 min"),
        # At the edges of a unit, what rounds up reads in the next unit, not "1000 ms".
        (timedelta(microseconds=999_499), "999 ms"),
        (timedelta(microseconds=999_600), "1.0 s"),
        (timedelta(seconds=59.94), "59.9 s"),
        (timedelta(seconds=59.96), "1 min 00 s"),
    ],
)
def test_durations_read_the_way_people_say_them(elapsed: timedelta, text: str) -> None:
    assert duration_text(elapsed) == text
