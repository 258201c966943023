"""Who may see and change what through the UI: the same rules as the API.

Anonymous visitors are sent to the login page; a user with no role on a dataset gets 404
from every page, fragment and media URL of it (its existence is private); a viewer may
look but gets 403 from every form that changes something.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from django.test import Client

from curation.jobs import job_create
from curation.models import Dataset, Item, Job
from curation.services import slice_create
from tests.ui_factories import MODEL, evaluated, populate

pytestmark = pytest.mark.django_db


@pytest.fixture
def items(dataset: Dataset) -> list[Item]:
    return populate(dataset, 3)


@pytest.fixture
def job(dataset: Dataset, alice: User) -> Job:
    return job_create(kind="ingest", dataset=dataset, user=alice, params={}, enqueue=False)


def pages(dataset: Dataset, item: Item, job: Job) -> list[str]:
    sliced, _ = slice_create(
        dataset=dataset, user=None, name="some", reference_ids=[item.reference_id]
    )
    base = f"/datasets/{dataset.pk}"
    run = evaluated(dataset, None, "access", model=MODEL)
    return [
        f"{base}/evaluations/",
        f"{base}/evaluations/{run.pk}/",
        f"{base}/evaluations/compare/?a={run.pk}&b={run.pk}",
        f"{base}/",
        f"{base}/?label=car",
        f"{base}/count",
        f"{base}/facets",
        f"{base}/query/check?query=width%20%3E%201",
        f"{base}/query/complete?query=annotations.c&pos=13",
        f"{base}/items/{item.pk}",
        f"{base}/stats",
        f"{base}/autotags/",
        f"{base}/slices/{sliced.pk}/",
        f"{base}/slices/{sliced.pk}/count",
        f"{base}/slices/{sliced.pk}/facets",
        f"{base}/jobs/{job.pk}",
        f"{base}/jobs/{job.pk}/progress",
        f"/jobs/?dataset={dataset.pk}",
    ]


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_it_sends_anonymous_visitors_to_the_login_page(
    dataset: Dataset, items: list[Item], job: Job
) -> None:
    for url in [*pages(dataset, items[0], job), "/", "/jobs/", "/tokens/", "/help/query"]:
        response = Client().get(url)
        assert response.status_code == 302, url
        location = urlsplit(response["Location"])
        assert location.path == "/login/", url


def test_it_answers_404_to_a_user_without_a_role(
    charlie: User, dataset: Dataset, items: list[Item], job: Job
) -> None:
    client = logged_in(charlie)
    for url in pages(dataset, items[0], job):
        assert client.get(url).status_code == 404, url


def test_it_hides_media_from_a_user_without_a_role(charlie: User, items: list[Item]) -> None:
    client = logged_in(charlie)
    for kind in ("thumbnail", "original"):
        response = client.get(f"/media/items/{items[0].pk}/{kind}")
        assert response.status_code == 404


def test_it_serves_media_to_a_viewer_with_caching_headers(victor: User, items: list[Item]) -> None:
    response = logged_in(victor).get(f"/media/items/{items[0].pk}/thumbnail")
    assert response.status_code == 200
    assert "max-age" in response["Cache-Control"]
    assert response["ETag"]


def test_it_shows_every_page_to_a_viewer(
    victor: User, dataset: Dataset, items: list[Item], job: Job
) -> None:
    client = logged_in(victor)
    for url in pages(dataset, items[0], job):
        assert client.get(url).status_code in (200, 286), url


def test_it_refuses_changes_by_a_viewer(
    victor: User, dataset: Dataset, items: list[Item], job: Job
) -> None:
    client = logged_in(victor)
    base = f"/datasets/{dataset.pk}"
    posts = {
        f"{base}/selection": {"action": "tag", "ids": str(items[0].pk), "name": "x"},
        f"{base}/ingest": {"type": "folder", "path": "photos"},
        f"{base}/jobs/{job.pk}/cancel": {},
    }
    for url, data in posts.items():
        assert client.post(url, data).status_code == 403, url
    assert not items[0].tags.exists()
    job.refresh_from_db()
    assert job.status == "queued"


def test_it_refuses_changes_by_a_user_without_a_role_as_not_found(
    charlie: User, dataset: Dataset, items: list[Item]
) -> None:
    client = logged_in(charlie)
    response = client.post(
        f"/datasets/{dataset.pk}/selection",
        {"action": "slice_create", "ids": str(items[0].pk), "name": "mine"},
    )
    assert response.status_code == 404
    assert not dataset.slices.exists()


def test_it_lists_only_datasets_the_user_has_a_role_on(
    alice: User, charlie: User, dataset: Dataset
) -> None:
    Dataset.objects.create(name="charlie's private set", owner=charlie)
    body = logged_in(alice).get("/").content.decode()
    assert "street scenes" in body
    assert "charlie&#x27;s private set" not in body and "charlie's private set" not in body


def test_it_lists_only_jobs_of_visible_datasets(alice: User, charlie: User, job: Job) -> None:
    private = Dataset.objects.create(name="hidden", owner=charlie)
    hidden_job = job_create(kind="ingest", dataset=private, user=charlie, params={}, enqueue=False)
    body = logged_in(alice).get("/jobs/").content.decode()
    assert f'id="job-{job.pk}"' in body
    assert f'id="job-{hidden_job.pk}"' not in body
