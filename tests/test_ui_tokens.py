"""The API tokens page: create a token (its secret shown once), list, revoke."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from curation.authentication import hash_token
from curation.models import ApiToken
from curation.services import token_create

pytestmark = pytest.mark.django_db


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_it_creates_a_token_and_shows_its_secret_once(alice: User) -> None:
    client = logged_in(alice)
    response = client.post("/tokens/new", {"name": "training pipeline"})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    secret = re.search(r'data-testid="token-secret">([^<]+)<', response.content.decode()).group(1)
    token = ApiToken.objects.get(user=alice)
    assert token.name == "training pipeline"
    assert token.key_hash == hash_token(secret)
    assert secret not in client.get("/tokens/").content.decode()


def test_the_new_secret_authenticates_api_calls(alice: User) -> None:
    response = logged_in(alice).post("/tokens/new", {"name": "ci"})
    secret = re.search(r'data-testid="token-secret">([^<]+)<', response.content.decode()).group(1)
    api = Client().get("/api/v1/datasets", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.status_code == 200


def test_it_shows_a_blank_name_on_the_form(alice: User) -> None:
    response = logged_in(alice).post("/tokens/new", {"name": ""})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert not ApiToken.objects.exists()


def test_it_lists_only_the_users_own_tokens(alice: User, bob: User) -> None:
    token_create(user=alice, name="alice laptop")
    token_create(user=bob, name="bob laptop")
    body = logged_in(alice).get("/tokens/").content.decode()
    assert "alice laptop" in body
    assert "bob laptop" not in body


def test_it_revokes_a_token(alice: User) -> None:
    token, secret = token_create(user=alice, name="old")
    response = logged_in(alice).post(f"/tokens/{token.pk}/revoke")
    assert response.status_code == 302
    assert not ApiToken.objects.exists()
    assert (
        Client().get("/api/v1/datasets", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401
    )


def test_it_cannot_revoke_another_users_token(alice: User, bob: User) -> None:
    token, _ = token_create(user=bob, name="bob's")
    assert logged_in(alice).post(f"/tokens/{token.pk}/revoke").status_code == 404
    assert ApiToken.objects.filter(pk=token.pk).exists()
