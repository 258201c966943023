"""Logging in and out of the UI (session authentication)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

pytestmark = pytest.mark.django_db


def test_it_logs_in_and_goes_where_the_visitor_was_headed(alice: User) -> None:
    client = Client()
    response = client.post(
        "/login/", {"username": "alice", "password": "alice-password-1", "next": "/tokens/"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/tokens/"
    assert client.get("/tokens/").status_code == 200


def test_it_lands_on_the_datasets_page_by_default(alice: User) -> None:
    client = Client()
    response = client.post("/login/", {"username": "alice", "password": "alice-password-1"})
    assert response["Location"] == "/"


def test_it_says_so_when_the_password_is_wrong(alice: User) -> None:
    client = Client()
    response = client.post("/login/", {"username": "alice", "password": "wrong"})
    assert response.status_code == 200
    body = response.content.decode()
    assert 'role="alert"' in body
    assert "correct username and password" in body
    assert client.get("/").status_code == 302


def test_it_does_not_follow_next_off_the_site(alice: User) -> None:
    response = Client().post(
        "/login/",
        {"username": "alice", "password": "alice-password-1", "next": "https://evil.example/"},
    )
    assert response["Location"] == "/"


def test_it_logs_out_by_post_only(alice: User) -> None:
    client = Client()
    client.force_login(alice)
    assert client.get("/logout/").status_code == 405
    response = client.post("/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/login/"
    assert client.get("/").status_code == 302


def test_favicon_ico_is_served_to_anyone_and_pages_link_an_icon() -> None:
    response = Client().get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    assert b"".join(response.streaming_content).startswith(b"\x00\x00\x01\x00")  # ICO header
    login = Client().get("/login/").content.decode()
    assert '<link rel="icon" href="/static/curation/favicon.svg" type="image/svg+xml">' in login
    assert Client().get("/static/curation/favicon.svg").status_code == 200
