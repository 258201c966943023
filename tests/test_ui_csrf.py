"""Every form of the UI is protected against cross-site requests: a POST without the CSRF
token is refused and changes nothing; the same POST with the token goes through."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from curation.jobs import job_create
from curation.models import ApiToken, Dataset, Item, Job
from curation.services import token_create
from tests.ui_factories import populate

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(alice: User) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    return client


@pytest.fixture
def items(dataset: Dataset) -> list[Item]:
    return populate(dataset, 2)


def csrf_token(client: Client, url: str) -> str:
    """The token a page's forms carry, as a browser would read it."""
    body = client.get(url).content.decode()
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', body)
    assert match, f"no CSRF token in the forms of {url}"
    return match.group(1)


def test_it_refuses_every_form_posted_without_a_token(
    client: Client, alice: User, dataset: Dataset, items: list[Item]
) -> None:
    token, _ = token_create(user=alice, name="ci")
    job = job_create(kind="ingest", dataset=dataset, user=alice, params={}, enqueue=False)
    base = f"/datasets/{dataset.pk}"
    posts = {
        "/datasets/new": {"name": "forged"},
        f"{base}/ingest": {"type": "folder", "path": "x"},
        f"{base}/selection": {"action": "slice_create", "ids": str(items[0].pk), "name": "forged"},
        f"{base}/search/image": {},
        # The selection bar's buttons of other apps (autotag, review).
        f"{base}/autotags/from-selection": {"ids": str(items[0].pk)},
        f"{base}/review/from-selection": {"ids": str(items[0].pk)},
        f"{base}/jobs/{job.pk}/cancel": {},
        f"{base}/evaluations/suites/new": {"name": "forged"},
        "/tokens/new": {"name": "forged"},
        f"/tokens/{token.pk}/revoke": {},
        "/logout/": {},
    }
    for url, data in posts.items():
        assert client.post(url, data).status_code == 403, url
    assert not Dataset.objects.filter(name="forged").exists()
    assert not dataset.slices.exists()
    assert not dataset.scenario_suites.exists()
    assert list(ApiToken.objects.filter(user=alice)) == [token]
    assert Job.objects.get(pk=job.pk).status == "queued"
    assert client.get("/").status_code == 200  # still logged in


def test_it_accepts_a_form_posted_with_the_token_of_the_page(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    token = csrf_token(client, f"/datasets/{dataset.pk}/")
    response = client.post(
        f"/datasets/{dataset.pk}/selection",
        {
            "csrfmiddlewaretoken": token,
            "action": "slice_create",
            "ids": str(items[0].pk),
            "name": "picked",
        },
    )
    assert response.status_code == 302
    assert dataset.slices.get().name == "picked"


def test_it_accepts_htmx_requests_with_the_token_header(client: Client, dataset: Dataset) -> None:
    body = client.get(f"/datasets/{dataset.pk}/").content.decode()
    header = re.search(r"hx-headers='\{\"X-CSRFToken\": \"([^\"]+)\"\}'", body)
    assert header, "the page gives htmx the token"
    response = client.post("/datasets/new", {"name": "by htmx"}, HTTP_X_CSRFTOKEN=header.group(1))
    assert response.status_code == 302
    assert Dataset.objects.filter(name="by htmx").exists()
