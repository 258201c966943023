"""Slices: create from reference ids, append, remove, list items, rename, delete."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from curation import selectors
from curation.models import Dataset, Item, Slice, SliceItem
from tests.api_helpers import add_items, error_of, error_paths, url


@pytest.fixture
def refs(dataset: Dataset) -> list[str]:
    names = [f"r{i}" for i in range(5)]
    add_items(dataset, *({"reference_id": n} for n in names))
    return names


def slice_refs(slice_: Slice) -> list[str]:
    return sorted(slice_.items.values_list("reference_id", flat=True))


def test_it_creates_a_slice_from_reference_ids(dataset, refs, bob, client_for):
    response = client_for(bob).post(
        url(dataset, "slices"),
        {"name": "hard cases", "description": "night", "reference_ids": ["r1", "r3", "r1"]},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["name"], body["item_count"], body["created_by"]) == ("hard cases", 2, "bob")
    assert slice_refs(Slice.objects.get(pk=body["id"])) == ["r1", "r3"]


def test_unknown_reference_ids_refuse_the_create_listing_each(dataset, refs, bob, client_for):
    response = client_for(bob).post(
        url(dataset, "slices"),
        {"name": "s", "reference_ids": ["r1", "nope", "r2", "gone"]},
        format="json",
    )
    error = error_of(response, 400, "invalid")
    assert [f["path"] for f in error["fields"]] == ["reference_ids[1]", "reference_ids[3]"]
    assert "'nope'" in error["message"]
    assert not Slice.objects.exists()


def test_a_duplicate_name_is_a_409(dataset, refs, bob, client_for):
    Slice.objects.create(dataset=dataset, name="s")
    response = client_for(bob).post(url(dataset, "slices"), {"name": "s"}, format="json")
    assert [f["path"] for f in error_of(response, 409, "conflict")["fields"]] == ["name"]


def test_it_lists_and_retrieves_slices_with_item_counts(dataset, refs, victor, client_for):
    slice_ = Slice.objects.create(dataset=dataset, name="s")
    slice_.items.add(*Item.objects.filter(reference_id__in=["r0", "r4"]))
    client = client_for(victor)
    assert [
        (s["name"], s["item_count"]) for s in client.get(url(dataset, "slices")).json()["results"]
    ] == [("s", 2)]
    assert client.get(url(dataset, f"slices/{slice_.pk}")).json()["item_count"] == 2


def test_append_and_remove_by_reference_id(dataset, refs, bob, client_for):
    slice_ = Slice.objects.create(dataset=dataset, name="s")
    client = client_for(bob)
    response = client.post(
        url(dataset, f"slices/{slice_.pk}/append"), {"reference_ids": ["r0", "r1"]}, format="json"
    )
    assert (response.json()["changed"], response.json()["slice"]["name"]) == (2, "s")
    again = client.post(
        url(dataset, f"slices/{slice_.pk}/append"), {"reference_ids": ["r1", "r2"]}, format="json"
    )
    assert again.json()["changed"] == 1
    removed = client.post(
        url(dataset, f"slices/{slice_.pk}/remove"), {"reference_ids": ["r0", "r4"]}, format="json"
    )
    assert removed.json()["changed"] == 1
    assert slice_refs(slice_) == ["r1", "r2"]
    assert client.get(url(dataset, f"slices/{slice_.pk}")).json()["item_count"] == 2


def test_append_and_remove_count_nothing(dataset, refs, bob, client_for):
    # Pipelines append in many chunks: recounting a large slice after each one would cost
    # more than the append. The answer's count is null; the slice's detail has it.
    slice_ = Slice.objects.create(dataset=dataset, name="s")
    client = client_for(bob)
    for action in ("append", "remove"):
        with CaptureQueriesContext(connection) as queries:
            response = client.post(
                url(dataset, f"slices/{slice_.pk}/{action}"),
                {"reference_ids": ["r0"]},
                format="json",
            )
        assert response.status_code == 200
        assert response.json()["slice"]["item_count"] is None
        assert not [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]


def test_append_and_remove_refuse_a_dynamic_slice(dataset, refs, bob, client_for):
    client = client_for(bob)
    made = client.post(
        url(dataset, "slices/from-query"),
        {"name": "d", "query": 'reference_id = "r1"'},
        format="json",
    ).json()["slice"]
    for action in ("append", "remove"):
        response = client.post(
            url(dataset, f"slices/{made['id']}/{action}"), {"reference_ids": ["r0"]}, format="json"
        )
        assert "is dynamic" in error_of(response, 400, "invalid")["message"]
    assert not SliceItem.objects.exists()
    assert client.get(url(dataset, f"slices/{made['id']}")).json()["item_count"] == 1


def test_counts_past_the_exact_limit_are_estimates(dataset, refs, victor, client_for, monkeypatch):
    monkeypatch.setattr(selectors, "EXACT_COUNT_MAX", 3)
    slice_ = Slice.objects.create(dataset=dataset, name="s")
    slice_.items.add(*Item.objects.all())
    small = Slice.objects.create(dataset=dataset, name="t")
    small.items.add(*Item.objects.filter(reference_id="r0"))
    client = client_for(victor)
    detail = client.get(url(dataset, f"slices/{slice_.pk}")).json()
    assert detail["item_count"] >= 4 and detail["item_count_exact"] is False
    listed = client.get(url(dataset, "slices")).json()["results"]
    assert [(s["name"], s["item_count_exact"]) for s in listed] == [("s", False), ("t", True)]
    assert listed[1]["item_count"] == 1


def test_a_dynamic_slice_whose_query_broke_can_be_read_repaired_and_deleted(
    dataset, refs, bob, client_for
):
    client = client_for(bob)
    other = client.post(
        url(dataset, "slices"), {"name": "B", "reference_ids": ["r1"]}, format="json"
    )
    made = client.post(
        url(dataset, "slices/from-query"), {"name": "A", "query": 'slice = "B"'}, format="json"
    ).json()["slice"]
    assert made["item_count"] == 1
    # Renaming B leaves A's saved query naming a slice that no longer exists.
    client.patch(url(dataset, f"slices/{other.json()['id']}"), {"name": "B2"}, format="json")
    detail = client.get(url(dataset, f"slices/{made['id']}"))
    assert detail.status_code == 200
    assert detail.json()["item_count"] is None
    assert "No slice named 'B'" in detail.json()["query_error"]
    assert client.get(url(dataset, f"slices/{made['id']}/versions")).status_code == 200
    renamed = client.patch(url(dataset, f"slices/{made['id']}"), {"name": "A2"}, format="json")
    assert (renamed.status_code, renamed.json()["name"]) == (200, "A2")
    repaired = client.put(
        url(dataset, f"slices/{made['id']}/query"), {"query": 'slice = "B2"'}, format="json"
    )
    assert (repaired.status_code, repaired.json()["item_count"]) == (200, 1)
    client.patch(url(dataset, f"slices/{other.json()['id']}"), {"name": "B3"}, format="json")
    assert client.delete(url(dataset, f"slices/{made['id']}")).status_code == 204
    assert not Slice.objects.filter(pk=made["id"]).exists()


def test_append_and_remove_refuse_unknown_reference_ids(dataset, refs, bob, client_for):
    slice_ = Slice.objects.create(dataset=dataset, name="s")
    client = client_for(bob)
    for action in ("append", "remove"):
        response = client.post(
            url(dataset, f"slices/{slice_.pk}/{action}"),
            {"reference_ids": ["r0", "zzz"]},
            format="json",
        )
        assert error_paths(response) == ["reference_ids[1]"]
    assert slice_refs(slice_) == []


def test_it_lists_a_slices_items_with_a_cursor(dataset, refs, victor, client_for):
    slice_ = Slice.objects.create(dataset=dataset, name="s")
    slice_.items.add(*Item.objects.filter(reference_id__in=["r1", "r2", "r4"]))
    client = client_for(victor)
    first = client.get(url(dataset, f"slices/{slice_.pk}/items?limit=2")).json()
    assert [i["reference_id"] for i in first["results"]] == ["r1", "r2"]
    second = client.get(first["next"]).json()
    assert [i["reference_id"] for i in second["results"]] == ["r4"]


def test_it_renames_and_deletes_a_slice_keeping_its_items(dataset, refs, bob, client_for):
    slice_ = Slice.objects.create(dataset=dataset, name="s")
    slice_.items.add(*Item.objects.all())
    client = client_for(bob)
    response = client.patch(url(dataset, f"slices/{slice_.pk}"), {"name": "renamed"}, format="json")
    assert response.json()["name"] == "renamed"
    assert client.delete(url(dataset, f"slices/{slice_.pk}")).status_code == 204
    assert not Slice.objects.exists()
    assert Item.objects.count() == 5


def test_access_rules(dataset, refs, alice, victor, charlie, client_for):
    slice_ = Slice.objects.create(dataset=dataset, name="s")
    foreign = Slice.objects.create(dataset=Dataset.objects.create(name="x", owner=alice), name="f")
    viewer = client_for(victor)
    error_of(viewer.post(url(dataset, "slices"), {"name": "n"}, format="json"), 403)
    error_of(
        viewer.post(
            url(dataset, f"slices/{slice_.pk}/append"), {"reference_ids": ["r0"]}, format="json"
        ),
        403,
    )
    error_of(viewer.patch(url(dataset, f"slices/{slice_.pk}"), {"name": "n"}, format="json"), 403)
    error_of(viewer.delete(url(dataset, f"slices/{slice_.pk}")), 403)
    error_of(viewer.get(url(dataset, f"slices/{foreign.pk}")), 404)
    error_of(viewer.get(url(dataset, f"slices/{foreign.pk}/items")), 404)
    error_of(viewer.get(url(dataset, "slices/999999")), 404)
    error_of(client_for(charlie).get(url(dataset, "slices")), 404)
    error_of(client_for(charlie).get(url(dataset, f"slices/{slice_.pk}/items")), 404)
    error_of(client_for(None).get(url(dataset, "slices")), 401)
    assert slice_refs(slice_) == []
