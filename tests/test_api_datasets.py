"""Datasets: list (only those with a role), create, retrieve, update (admin), delete (owner)."""

from __future__ import annotations

from curation import selectors
from curation.models import Annotation, Dataset, Membership, Role
from tests.api_helpers import add_items, box, error_of, error_paths, url


def test_it_lists_only_datasets_the_user_has_a_role_on_with_role_and_item_count(
    dataset, alice, bob, charlie, client_for
):
    Dataset.objects.create(name="charlie's own", owner=charlie)
    add_items(dataset, {"reference_id": "a"}, {"reference_id": "b"})
    body = client_for(bob).get("/api/v1/datasets").json()
    assert [(d["name"], d["role"], d["item_count"], d["owner"]) for d in body["results"]] == [
        ("street scenes", "curator", 2, "alice")
    ]
    assert body["next"] is None
    mine = client_for(alice).get("/api/v1/datasets").json()["results"]
    assert [(d["name"], d["role"]) for d in mine] == [("street scenes", "admin")]


def test_item_counts_past_the_exact_limit_are_estimates(dataset, alice, client_for, monkeypatch):
    # Counting stops at EXACT_COUNT_MAX rows; beyond, the count is the planner's estimate
    # and says so, so listing datasets never scans a million items.
    monkeypatch.setattr(selectors, "EXACT_COUNT_MAX", 2)
    add_items(dataset, *({"reference_id": f"r{i}"} for i in range(4)))
    Dataset.objects.create(name="small", owner=alice)
    client = client_for(alice)
    listed = client.get("/api/v1/datasets").json()["results"]
    assert [(d["name"], d["item_count_exact"]) for d in listed] == [
        ("street scenes", False),
        ("small", True),
    ]
    assert listed[0]["item_count"] >= 3 and listed[1]["item_count"] == 0
    detail = client.get(url(dataset)).json()
    assert detail["item_count"] >= 3 and detail["item_count_exact"] is False


def test_it_pages_the_list_with_a_cursor(alice, client_for):
    for i in range(3):
        Dataset.objects.create(name=f"set {i}", owner=alice)
    client = client_for(alice)
    first = client.get("/api/v1/datasets?limit=2").json()
    assert [d["name"] for d in first["results"]] == ["set 0", "set 1"]
    second = client.get(first["next"]).json()
    assert [d["name"] for d in second["results"]] == ["set 2"]
    assert second["next"] is None


def test_it_creates_a_dataset_owned_by_the_caller(charlie, client_for):
    response = client_for(charlie).post(
        "/api/v1/datasets", {"name": "  parking lots ", "description": "CCTV"}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["name"], body["owner"], body["role"], body["item_count"]) == (
        "parking lots",
        "charlie",
        "admin",
        0,
    )
    assert Dataset.objects.get(pk=body["id"]).owner == charlie


def test_a_duplicate_name_is_a_409_naming_the_field(dataset, alice, client_for):
    response = client_for(alice).post("/api/v1/datasets", {"name": "street scenes"}, format="json")
    error = error_of(response, 409, "conflict")
    assert [f["path"] for f in error["fields"]] == ["name"]


def test_a_blank_or_long_name_is_a_400(alice, client_for):
    client = client_for(alice)
    assert error_paths(client.post("/api/v1/datasets", {"name": "  "}, format="json")) == ["name"]
    assert error_paths(client.post("/api/v1/datasets", {"name": "x" * 201}, format="json")) == [
        "name"
    ]
    assert error_paths(client.post("/api/v1/datasets", {}, format="json")) == ["name"]
    assert not Dataset.objects.exists()


def test_retrieve_works_for_every_role_and_is_404_without_one(dataset, victor, charlie, client_for):
    body = client_for(victor).get(url(dataset)).json()
    assert (body["name"], body["role"]) == ("street scenes", "viewer")
    error_of(client_for(charlie).get(url(dataset)), 404, "not_found")
    error_of(client_for(victor).get(url(999999)), 404, "not_found")


def test_it_refuses_anonymous_callers(dataset, client_for):
    error_of(client_for(None).get(url(dataset)), 401)
    error_of(client_for(None).post("/api/v1/datasets", {"name": "x"}, format="json"), 401)


def test_an_admin_member_can_update_the_dataset(dataset, bob, client_for):
    Membership.objects.filter(dataset=dataset, user=bob).update(role=Role.ADMIN)
    response = client_for(bob).patch(url(dataset), {"description": "new"}, format="json")
    assert response.status_code == 200
    assert response.json()["description"] == "new"
    dataset.refresh_from_db()
    assert (dataset.name, dataset.description) == ("street scenes", "new")


def test_a_curator_cannot_update_the_dataset(dataset, bob, client_for):
    error_of(
        client_for(bob).patch(url(dataset), {"name": "mine"}, format="json"),
        403,
        "permission_denied",
    )
    dataset.refresh_from_db()
    assert dataset.name == "street scenes"


def test_renaming_onto_another_dataset_name_is_a_409(dataset, alice, client_for):
    Dataset.objects.create(name="other", owner=alice)
    response = client_for(alice).patch(url(dataset), {"name": "other"}, format="json")
    assert [f["path"] for f in error_of(response, 409)["fields"]] == ["name"]


def test_the_owner_deletes_the_dataset_with_everything_in_it(dataset, alice, client_for):
    add_items(dataset, {"reference_id": "a", "annotations": [box()]})
    assert client_for(alice).delete(url(dataset)).status_code == 204
    assert not Dataset.objects.filter(pk=dataset.pk).exists()
    assert not Annotation.objects.exists()


def test_only_the_owner_can_delete(dataset, bob, victor, charlie, client_for):
    Membership.objects.filter(dataset=dataset, user=bob).update(role=Role.ADMIN)
    error_of(client_for(bob).delete(url(dataset)), 403)
    error_of(client_for(victor).delete(url(dataset)), 403)
    error_of(client_for(charlie).delete(url(dataset)), 404)
    assert Dataset.objects.filter(pk=dataset.pk).exists()
