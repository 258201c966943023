"""One error format everywhere: {"error": {"code", "message", "fields": [{"path", "message"}]}}."""

from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient

from curation.models import Dataset
from tests.api_helpers import error_of, error_paths, url


def test_401_without_credentials_carries_www_authenticate(dataset, client_for):
    response = client_for(None).post("/api/v1/datasets", {"name": "x"}, format="json")
    error_of(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_401_for_a_malformed_authorization_header(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer two parts")
    error_of(client.get("/api/v1/datasets"), 401, "authentication_failed")


def test_403_for_a_role_too_low_says_which_role_is_needed(dataset, victor, client_for):
    error = error_of(client_for(victor).post(url(dataset, "tags/add"), {}, format="json"), 403)
    assert error["code"] == "permission_denied"
    assert "curator" in error["message"]


def test_404_hides_datasets_without_a_role_the_same_as_missing_ones(dataset, charlie, client_for):
    client = client_for(charlie)
    hidden = error_of(client.get(url(dataset)), 404, "not_found")
    missing = error_of(client.get(url(dataset.pk + 1000)), 404, "not_found")
    assert hidden == missing


def test_405_for_an_unsupported_method(dataset, alice, client_for):
    error_of(
        client_for(alice).put(url(dataset), {"name": "x"}, format="json"), 405, "method_not_allowed"
    )


def test_415_for_an_unsupported_content_type(dataset, alice, client_for):
    response = client_for(alice).post("/api/v1/datasets", data="name=x", content_type="text/plain")
    error_of(response, 415, "unsupported_media_type")


def test_400_for_malformed_json(alice, client_for):
    response = client_for(alice).post("/api/v1/datasets", data="{", content_type="application/json")
    error_of(response, 400, "parse_error")


def test_400_names_nested_field_paths(dataset, bob, client_for):
    response = client_for(bob).post(
        url(dataset, "slices"), {"name": "s", "reference_ids": ["a", 7, None]}, format="json"
    )
    assert error_paths(response) == ["reference_ids[2]"]
    response = client_for(bob).post(url(dataset, "slices"), {"name": ["s"]}, format="json")
    assert error_paths(response) == ["name"]


def test_409_for_a_name_conflict_is_not_a_500(alice, client_for):
    Dataset.objects.create(name="taken", owner=alice)
    error = error_of(
        client_for(alice).post("/api/v1/datasets", {"name": "taken"}, format="json"), 409
    )
    assert error["fields"] == [
        {"path": "name", "message": "A dataset named 'taken' already exists."}
    ]


def test_413_for_a_body_over_the_configured_size(dataset, bob, client_for, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    rows = [{"reference_id": f"r{i}", "metadata": {"note": "x" * 100}} for i in range(20)]
    response = client_for(bob).post(url(dataset, "items/bulk"), {"items": rows}, format="json")
    error_of(response, 413, "request_too_large")
    assert not dataset.items.exists()


def test_unknown_api_paths_get_the_json_error_format(client_for: Any, alice: Any) -> None:
    response = client_for(alice).get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
