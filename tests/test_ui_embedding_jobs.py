"""Starting embedding and duplicates jobs from the UI (the stats page's buttons)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.test import Client

from curation.jobs import job_run
from curation.models import Dataset, Job
from tests.ui_factories import populate

pytestmark = pytest.mark.django_db


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_missing_weights_are_reported_with_the_ways_to_get_them(
    bob: User, dataset: Dataset, settings: Any, tmp_path: Path
) -> None:
    settings.NUCLEUS_EMBEDDING_WEIGHTS = str(tmp_path / "missing.pt")
    settings.NUCLEUS_EMBEDDING_RANDOM_FALLBACK = False
    response = logged_in(bob).post(f"/datasets/{dataset.pk}/embed")
    assert response.status_code == 302
    assert response["Location"] == f"/datasets/{dataset.pk}/stats"
    [message] = [str(m) for m in get_messages(response.wsgi_request)]
    assert "missing.pt" in message
    assert not Job.objects.exists()


def test_a_curator_starts_a_duplicates_job(bob: User, dataset: Dataset) -> None:
    populate(dataset, 3)
    response = logged_in(bob).post(f"/datasets/{dataset.pk}/duplicates")
    assert response.status_code == 302
    job = Job.objects.get(kind="duplicates")
    assert job_run(job_id=job.pk).status == "succeeded"


def test_a_viewer_starts_no_jobs(victor: User, dataset: Dataset) -> None:
    client = logged_in(victor)
    assert client.post(f"/datasets/{dataset.pk}/embed").status_code == 403
    assert client.post(f"/datasets/{dataset.pk}/duplicates").status_code == 403
    assert not Job.objects.exists()
    assert "Embed missing items" not in client.get(f"/datasets/{dataset.pk}/stats").content.decode()
