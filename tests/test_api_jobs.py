"""Jobs: list per dataset (newest first), retrieve with progress and errors, cancel."""

from __future__ import annotations

from curation.models import Dataset, Job, JobStatus
from tests.api_helpers import error_of, url


def make_job(dataset: Dataset, **fields) -> Job:
    return Job.objects.create(kind="ingest", dataset=dataset, **fields)


def test_it_lists_a_datasets_jobs_newest_first(dataset, alice, victor, client_for):
    old = make_job(dataset)
    new = make_job(dataset)
    make_job(Dataset.objects.create(name="other", owner=alice))
    results = client_for(victor).get(url(dataset, "jobs")).json()["results"]
    assert [j["id"] for j in results] == [new.pk, old.pk]


def test_it_shows_status_progress_errors_and_result(dataset, victor, client_for):
    job = make_job(
        dataset,
        status=JobStatus.SUCCEEDED,
        progress_done=9,
        progress_total=10,
        error_count=1,
        errors=[{"reference_id": "x", "message": "not an image"}],
        result={"created": 9},
    )
    body = client_for(victor).get(url(dataset, f"jobs/{job.pk}")).json()
    assert body["status"] == "succeeded"
    assert body["progress"] == {"done": 9, "total": 10}
    assert (body["error_count"], body["errors"][0]["message"]) == (1, "not an image")
    assert body["result"] == {"created": 9}
    assert {"created", "started", "finished"} <= set(body)


def test_a_curator_cancels_a_queued_job(dataset, bob, client_for):
    job = make_job(dataset)
    response = client_for(bob).post(url(dataset, f"jobs/{job.pk}/cancel"))
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    # Cancelling again is harmless.
    assert client_for(bob).post(url(dataset, f"jobs/{job.pk}/cancel")).status_code == 200


def test_a_finished_job_cannot_be_cancelled(dataset, bob, client_for):
    job = make_job(dataset, status=JobStatus.SUCCEEDED)
    error_of(client_for(bob).post(url(dataset, f"jobs/{job.pk}/cancel")), 409, "conflict")
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED


def test_access_rules(dataset, alice, victor, charlie, client_for):
    job = make_job(dataset)
    foreign = make_job(Dataset.objects.create(name="other", owner=alice))
    error_of(client_for(victor).post(url(dataset, f"jobs/{job.pk}/cancel")), 403)
    error_of(client_for(charlie).get(url(dataset, "jobs")), 404)
    error_of(client_for(charlie).get(url(dataset, f"jobs/{job.pk}")), 404)
    error_of(client_for(victor).get(url(dataset, f"jobs/{foreign.pk}")), 404)
    error_of(client_for(victor).get(url(dataset, "jobs/999999")), 404)
    error_of(client_for(None).get(url(dataset, "jobs")), 401)
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED
