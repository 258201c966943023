"""The history API: an item's and a dataset's changes (filtered, paged), revert, roles."""

from __future__ import annotations

import pytest

from curation.models import Annotation, Dataset
from tests.api_helpers import add_items, box, error_of, url


@pytest.fixture
def item_id(dataset: Dataset, bob, client_for) -> int:
    ids = add_items(dataset, {"reference_id": "a"})
    client = client_for(bob)
    rows = [{"reference_id": "a", "id": "a-1", **box()}]
    client.post(url(dataset, "annotations/bulk"), {"annotations": rows}, format="json")
    rows[0]["label"] = "bus"
    client.post(url(dataset, "annotations/bulk"), {"annotations": rows}, format="json")
    return ids["a"]


def test_an_item_history_says_who_changed_what_newest_first(dataset, item_id, victor, client_for):
    response = client_for(victor).get(url(dataset, f"items/{item_id}/history"))
    assert response.status_code == 200
    results = response.json()["results"]
    assert [(c["action"], c["user"], c["source"], c["latest"]) for c in results] == [
        ("changed", "bob", "api", True),
        ("created", "bob", "api", False),
    ]
    assert (results[0]["before"]["label"], results[0]["after"]["label"]) == ("car", "bus")
    assert (results[1]["before"], results[1]["after"]["label"]) == (None, "car")


def test_the_dataset_history_filters_and_pages(dataset, item_id, alice, bob, client_for):
    client = client_for(alice)
    client.post(url(dataset, "annotations/delete"), {"ids": ["a-1"]}, format="json")
    everything = client.get(url(dataset, "history")).json()
    assert [c["action"] for c in everything["results"]] == ["deleted", "changed", "created"]
    by_bob = client.get(url(dataset, "history"), {"user": "bob"}).json()["results"]
    assert [c["action"] for c in by_bob] == ["changed", "created"]
    newest_seen = by_bob[0]["id"]
    since = client.get(url(dataset, "history"), {"since": newest_seen}).json()["results"]
    assert [(c["action"], c["user"]) for c in since] == [("deleted", "alice")]
    first = client.get(url(dataset, "history"), {"limit": 2}).json()
    rest = client.get(first["next"]).json()
    assert [c["action"] for c in first["results"] + rest["results"]] == [
        "deleted",
        "changed",
        "created",
    ]
    assert client.get(url(dataset, "history"), {"annotation_id": "zzz"}).json()["results"] == []
    error_of(client.get(url(dataset, "history"), {"source": "nope"}), 400)
    error_of(client.get(url(dataset, "history"), {"since": "x"}), 400)


def test_a_curator_reverts_and_the_revert_is_recorded(dataset, item_id, bob, client_for):
    client = client_for(bob)
    latest = client.get(url(dataset, f"items/{item_id}/history")).json()["results"][0]
    response = client.post(url(dataset, f"history/{latest['id']}/revert"))
    assert response.status_code == 200, response.json()
    made = response.json()
    assert (made["action"], made["source"], made["user"], made["reverts"]) == (
        "changed",
        "revert",
        "bob",
        latest["id"],
    )
    assert Annotation.objects.get(annotation_id="a-1").label == "car"
    # The first change is no longer the latest: reverting it is a 409 that says why.
    oldest = client.get(url(dataset, f"items/{item_id}/history")).json()["results"][-1]
    error = error_of(client.post(url(dataset, f"history/{oldest['id']}/revert")), 409)
    assert "changed since" in error["message"]


def test_a_viewer_cannot_revert_and_a_stranger_sees_nothing(
    dataset, item_id, victor, charlie, client_for
):
    change = client_for(victor).get(url(dataset, "history")).json()["results"][0]
    error_of(client_for(victor).post(url(dataset, f"history/{change['id']}/revert")), 403)
    stranger = client_for(charlie)
    error_of(stranger.get(url(dataset, "history")), 404)
    error_of(stranger.get(url(dataset, f"items/{item_id}/history")), 404)
    error_of(stranger.post(url(dataset, f"history/{change['id']}/revert")), 404)
    assert Annotation.objects.get(annotation_id="a-1").label == "bus"


def test_a_change_of_another_dataset_is_not_found(dataset, item_id, alice, client_for):
    other = Dataset.objects.create(name="other", owner=alice)
    change = client_for(alice).get(url(dataset, "history")).json()["results"][0]
    error_of(client_for(alice).post(url(other, f"history/{change['id']}/revert")), 404)


def test_items_bulk_and_item_deletes_over_the_api_record_the_user(dataset, alice, bob, client_for):
    client = client_for(bob)
    rows = [{"reference_id": "x", "annotations": [box(id="x-1")]}, {"reference_id": "y"}]
    assert (
        client.post(url(dataset, "items/bulk"), {"items": rows}, format="json").status_code == 200
    )
    # A retried batch changes nothing, so records nothing.
    client.post(url(dataset, "items/bulk"), {"items": rows}, format="json")
    client.post(url(dataset, "items/delete"), {"reference_ids": ["x"]}, format="json")
    listed = client_for(alice).get(url(dataset, "history")).json()["results"]
    assert [(c["action"], c["annotation_id"], c["user"], c["source"]) for c in listed] == [
        ("deleted", "x-1", "bob", "api"),
        ("created", "x-1", "bob", "api"),
    ]
