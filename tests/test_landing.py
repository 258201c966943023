"""The front page at /: where the API docs and the admin are."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from curation.models import Dataset

pytestmark = pytest.mark.django_db


def test_it_links_the_api_docs_and_the_admin(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'href="/api/docs/"' in body
    assert 'href="/admin/"' in body
    assert "Signed in" not in body


def test_it_greets_a_signed_in_user_with_their_dataset_count(
    client: Client, alice: User, dataset: Dataset
) -> None:
    client.force_login(alice)
    body = client.get("/").content.decode()
    assert "Signed in as <strong>alice</strong>" in body
    assert "a role on 1 dataset." in body


def test_it_refuses_writes(client: Client) -> None:
    assert client.post("/").status_code == 405
