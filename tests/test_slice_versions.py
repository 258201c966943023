"""Slice versions: freezing, immutability under later edits, diff, restore, paging."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import pytest

from curation import itemsets, slices, versions
from curation.bulk.write import items_upsert, shapes_upsert
from curation.export.jsonl import jsonl_chunks
from curation.export.sources import export_source
from curation.history import change_context
from curation.models import Annotation, Item, Slice, SliceItem, SliceVersion, SliceVersionItem
from curation.services import (
    annotations_delete,
    items_delete,
    slice_append,
    slice_create,
    slice_remove,
)
from curation.storage import MediaUrls
from tests.api_helpers import error_of, error_paths
from tests.slice_factories import box, write_items

pytestmark = pytest.mark.django_db

ROWS = [
    {"reference_id": "a", "metadata": {"weather": "rain"}, "annotations": [box("car"), box("bus")]},
    {"reference_id": "b", "metadata": {"weather": "sun"}, "annotations": [box("car")]},
    {"reference_id": "c", "metadata": {"weather": "fog"}, "annotations": []},
    {"reference_id": "d", "metadata": {"weather": "rain"}, "annotations": [box("truck")]},
]


@pytest.fixture
def ids(dataset: Any) -> dict[str, int]:
    return write_items(dataset, ROWS)


@pytest.fixture
def train(dataset: Any, alice: Any, ids: dict[str, int]) -> Slice:
    new, _ = slice_create(dataset=dataset, user=alice, name="train", reference_ids=["a", "b", "c"])
    return new


def export_lines(dataset: Any, slice: Slice, version: SliceVersion | None) -> list[dict[str, Any]]:
    """The JSONL export as objects, media URLs without their (time-dependent) signature."""
    source = export_source(dataset=dataset, slice=slice, version=version)
    body = b"".join(jsonl_chunks(source, urls=MediaUrls()))
    lines = [json.loads(line) for line in body.decode().splitlines()]
    for line in lines:
        if line["media_url"]:
            line["media_url"] = urlsplit(line["media_url"]).path
    return lines


def test_it_freezes_the_items_with_their_metadata_and_annotations(train: Slice, alice: Any) -> None:
    version = versions.slice_version_create(slice=train, user=alice, note="first cut")
    assert (version.number, version.item_count, version.annotation_count) == (1, 3, 3)
    assert version.note == "first cut" and version.created_by == alice
    frozen = {v.reference_id: v for v in SliceVersionItem.objects.filter(version=version)}
    assert set(frozen) == {"a", "b", "c"}
    assert frozen["a"].metadata == {"weather": "rain"}
    assert [(s["id"], s["label"]) for s in frozen["a"].annotations] == [
        ("a/0", "car"),
        ("a/1", "bus"),
    ]
    assert frozen["a"].annotations[0]["geometry"] == {"x": 10, "y": 20, "width": 30, "height": 40}
    assert frozen["c"].annotations == []
    assert (frozen["b"].width, frozen["b"].height) == (640, 480)


def test_version_numbers_count_up_per_slice(dataset: Any, alice: Any, train: Slice) -> None:
    other, _ = slice_create(dataset=dataset, user=alice, name="other")
    numbers = [versions.slice_version_create(slice=train, user=alice).number for _ in range(3)]
    assert numbers == [1, 2, 3]
    assert versions.slice_version_create(slice=other, user=alice).number == 1
    assert versions.slice_version_create(slice=other, user=alice).item_count == 0


def test_a_version_export_does_not_change_when_the_data_changes(
    dataset: Any, alice: Any, train: Slice, ids: dict[str, int]
) -> None:
    version = versions.slice_version_create(slice=train, user=alice)
    frozen_before = export_lines(dataset, train, version)
    live_before = export_lines(dataset, train, None)
    assert frozen_before == live_before  # same objects, same formatting, live or frozen

    # Edit annotations (move one, delete one, add one), metadata, and delete an item.
    shapes_upsert(
        dataset=dataset,
        rows=[
            {"id": "a/0", "reference_id": "a", **box("car", x=99)},
            {"id": "b/new", "reference_id": "b", **box("pedestrian")},
        ],
    )
    Annotation.objects.filter(dataset=dataset, annotation_id="a/1").delete()
    items_upsert(dataset=dataset, rows=[{"reference_id": "b", "metadata": {"weather": "snow"}}])
    items_delete(dataset=dataset, reference_ids=["c"])
    slice_append(slice=train, reference_ids=["d"])

    assert export_lines(dataset, train, version) == frozen_before
    live_after = export_lines(dataset, train, None)
    assert [line["reference_id"] for line in live_after] == ["a", "b", "d"]
    assert live_after != live_before


def test_it_diffs_two_versions_in_the_database(
    dataset: Any, alice: Any, train: Slice, ids: dict[str, int]
) -> None:
    v1 = versions.slice_version_create(slice=train, user=alice)
    slice_remove(slice=train, reference_ids=["c"])
    slice_append(slice=train, reference_ids=["d"])
    shapes_upsert(dataset=dataset, rows=[{"id": "a/0", "reference_id": "a", **box("car", x=50)}])
    items_upsert(dataset=dataset, rows=[{"reference_id": "b", "metadata": {"weather": "snow"}}])
    v2 = versions.slice_version_create(slice=train, user=alice)

    diff = versions.slice_versions_diff(old=v1, new=v2)
    assert diff["counts"] == {"added": 1, "removed": 1, "changed": 2}
    assert diff["added"] == [{"item_id": ids["d"], "reference_id": "d"}]
    assert diff["removed"] == [{"item_id": ids["c"], "reference_id": "c"}]
    changed = {e["reference_id"]: e for e in diff["changed"]}
    assert changed["a"]["annotations_changed"] and not changed["a"]["metadata_changed"]
    assert changed["b"]["metadata_changed"] and not changed["b"]["annotations_changed"]
    assert not diff["truncated"]

    backwards = versions.slice_versions_diff(old=v2, new=v1, limit=1)
    assert backwards["counts"] == {"added": 1, "removed": 1, "changed": 2}
    assert [e["reference_id"] for e in backwards["added"]] == ["c"]
    assert len(backwards["changed"]) == 1 and backwards["truncated"]


def test_identical_rewrites_are_not_changes(dataset: Any, alice: Any, train: Slice) -> None:
    v1 = versions.slice_version_create(slice=train, user=alice)
    # Delete and re-create the same annotations: new row ids, same content.
    Annotation.objects.filter(dataset=dataset, item__reference_id="a").delete()
    write_items(dataset, [ROWS[0]])
    v2 = versions.slice_version_create(slice=train, user=alice)
    assert versions.slice_versions_diff(old=v1, new=v2)["counts"] == {
        "added": 0,
        "removed": 0,
        "changed": 0,
    }


def test_restore_makes_the_versions_items_current(
    dataset: Any, alice: Any, train: Slice, ids: dict[str, int]
) -> None:
    v1 = versions.slice_version_create(slice=train, user=alice)
    slice_remove(slice=train, reference_ids=["a"])
    slice_append(slice=train, reference_ids=["d"])
    items_delete(dataset=dataset, reference_ids=["c"])

    result = versions.slice_version_restore(slice=train, version=v1)
    assert result == {"added": 1, "removed": 1, "missing": 1, "item_count": 2}
    members = set(
        SliceItem.objects.filter(slice=train).values_list("item__reference_id", flat=True)
    )
    assert members == {"a", "b"}
    # Restoring again changes nothing.
    assert versions.slice_version_restore(slice=train, version=v1)["added"] == 0


def test_freezing_a_dynamic_slice_keeps_its_matches_of_that_moment(
    dataset: Any, alice: Any, ids: dict[str, int]
) -> None:
    rainy, _ = slices.slice_create_from_query(
        dataset=dataset, user=alice, name="rainy", query='metadata.weather = "rain"'
    )
    version = versions.slice_version_create(slice=rainy, user=alice)
    assert version.query == 'metadata.weather = "rain"'
    items_upsert(dataset=dataset, rows=[{"reference_id": "b", "metadata": {"weather": "rain"}}])
    assert itemsets.slice_item_count(rainy) == 3
    frozen = set(
        SliceVersionItem.objects.filter(version=version).values_list("reference_id", flat=True)
    )
    assert frozen == {"a", "d"}

    versions.slice_version_restore(slice=rainy, version=version)
    rainy.refresh_from_db()
    assert not rainy.is_dynamic and rainy.query == ""
    assert set(itemsets.slice_items(rainy).values_list("reference_id", flat=True)) == {"a", "d"}


def test_deleting_a_slice_deletes_its_versions(alice: Any, train: Slice) -> None:
    versions.slice_version_create(slice=train, user=alice)
    train.delete()
    assert not SliceVersion.objects.exists() and not SliceVersionItem.objects.exists()


# ------------------------------------------------------------------------------------ API


def vurl(dataset: Any, slice: Slice, tail: str = "") -> str:
    return f"/api/v1/datasets/{dataset.pk}/slices/{slice.pk}/versions" + tail


def test_api_freezes_lists_gets_and_restores(
    client_for: Any, dataset: Any, bob: Any, train: Slice
) -> None:
    client = client_for(bob)
    created = client.post(vurl(dataset, train), {"note": "v1"}, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["number"] == 1 and body["item_count"] == 3 and body["created_by"] == "bob"
    assert body["slice"] == train.pk and body["annotation_count"] == 3

    client.post(
        f"/api/v1/datasets/{dataset.pk}/slices/{train.pk}/remove",
        {"reference_ids": ["a"]},
        format="json",
    )
    assert client.post(vurl(dataset, train), {}, format="json").json()["item_count"] == 2

    listed = client.get(vurl(dataset, train)).json()["results"]
    assert [v["number"] for v in listed] == [1, 2]
    assert client.get(vurl(dataset, train, "/2")).json()["item_count"] == 2
    error_of(client.get(vurl(dataset, train, "/3")), 404, "not_found")

    diff = client.get(vurl(dataset, train, "/diff?from=1&to=2")).json()
    assert diff["counts"] == {"added": 0, "removed": 1, "changed": 0}
    assert diff["removed"][0]["reference_id"] == "a"
    assert error_paths(client.get(vurl(dataset, train, "/diff?from=1"))) == ["to"]
    assert error_paths(client.get(vurl(dataset, train, "/diff?from=x&to=2"))) == ["from"]

    restored = client.post(vurl(dataset, train, "/1/restore"))
    assert restored.status_code == 200, restored.json()
    assert restored.json()["added"] == 1 and restored.json()["slice"]["item_count"] == 3


def test_api_pages_through_a_version_exactly(
    client_for: Any, dataset: Any, alice: Any, victor: Any, ids: dict[str, int]
) -> None:
    everything, _ = slice_create(dataset=dataset, user=alice, name="all", reference_ids=list(ids))
    version = versions.slice_version_create(slice=everything, user=alice)
    items_delete(dataset=dataset, reference_ids=["b"])  # a version still lists it

    client = client_for(victor)
    url = vurl(dataset, everything, f"/{version.number}/items?limit=3")
    seen = []
    pages = 0
    while url:
        page = client.get(url)
        assert page.status_code == 200, page.json()
        body = page.json()
        seen += [r["reference_id"] for r in body["results"]]
        url = body["next"]
        pages += 1
    assert seen == ["a", "b", "c", "d"] and pages == 2
    first = client.get(vurl(dataset, everything, "/1/items?limit=1")).json()["results"][0]
    assert first["annotations"][1]["label"] == "bus" and first["metadata"] == {"weather": "rain"}
    assert first["media_url"].split("?")[0].endswith(f"/media/items/{ids['a']}/original")
    assert error_paths(client.get(vurl(dataset, everything, "/1/items?cursor=zzz"))) == ["cursor"]
    assert error_paths(client.get(vurl(dataset, everything, "/1/items?limit=0"))) == ["limit"]


def test_api_viewer_reads_versions_but_cannot_freeze_or_restore(
    client_for: Any, dataset: Any, alice: Any, victor: Any, charlie: Any, train: Slice
) -> None:
    versions.slice_version_create(slice=train, user=alice)
    viewer = client_for(victor)
    assert viewer.get(vurl(dataset, train)).status_code == 200
    assert viewer.get(vurl(dataset, train, "/1")).status_code == 200
    assert viewer.get(vurl(dataset, train, "/1/items")).status_code == 200
    assert viewer.get(vurl(dataset, train, "/diff?from=1&to=1")).status_code == 200
    error_of(viewer.post(vurl(dataset, train), {}, format="json"), 403, "permission_denied")
    error_of(viewer.post(vurl(dataset, train, "/1/restore")), 403, "permission_denied")

    stranger = client_for(charlie)
    for response in (
        stranger.get(vurl(dataset, train)),
        stranger.get(vurl(dataset, train, "/1")),
        stranger.get(vurl(dataset, train, "/1/items")),
        stranger.post(vurl(dataset, train), {}, format="json"),
        stranger.post(vurl(dataset, train, "/1/restore")),
    ):
        error_of(response, 404, "not_found")
    assert SliceVersion.objects.count() == 1
    assert Item.objects.count() == 4


def test_a_diff_lists_each_annotation_correction_with_who_made_it(
    dataset: Any, alice: Any, bob: Any, train: Slice
) -> None:
    v1 = versions.slice_version_create(slice=train, user=alice)
    with change_context(user=bob, source="api"):
        shapes_upsert(
            dataset=dataset,
            rows=[
                {"id": "a/0", "reference_id": "a", **box("truck")},
                {"id": "b/new", "reference_id": "b", **box("bus")},
            ],
        )
        annotations_delete(dataset=dataset, annotation_ids=["b/0"])
    v2 = versions.slice_version_create(slice=train, user=alice)
    # After the second version: not between the two, so not listed.
    shapes_upsert(dataset=dataset, rows=[{"id": "a/0", "reference_id": "a", **box("van")}])

    changed = {
        e["reference_id"]: e for e in versions.slice_versions_diff(old=v1, new=v2)["changed"]
    }
    a = changed["a"]["annotations"]
    assert [(c["annotation_id"], c["change"], c["fields"]) for c in a] == [
        ("a/0", "changed", ["label"])
    ]
    assert (a[0]["before"]["label"], a[0]["after"]["label"]) == ("car", "truck")
    assert [(by["user"], by["source"], by["action"]) for by in a[0]["by"]] == [
        ("bob", "api", "changed")
    ]
    b = {c["annotation_id"]: c for c in changed["b"]["annotations"]}
    assert {k: (c["change"], [by["user"] for by in c["by"]]) for k, c in b.items()} == {
        "b/0": ("removed", ["bob"]),
        "b/new": ("added", ["bob"]),
    }
