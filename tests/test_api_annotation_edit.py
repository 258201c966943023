"""One annotation at a time: create on an item, PATCH and DELETE with the version read,
409 with the current annotation when it is stale, 400s naming the field, the bulk upsert
bumping the version only on a real change, and who may do what."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

import curation.api.annotations as views
from curation.annotations import AnnotationConflict, annotation_create, annotation_update
from curation.models import Annotation, Dataset, Item
from tests.api_helpers import add_items, box, error_of, error_paths, url


@pytest.fixture
def item(dataset: Dataset) -> Item:
    ids = add_items(dataset, {"reference_id": "a", "annotations": [box(id="a-1")]})
    Item.objects.filter(pk=ids["a"]).update(width=100, height=80)
    return Item.objects.get(pk=ids["a"])


@pytest.fixture
def stored(item: Item) -> Annotation:
    return Annotation.objects.get(annotation_id="a-1")


def one(dataset: Dataset, annotation: Annotation) -> str:
    return url(dataset, f"annotations/{annotation.pk}")


def patch(client: Any, dataset: Dataset, annotation: Annotation, body: dict[str, Any]) -> Any:
    return client.patch(one(dataset, annotation), body, format="json")


def test_it_creates_an_annotation_on_an_item(dataset, item, bob, client_for):
    response = client_for(bob).post(
        url(dataset, f"items/{item.pk}/annotations"),
        {"id": "new-1", **box(5, 5, 10, 10, label="bus")},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    stored = Annotation.objects.get(annotation_id="new-1")
    assert body["pk"] == stored.pk and body["version"] == 1
    assert (stored.item_id, stored.label, stored.geometry) == (
        item.pk,
        "bus",
        {"x": 5.0, "y": 5.0, "width": 10.0, "height": 10.0},
    )


def test_creating_the_same_annotation_again_returns_the_stored_one(dataset, item, bob, client_for):
    client = client_for(bob)
    path = url(dataset, f"items/{item.pk}/annotations")
    first = client.post(path, box(label="bus"), format="json")
    again = client.post(path, box(label="bus"), format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["pk"] == again.json()["pk"]
    assert Annotation.objects.filter(label="bus").count() == 1
    clash = client.post(path, {"id": first.json()["id"], **box(label="truck")}, format="json")
    assert error_paths(clash, 409) == ["id"]


def test_a_category_needs_no_geometry(dataset, item, bob, client_for):
    response = client_for(bob).post(
        url(dataset, f"items/{item.pk}/annotations"),
        {"kind": "category", "label": "night"},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["geometry"] == {}


def test_a_change_bumps_the_version_and_the_same_values_do_not(dataset, stored, bob, client_for):
    client = client_for(bob)
    response = patch(client, dataset, stored, {"version": 1, "label": "truck"})
    assert response.status_code == 200
    assert response.json()["version"] == 2 and response.json()["label"] == "truck"
    geometry = {"x": 1, "y": 2, "width": 3, "height": 4}
    moved = patch(client, dataset, stored, {"version": 2, "geometry": geometry}).json()
    assert moved["version"] == 3
    assert moved["geometry"] == {"x": 1.0, "y": 2.0, "width": 3.0, "height": 4.0}
    same = patch(client, dataset, stored, {"version": 3, "label": "truck", "geometry": geometry})
    assert same.json()["version"] == 3
    stored.refresh_from_db()
    assert (stored.version, stored.label) == (3, "truck")


def test_a_stale_save_is_a_409_with_the_current_annotation(dataset, stored, bob, alice, client_for):
    assert (
        patch(client_for(alice), dataset, stored, {"version": 1, "label": "bus"}).status_code == 200
    )
    # bob read version 1 too, before alice's change
    response = patch(client_for(bob), dataset, stored, {"version": 1, "label": "truck"})
    assert response.status_code == 409
    body = response.json()
    assert body["error"]["code"] == "version_conflict"
    assert [f["path"] for f in body["error"]["fields"]] == ["version"]
    assert body["current"]["label"] == "bus" and body["current"]["version"] == 2
    assert body["current"]["pk"] == stored.pk
    stored.refresh_from_db()
    assert stored.label == "bus"  # nothing written
    # overwriting: the version they answered with
    again = patch(client_for(bob), dataset, stored, {"version": 2, "label": "truck"})
    assert again.status_code == 200 and again.json()["version"] == 3


def test_a_stale_delete_is_a_409_and_a_current_one_deletes(dataset, stored, bob, client_for):
    client = client_for(bob)
    patch(client, dataset, stored, {"version": 1, "label": "bus"})
    stale = client.delete(one(dataset, stored) + "?version=1")
    assert stale.status_code == 409 and stale.json()["current"]["version"] == 2
    assert Annotation.objects.filter(pk=stored.pk).exists()
    assert client.delete(one(dataset, stored) + "?version=2").status_code == 204
    assert not Annotation.objects.filter(pk=stored.pk).exists()
    assert client.delete(one(dataset, stored) + "?version=2").status_code == 404


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"label": "bus"}, "version"),
        ({"version": 0, "label": "bus"}, "version"),
        ({"version": "one", "label": "bus"}, "version"),
        ({"version": 1, "label": ""}, "label"),
        ({"version": 1, "label": "x" * 300}, "label"),
        ({"version": 1, "geometry": {"x": 1, "y": 1, "width": -3, "height": 4}}, "geometry.width"),
        ({"version": 1, "geometry": {"x": 500, "y": 500, "width": 3, "height": 4}}, "geometry"),
        ({"version": 1, "geometry": {"x": 1, "y": 1, "width": 3}}, "geometry.height"),
        ({"version": 1, "metadata": [1, 2]}, "metadata"),
    ],
)
def test_a_bad_change_is_a_400_naming_the_field(dataset, stored, bob, client_for, body, path):
    response = patch(client_for(bob), dataset, stored, body)
    assert error_paths(response) == [path]
    stored.refresh_from_db()
    assert (stored.version, stored.label) == (1, "car")


def test_a_delete_without_a_version_is_a_400_naming_it(dataset, stored, bob, client_for):
    assert error_paths(client_for(bob).delete(one(dataset, stored))) == ["version"]


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"kind": "box", "geometry": {"x": 1, "y": 1, "width": 3, "height": 4}}, "label"),
        ({"kind": "circle", "label": "car"}, "kind"),
        (
            {"kind": "polygon", "label": "road", "geometry": {"vertices": [[0, 0]]}},
            "geometry.vertices",
        ),
        ({"kind": "box", "label": "car", "geometry": {"x": 1, "y": 1}}, "geometry.width"),
    ],
)
def test_a_bad_new_annotation_is_a_400_naming_the_field(dataset, item, bob, client_for, body, path):
    response = client_for(bob).post(
        url(dataset, f"items/{item.pk}/annotations"), body, format="json"
    )
    assert error_paths(response) == [path]
    assert Annotation.objects.count() == 1


def test_geometry_is_clipped_to_the_image_as_in_bulk(dataset, stored, bob, client_for):
    geometry = {"x": 90, "y": 70, "width": 30, "height": 30}
    answer = patch(client_for(bob), dataset, stored, {"version": 1, "geometry": geometry}).json()
    assert answer["geometry"] == {"x": 90.0, "y": 70.0, "width": 10.0, "height": 10.0}


def test_the_bulk_upsert_bumps_the_version_only_on_a_real_change(dataset, stored, bob, client_for):
    client = client_for(bob)

    def upload(**changes: Any) -> Any:
        row = {"reference_id": "a", "id": "a-1", **box(**changes)}
        return client.post(url(dataset, "annotations/bulk"), {"annotations": [row]}, format="json")

    upload()
    stored.refresh_from_db()
    assert stored.version == 1  # re-sending the same row changes nothing
    upload(label="truck")
    stored.refresh_from_db()
    assert (stored.version, stored.label) == (2, "truck")
    add_items(dataset, {"reference_id": "a", "annotations": [box(id="a-1", label="truck")]})
    stored.refresh_from_db()
    assert stored.version == 2
    add_items(dataset, {"reference_id": "a", "annotations": [box(id="a-1", label="van")]})
    stored.refresh_from_db()
    assert stored.version == 3
    # and a writer who read version 1 before those is refused
    assert patch(client, dataset, stored, {"version": 1, "label": "bus"}).status_code == 409


def test_the_item_lists_its_annotations_with_their_versions(dataset, stored, bob, client_for):
    client = client_for(bob)
    patch(client, dataset, stored, {"version": 1, "label": "bus"})
    listed = client.get(url(dataset, f"items/{stored.item_id}/annotations")).json()["results"]
    assert [(a["pk"], a["version"]) for a in listed] == [(stored.pk, 2)]
    assert client.get(one(dataset, stored)).json()["version"] == 2


def test_a_viewer_reads_but_cannot_write(dataset, stored, victor, client_for):
    client = client_for(victor)
    assert client.get(one(dataset, stored)).status_code == 200
    error_of(patch(client, dataset, stored, {"version": 1, "label": "bus"}), 403)
    error_of(client.delete(one(dataset, stored) + "?version=1"), 403)
    error_of(
        client.post(url(dataset, f"items/{stored.item_id}/annotations"), box(), format="json"),
        403,
    )
    stored.refresh_from_db()
    assert (stored.version, stored.label) == (1, "car")


def test_a_stranger_sees_nothing(dataset, stored, charlie, client_for):
    client = client_for(charlie)
    error_of(client.get(one(dataset, stored)), 404)
    error_of(patch(client, dataset, stored, {"version": 1, "label": "bus"}), 404)
    error_of(client.delete(one(dataset, stored) + "?version=1"), 404)
    error_of(
        client.post(url(dataset, f"items/{stored.item_id}/annotations"), box(), format="json"),
        404,
    )


def test_an_annotation_of_another_dataset_is_not_found(dataset, stored, alice, client_for):
    other = Dataset.objects.create(name="other", owner=alice)
    error_of(client_for(alice).get(one(other, stored)), 404)
    error_of(patch(client_for(alice), other, stored, {"version": 1, "label": "bus"}), 404)


def test_the_services_check_the_version_under_the_row_lock(stored: Annotation, bob: User) -> None:
    changed = annotation_update(
        annotation=stored, expected_version=1, label="bus", user=bob, source="editor"
    )
    assert changed.version == 2
    with pytest.raises(AnnotationConflict) as caught:
        # `stored` is the copy read before the change: its own version is still 1
        annotation_update(
            annotation=stored, expected_version=stored.version, label="x", user=bob, source="editor"
        )
    assert caught.value.current.label == "bus"


def test_the_services_refuse_an_unknown_source(item: Item, bob: User) -> None:
    with pytest.raises(ValueError, match="source"):
        annotation_create(item=item, label="car", geometry=box()["geometry"], user=bob, source="x")  # type: ignore[arg-type]


def test_the_editor_says_it_is_the_editor_and_tokens_are_the_api(
    dataset, stored, bob, client_for, monkeypatch
):
    seen: list[str] = []

    def recording(**kwargs: Any) -> Annotation:
        seen.append(kwargs["source"])
        return annotation_update(**kwargs)

    monkeypatch.setattr(views, "annotation_update", recording)
    browser = Client()
    browser.force_login(bob)
    header = {"HTTP_X_NUCLEUS_SOURCE": "editor"}
    body = {"version": 1, "label": "bus"}
    assert (
        browser.patch(one(dataset, stored), body, "application/json", **header).status_code == 200
    )
    token = client_for(bob)  # a token saying it is the editor is still the API
    assert (
        token.patch(
            one(dataset, stored), {"version": 2, "label": "van"}, format="json", **header
        ).status_code
        == 200
    )
    assert seen == ["editor", "api"]


def test_edits_are_in_the_history_with_their_source_and_a_revert_moves_the_version_on(
    dataset, item, stored, bob, client_for
):
    from curation.history.models import AnnotationChange
    from curation.history.services import annotation_change_revert

    client = client_for(bob)
    edited = patch(client, dataset, stored, {"label": "bus", "version": stored.version})
    assert edited.status_code == 200, edited.json()
    session = Client()
    session.force_login(bob)
    again = session.patch(
        one(dataset, stored),
        {"label": "truck", "version": edited.json()["version"]},
        content_type="application/json",
        headers={"X-Nucleus-Source": "editor"},
    )
    assert again.status_code == 200, again.json()
    made = list(
        AnnotationChange.objects.filter(annotation_pk=stored.pk, action="changed")
        .select_related("event__user")
        .order_by("id")
    )
    assert [(c.before["label"], c.event.source, c.event.user) for c in made] == [
        ("car", "api", bob),
        ("bus", "editor", bob),
    ]
    annotation_change_revert(change=made[-1], user=bob)
    reverted = Annotation.objects.get(pk=stored.pk)
    assert reverted.label == "bus" and reverted.version == again.json()["version"] + 1
    stale = patch(client, dataset, stored, {"label": "car", "version": again.json()["version"]})
    assert stale.status_code == 409
