"""API paths answer with or without a trailing slash; the schema spells them without."""

from __future__ import annotations

from typing import Any

from curation.models import Dataset
from tests.api_helpers import error_of


def test_a_trailing_slash_reads_the_same(dataset: Any, alice: Any, client_for: Any) -> None:
    client = client_for(alice)
    for path in (
        "/api/v1/datasets",
        f"/api/v1/datasets/{dataset.pk}",
        f"/api/v1/datasets/{dataset.pk}/items",
        f"/api/v1/datasets/{dataset.pk}/slices",
        f"/api/v1/datasets/{dataset.pk}/embedding-models",
        "/api/v1/tokens",
    ):
        plain, slashed = client.get(path), client.get(path + "/")
        assert plain.status_code == 200, (path, plain.content[:300])
        assert slashed.status_code == 200, (path, slashed.content[:300])
        assert slashed.json() == plain.json()


def test_a_post_with_a_trailing_slash_keeps_its_body(alice: Any, client_for: Any) -> None:
    response = client_for(alice).post("/api/v1/datasets/", {"name": "slashed"}, format="json")
    assert response.status_code == 201, response.json()
    assert Dataset.objects.filter(name="slashed", owner=alice).exists()


def test_unknown_paths_are_still_404_in_the_api_format(alice: Any, client_for: Any) -> None:
    client = client_for(alice)
    for path in ("/api/v1/nothing/", "/api/v1/datasets/abc/", "/api/v1/datasets//"):
        error_of(client.get(path), 404, "not_found")


def test_access_rules_hold_with_a_slash(dataset: Any, charlie: Any, client_for: Any) -> None:
    error_of(client_for(charlie).get(f"/api/v1/datasets/{dataset.pk}/"), 404, "not_found")
    error_of(client_for(None).get("/api/v1/datasets/"), 401)
