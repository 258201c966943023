"""Tags: list with counts, add to and remove from items by reference id, delete."""

from __future__ import annotations

import pytest

from curation.models import Dataset, ItemTag, Tag
from tests.api_helpers import add_items, error_of, error_paths, url


@pytest.fixture
def refs(dataset: Dataset) -> list[str]:
    add_items(dataset, {"reference_id": "a"}, {"reference_id": "b"}, {"reference_id": "c"})
    return ["a", "b", "c"]


def tagged(name: str) -> list[str]:
    return sorted(
        ItemTag.objects.filter(tag__name=name).values_list("item__reference_id", flat=True)
    )


def test_it_adds_a_tag_creating_it_and_lists_counts(dataset, refs, bob, victor, client_for):
    client = client_for(bob)
    response = client.post(
        url(dataset, "tags/add"), {"name": "night", "reference_ids": ["a", "b"]}, format="json"
    )
    assert response.status_code == 200
    assert (response.json()["changed"], response.json()["tag"]["item_count"]) == (2, 2)
    again = client.post(
        url(dataset, "tags/add"), {"name": "night", "reference_ids": ["b", "c"]}, format="json"
    )
    assert (again.json()["changed"], again.json()["tag"]["item_count"]) == (1, 3)
    client.post(url(dataset, "tags/add"), {"name": "blurry", "reference_ids": ["a"]}, format="json")
    listed = client_for(victor).get(url(dataset, "tags")).json()["results"]
    assert [(t["name"], t["item_count"]) for t in listed] == [("blurry", 1), ("night", 3)]


def test_it_removes_a_tag_from_items(dataset, refs, bob, client_for):
    client = client_for(bob)
    client.post(url(dataset, "tags/add"), {"name": "night", "reference_ids": refs}, format="json")
    response = client.post(
        url(dataset, "tags/remove"), {"name": "night", "reference_ids": ["a", "c"]}, format="json"
    )
    assert (response.json()["changed"], response.json()["tag"]["item_count"]) == (2, 1)
    assert tagged("night") == ["b"]


def test_it_deletes_a_tag(dataset, refs, bob, client_for):
    client = client_for(bob)
    tag_id = client.post(
        url(dataset, "tags/add"), {"name": "night", "reference_ids": refs}, format="json"
    ).json()["tag"]["id"]
    assert client.delete(url(dataset, f"tags/{tag_id}")).status_code == 204
    assert not Tag.objects.exists()
    assert not ItemTag.objects.exists()


def test_bad_input_names_the_field(dataset, refs, bob, client_for):
    client = client_for(bob)
    response = client.post(
        url(dataset, "tags/add"), {"name": "n", "reference_ids": ["a", "nope"]}, format="json"
    )
    assert error_paths(response) == ["reference_ids[1]"]
    assert not Tag.objects.exists()
    assert error_paths(
        client.post(url(dataset, "tags/add"), {"name": " ", "reference_ids": ["a"]}, format="json")
    ) == ["name"]
    response = client.post(
        url(dataset, "tags/remove"), {"name": "never", "reference_ids": ["a"]}, format="json"
    )
    assert error_paths(response) == ["name"]
    assert error_paths(client.post(url(dataset, "tags/add"), {"name": "n"}, format="json")) == [
        "reference_ids"
    ]


def test_access_rules(dataset, refs, alice, victor, charlie, client_for):
    tag = Tag.objects.create(dataset=dataset, name="t")
    foreign = Tag.objects.create(dataset=Dataset.objects.create(name="x", owner=alice), name="f")
    viewer = client_for(victor)
    error_of(
        viewer.post(url(dataset, "tags/add"), {"name": "t", "reference_ids": ["a"]}, format="json"),
        403,
    )
    error_of(
        viewer.post(
            url(dataset, "tags/remove"), {"name": "t", "reference_ids": ["a"]}, format="json"
        ),
        403,
    )
    error_of(viewer.delete(url(dataset, f"tags/{tag.pk}")), 403)
    error_of(client_for(alice).delete(url(dataset, f"tags/{foreign.pk}")), 404)
    error_of(client_for(charlie).get(url(dataset, "tags")), 404)
    error_of(client_for(None).get(url(dataset, "tags")), 401)
    assert Tag.objects.count() == 2
    assert tagged("t") == []
