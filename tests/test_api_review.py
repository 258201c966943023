"""The review API: queues, claiming, entries, decisions (idempotent), undo, stats and
reasons; who may do what (a viewer reads but cannot decide, a stranger sees nothing),
and 400s that name the field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from curation.models import Dataset
from tests.api_helpers import error_of, error_paths, url
from tests.ui_factories import outcome_world

Clients = Callable[[User | None], APIClient]


def make_queue(client: APIClient, dataset: Dataset, **extra: Any) -> dict[str, Any]:
    body = {
        "name": "check cars",
        "source": {"kind": "items", "reference_ids": ["a", "b", "c"], "with_annotations": True},
        **extra,
    }
    response = client.post(url(dataset, "review/queues"), body, format="json")
    assert response.status_code == 201, response.json()
    return dict(response.json())


@pytest.mark.django_db
def test_a_curator_makes_a_queue_claims_decides_and_undoes(
    dataset: Dataset, bob: User, client_for: Clients
) -> None:
    outcome_world(dataset)
    api = client_for(bob)
    queue = make_queue(api, dataset)
    assert (queue["entry_count"], queue["source_kind"], queue["created_by"]) == (3, "items", "bob")
    base = url(dataset, f"review/queues/{queue['id']}")
    claimed = api.post(f"{base}/claim", {"count": 2}, format="json").json()
    assert [e["reference_id"] for e in claimed] == ["a", "b"]
    assert all(e["status"] == "claimed" and e["claimed_by"] == "bob" for e in claimed)
    first = claimed[0]
    assert set(first["authors"]) == {str(pk) for pk in first["annotations"]}
    body = {"decision": "rejected", "reason": "wrong_label", "note": "a truck"}
    decided = api.post(f"{base}/entries/{first['id']}/decide", body, format="json")
    assert decided.status_code == 200
    assert decided.json()["status"] == "rejected" and decided.json()["reason"] == "wrong_label"
    assert {o["decision"] for o in decided.json()["objects"]} == {"rejected"}
    # The same decision again (a retry): 200, nothing changes.
    again = api.post(f"{base}/entries/{first['id']}/decide", body, format="json")
    assert again.status_code == 200 and again.json()["decided_at"] == decided.json()["decided_at"]
    other = api.post(
        f"{base}/entries/{first['id']}/decide", {"decision": "accepted"}, format="json"
    )
    error_of(other, 409, "conflict")
    listed = api.get(f"{base}/entries", {"status": "rejected"}).json()
    assert [e["id"] for e in listed["results"]] == [first["id"]]
    stats = api.get(f"{base}/stats").json()
    assert (stats["total"], stats["done"], stats["acceptance_rate"]) == (3, 1, 0.0)
    assert stats["reviewers"][0]["username"] == "bob"
    undone = api.post(f"{base}/undo")
    assert undone.status_code == 200 and undone.json()["status"] == "claimed"
    error_of(api.post(f"{base}/undo"), 409)
    assert api.get(f"{base}/stats").json()["done"] == 0


@pytest.mark.django_db
def test_per_object_decisions_over_the_api(
    dataset: Dataset, bob: User, client_for: Clients
) -> None:
    outcome_world(dataset)
    api = client_for(bob)
    queue = make_queue(api, dataset)
    base = url(dataset, f"review/queues/{queue['id']}")
    entry = api.get(f"{base}/entries").json()["results"][0]  # a: car and bus
    car, bus = entry["annotations"]
    response = api.post(
        f"{base}/entries/{entry['id']}/decide",
        {
            "decision": "corrected",
            "objects": [{"annotation": bus, "decision": "rejected", "reason": "not_an_object"}],
        },
        format="json",
    )
    assert response.status_code == 200, response.json()
    objects = {o["annotation"]: (o["decision"], o["reason"]) for o in response.json()["objects"]}
    assert objects == {car: ("corrected", None), bus: ("rejected", "not_an_object")}


@pytest.mark.django_db
def test_bad_input_is_a_400_naming_the_field(
    dataset: Dataset, bob: User, client_for: Clients
) -> None:
    outcome_world(dataset)
    api = client_for(bob)
    post = api.post
    queues = url(dataset, "review/queues")
    assert error_paths(post(queues, {"name": "x"}, format="json")) == ["source"]
    bad_kind = {"name": "x", "source": {"kind": "everything"}}
    assert error_paths(post(queues, bad_kind, format="json")) == ["source.kind"]
    unknown = {"name": "x", "source": {"kind": "items", "reference_ids": ["a", "zz"]}}
    assert error_paths(post(queues, unknown, format="json")) == ["source.reference_ids[1]"]
    rr = {
        "name": "x",
        "source": {"kind": "items", "reference_ids": ["a"]},
        "assignment": "round_robin",
        "assignees": ["charlie"],
    }
    assert error_paths(post(queues, rr, format="json")) == ["assignees[0]"]
    queue = make_queue(api, dataset)
    base = url(dataset, f"review/queues/{queue['id']}")
    entry = api.get(f"{base}/entries").json()["results"][0]
    decide = f"{base}/entries/{entry['id']}/decide"
    assert error_paths(post(decide, {"decision": "rejected"}, format="json")) == ["reason"]
    assert error_paths(post(decide, {"decision": "nah"}, format="json")) == ["decision"]
    with_object = {"decision": "accepted", "objects": [{"annotation": "x"}]}
    assert error_paths(post(decide, with_object, format="json")) == ["objects[0].annotation"]
    assert error_paths(post(f"{base}/claim", {"count": 0}, format="json")) == ["count"]
    assert error_paths(api.get(f"{base}/entries", {"status": "odd"})) == ["status"]
    assert error_paths(api.get(f"{base}/entries", {"limit": "many"})) == ["limit"]
    error_of(
        post(
            queues,
            {
                "name": "check cars",
                "source": queue["source_params"] | {"kind": "items", "reference_ids": ["a"]},
            },
            format="json",
        ),
        409,
    )


@pytest.mark.django_db
def test_a_viewer_reads_but_cannot_decide_and_a_stranger_sees_nothing(
    dataset: Dataset, bob: User, victor: User, charlie: User, client_for: Clients
) -> None:
    outcome_world(dataset)
    queue = make_queue(client_for(bob), dataset)
    base = url(dataset, f"review/queues/{queue['id']}")
    viewer = client_for(victor)
    entry = viewer.get(f"{base}/entries").json()["results"][0]
    assert viewer.get(f"{base}/stats").status_code == 200
    assert viewer.get(url(dataset, "review/reasons")).status_code == 200
    decide = f"{base}/entries/{entry['id']}/decide"
    error_of(viewer.post(decide, {"decision": "accepted"}, format="json"), 403)
    error_of(viewer.post(f"{base}/claim", {}, format="json"), 403)
    error_of(viewer.post(f"{base}/undo"), 403)
    error_of(viewer.post(url(dataset, "review/queues"), {"name": "v"}, format="json"), 403)
    error_of(viewer.delete(base), 403)
    stranger = client_for(charlie)
    for path in (url(dataset, "review/queues"), base, f"{base}/entries", f"{base}/stats"):
        error_of(stranger.get(path), 404)
    error_of(stranger.post(decide, {"decision": "accepted"}, format="json"), 404)
    # The entry is as it was.
    assert client_for(bob).get(f"{base}/entries/{entry['id']}").json()["status"] == "pending"


@pytest.mark.django_db
def test_queues_are_listed_renamed_reassigned_and_deleted(
    dataset: Dataset, alice: User, bob: User, client_for: Clients
) -> None:
    outcome_world(dataset)
    api = client_for(alice)
    queue = make_queue(api, dataset)
    base = url(dataset, f"review/queues/{queue['id']}")
    assert [q["name"] for q in api.get(url(dataset, "review/queues")).json()] == ["check cars"]
    changed = api.patch(
        base, {"name": "cars", "assignment": "round_robin", "assignees": ["bob"]}, format="json"
    )
    assert changed.status_code == 200, changed.json()
    assert (changed.json()["name"], changed.json()["assignees"]) == ("cars", ["bob"])
    # Alice is no assignee of a round-robin queue now.
    error_of(api.post(f"{base}/claim", {}, format="json"), 403)
    assert len(client_for(bob).post(f"{base}/claim", {"count": 5}, format="json").json()) == 3
    added = api.post(url(dataset, "review/reasons"), {"label": "Occluded"}, format="json")
    assert added.status_code == 201 and added.json()["key"] == "occluded"
    keys = [r["key"] for r in api.get(url(dataset, "review/reasons")).json()]
    assert keys[-1] == "occluded" and keys[0] == "wrong_label"
    assert api.delete(base).status_code == 204
    error_of(api.get(base), 404)
