"""API tokens: listed, created (secret shown once) and revoked by their user."""

from __future__ import annotations

from rest_framework.test import APIClient

from curation.authentication import hash_token
from curation.models import ApiToken
from tests.api_helpers import error_of, error_paths


def signed_in(user) -> APIClient:
    """An API client with a browser session (how the web UI calls the API)."""
    client = APIClient()
    client.force_login(user)
    return client


def test_it_creates_a_token_whose_secret_is_shown_once_and_stored_hashed(alice, client_for):
    client_for(alice)  # a token named "test"
    client = signed_in(alice)
    response = client.post("/api/v1/tokens", {"name": "laptop"}, format="json")
    assert response.status_code == 201
    body = response.json()
    secret = body["secret"]
    assert secret.startswith("nuc_")
    token = ApiToken.objects.get(pk=body["id"])
    assert token.key_hash == hash_token(secret)
    assert secret not in {token.key_hash, token.prefix, token.name}
    listed = client.get("/api/v1/tokens").json()["results"]
    assert {t["name"] for t in listed} == {"test", "laptop"}
    assert all("secret" not in t for t in listed)


def test_the_new_token_authenticates(alice):
    secret = signed_in(alice).post("/api/v1/tokens", {"name": "ci"}, format="json").json()["secret"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
    assert client.get("/api/v1/datasets").status_code == 200


def test_it_lists_only_the_users_own_tokens(alice, bob, client_for):
    client_for(bob)
    names = [t["name"] for t in client_for(alice).get("/api/v1/tokens").json()["results"]]
    assert names == ["test"]


def test_a_revoked_token_is_refused_with_401(alice, client_for):
    client = client_for(alice)
    token_id = client.get("/api/v1/tokens").json()["results"][0]["id"]
    assert client.delete(f"/api/v1/tokens/{token_id}").status_code == 204
    response = client.get("/api/v1/datasets")
    error_of(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_it_refuses_anonymous_callers_with_401(client_for):
    response = client_for(None).get("/api/v1/tokens")
    error_of(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_it_refuses_a_made_up_token(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer nuc_not-a-real-token")
    error_of(client.get("/api/v1/tokens"), 401, "authentication_failed")


def test_a_user_cannot_revoke_someone_elses_token(alice, bob, client_for):
    client_for(bob)
    bobs = ApiToken.objects.get(user=bob)
    error_of(client_for(alice).delete(f"/api/v1/tokens/{bobs.pk}"), 404, "not_found")
    assert ApiToken.objects.filter(pk=bobs.pk).exists()


def test_creating_a_token_needs_a_name(alice):
    assert error_paths(signed_in(alice).post("/api/v1/tokens", {}, format="json")) == ["name"]


def test_a_token_cannot_create_tokens(alice, client_for):
    # Else a leaked token could mint a spare, and revoking the leaked one would not end
    # the access it gave.
    leaked = client_for(alice)
    response = leaked.post("/api/v1/tokens", {"name": "spare"}, format="json")
    assert "web UI" in error_of(response, 403, "permission_denied")["message"]
    assert list(ApiToken.objects.values_list("name", flat=True)) == ["test"]


def test_session_login_can_manage_tokens(alice):
    client = APIClient()
    client.force_login(alice)
    response = client.post("/api/v1/tokens", {"name": "from the browser"}, format="json")
    assert response.status_code == 201
