"""Annotations: idempotent all-or-nothing bulk upload, listing per item, deleting by id."""

from __future__ import annotations

import pytest

from curation.models import Annotation, Dataset, Item
from tests.api_helpers import add_items, box, error_of, error_paths, url


@pytest.fixture
def items(dataset: Dataset) -> dict[str, int]:
    ids = add_items(dataset, {"reference_id": "a"}, {"reference_id": "b"})
    # A known image size, so geometry is checked against it.
    Item.objects.filter(reference_id="a").update(width=100, height=80)
    return ids


def upload(client, dataset, rows):
    return client.post(url(dataset, "annotations/bulk"), {"annotations": rows}, format="json")


def test_it_uploads_annotations_by_reference_id(dataset, items, bob, client_for):
    rows = [
        {"reference_id": "a", "id": "a-1", **box()},
        {
            "reference_id": "a",
            "kind": "polygon",
            "label": "road",
            "geometry": {"vertices": [[0, 0], [10, 0], [10, 10]]},
            "metadata": {"occluded": True},
        },
        {"reference_id": "b", "kind": "category", "label": "night", "geometry": {}},
    ]
    response = upload(client_for(bob), dataset, rows)
    assert response.status_code == 200
    assert response.json() == {"received": 3, "written": 3}
    assert sorted(Annotation.objects.values_list("item__reference_id", "label")) == [
        ("a", "car"),
        ("a", "road"),
        ("b", "night"),
    ]


def test_a_reupload_is_idempotent_and_an_id_updates_in_place(dataset, items, bob, client_for):
    client = client_for(bob)
    rows = [{"reference_id": "a", "id": "a-1", **box()}, {"reference_id": "b", **box(label="bus")}]
    upload(client, dataset, rows)
    again = upload(client, dataset, rows).json()
    assert again == {"received": 2, "written": 0}
    assert Annotation.objects.count() == 2
    rows[0]["label"] = "truck"
    assert upload(client, dataset, rows).json()["written"] == 1
    assert Annotation.objects.get(annotation_id="a-1").label == "truck"
    assert Annotation.objects.count() == 2


def test_boxes_are_clipped_to_the_image(dataset, items, bob, client_for):
    upload(
        client_for(bob),
        dataset,
        [{"reference_id": "a", "id": "clip", **box(x=90, y=70, w=50, h=50)}],
    )
    assert Annotation.objects.get().geometry == {"x": 90, "y": 70, "width": 10, "height": 10}


def test_bad_rows_refuse_the_batch_with_index_and_field_path(dataset, items, bob, client_for):
    rows = [
        {"reference_id": "a", **box()},
        {"reference_id": "a", **box(w=0)},
        {"reference_id": "nope", **box()},
        {
            "reference_id": "a",
            "kind": "polygon",
            "label": "x",
            "geometry": {"vertices": [[0, 0], [1, 1]]},
        },
        {"reference_id": "a", "kind": "hexagon", "label": "x"},
        {"reference_id": "a", **box(x=500, y=500)},
        {"reference_id": "b", "kind": "box", "label": "", "geometry": {}},
    ]
    response = upload(client_for(bob), dataset, rows)
    assert error_paths(response) == [
        "annotations[1].geometry.width",
        "annotations[2].reference_id",
        "annotations[3].geometry.vertices",
        "annotations[4].kind",
        "annotations[5].geometry",
        "annotations[6].label",
    ]
    assert not Annotation.objects.exists()


def test_a_malformed_body_is_a_400(dataset, items, bob, client_for):
    client = client_for(bob)
    assert error_paths(client.post(url(dataset, "annotations/bulk"), {}, format="json")) == [
        "annotations"
    ]
    assert error_paths(upload(client, dataset, ["x"])) == ["annotations[0].reference_id"]
    response = upload(client, dataset, [{"reference_id": ["a"], **box()}])
    assert error_paths(response) == ["annotations[0].reference_id"]


def test_a_viewer_cannot_upload_and_no_role_is_404(dataset, items, victor, charlie, client_for):
    rows = [{"reference_id": "a", **box()}]
    error_of(upload(client_for(victor), dataset, rows), 403)
    error_of(upload(client_for(charlie), dataset, rows), 404)
    error_of(upload(client_for(None), dataset, rows), 401)
    assert not Annotation.objects.exists()


def test_it_lists_an_items_annotations(dataset, items, victor, charlie, client_for):
    add_items(dataset, {"reference_id": "a", "annotations": [box(id="one"), box(id="two", x=30)]})
    results = (
        client_for(victor).get(url(dataset, f"items/{items['a']}/annotations")).json()["results"]
    )
    assert [(a["id"], a["reference_id"], a["kind"]) for a in results] == [
        ("one", "a", "box"),
        ("two", "a", "box"),
    ]
    error_of(client_for(charlie).get(url(dataset, f"items/{items['a']}/annotations")), 404)
    error_of(client_for(victor).get(url(dataset, "items/999999/annotations")), 404)


def test_it_deletes_annotations_by_id(dataset, items, bob, victor, client_for):
    add_items(dataset, {"reference_id": "a", "annotations": [box(id="one"), box(id="two", x=30)]})
    error_of(
        client_for(victor).post(
            url(dataset, "annotations/delete"), {"ids": ["one"]}, format="json"
        ),
        403,
    )
    body = client_for(bob).post(
        url(dataset, "annotations/delete"), {"ids": ["one", "zzz"]}, format="json"
    )
    assert body.json() == {"deleted": 1, "missing": ["zzz"]}
    assert list(Annotation.objects.values_list("annotation_id", flat=True)) == ["two"]
