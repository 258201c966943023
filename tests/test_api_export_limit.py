"""Export jobs per user: a few queued or running at once, then a 429 until one finishes."""

from __future__ import annotations

from curation.models import Dataset, Job, JobStatus
from curation.services import MAX_ACTIVE_EXPORT_JOBS
from tests.api_helpers import add_items, error_of, url


def test_a_user_queues_a_few_export_jobs_at_once_then_gets_a_429(
    dataset, alice, victor, bob, client_for
):
    add_items(dataset, {"reference_id": "a"})
    viewer = client_for(victor)
    for _ in range(MAX_ACTIVE_EXPORT_JOBS):
        assert viewer.post(url(dataset, "exports"), {}, format="json").status_code == 202
    # The limit is per user over all datasets: another dataset does not reset it.
    other = Dataset.objects.create(name="other", owner=alice)
    other.memberships.create(user=victor, role="viewer")
    for target in (dataset, other):
        response = viewer.post(url(target, "exports"), {}, format="json")
        assert "wait for one to finish" in error_of(response, 429, "too_many_jobs")["message"]
    assert Job.objects.filter(kind="export", created_by=victor).count() == MAX_ACTIVE_EXPORT_JOBS
    # Someone else still may.
    assert client_for(bob).post(url(dataset, "exports"), {}, format="json").status_code == 202
    # A finished job frees its place.
    finished = Job.objects.filter(kind="export", created_by=victor).first()
    Job.objects.filter(pk=finished.pk).update(status=JobStatus.SUCCEEDED)
    assert viewer.post(url(dataset, "exports"), {}, format="json").status_code == 202
