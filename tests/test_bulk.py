"""Bulk upserts of items, annotations and predictions (curation.bulk)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from unittest.mock import patch

import pytest
from django.db import connection

from curation.bulk.validate import Media, clean_item_record, derived_id
from curation.bulk.write import items_upsert, records_write, shapes_upsert
from curation.errors import InvalidInput
from curation.models import Annotation, Dataset, Item, Model, Prediction

pytestmark = pytest.mark.django_db


def box(x: float = 1.0, y: float = 2.0, w: float = 3.0, h: float = 4.0) -> dict[str, float]:
    return {"x": x, "y": y, "width": w, "height": h}


def rows(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [
        {
            "reference_id": f"img-{i}",
            "metadata": {"i": i, "weather": "rain" if i % 2 else "clear"},
            "annotations": [{"id": f"a-{i}", "kind": "box", "label": "car", "geometry": box()}],
            **extra,
        }
        for i in range(n)
    ]


def media(i: int, width: int = 100, height: int = 80) -> Media:
    return Media(
        media_key=f"k{i}",
        thumbnail_key=f"t{i}",
        source_uri=f"/src/{i}.jpg",
        width=width,
        height=height,
        sha256=f"{i:064x}",
        byte_size=1000 + i,
    )


def test_it_creates_items_with_annotations(dataset: Dataset) -> None:
    result = items_upsert(dataset=dataset, rows=rows(3))
    assert (result.items_created, result.items_updated, result.items_unchanged) == (3, 0, 0)
    assert result.annotations_written == 3
    item = Item.objects.get(dataset=dataset, reference_id="img-1")
    assert item.metadata == {"i": 1, "weather": "rain"}
    assert item.annotations.get().geometry == box()


def test_a_rerun_changes_nothing(dataset: Dataset) -> None:
    items_upsert(dataset=dataset, rows=rows(4))
    before = {i.pk: i.updated for i in Item.objects.filter(dataset=dataset)}
    ann_before = {a.pk: a.updated for a in Annotation.objects.filter(dataset=dataset)}

    result = items_upsert(dataset=dataset, rows=rows(4))

    assert (result.items_created, result.items_updated, result.items_unchanged) == (0, 0, 4)
    assert result.annotations_written == 0
    assert {i.pk: i.updated for i in Item.objects.filter(dataset=dataset)} == before
    assert {a.pk: a.updated for a in Annotation.objects.filter(dataset=dataset)} == ann_before


def test_an_update_replaces_given_fields_and_keeps_the_rest(dataset: Dataset) -> None:
    records_write(
        dataset=dataset,
        records=[clean_item_record({"reference_id": "x", "metadata": {"a": 1}}, media=media(1))],
    )
    result = items_upsert(dataset=dataset, rows=[{"reference_id": "x", "metadata": {"a": 2}}])
    assert (result.items_created, result.items_updated) == (0, 1)
    item = Item.objects.get(dataset=dataset, reference_id="x")
    assert item.metadata == {"a": 2}
    assert (item.media_key, item.width, item.sha256) == ("k1", 100, f"{1:064x}")

    items_upsert(dataset=dataset, rows=[{"reference_id": "x"}])  # no metadata: kept
    item.refresh_from_db()
    assert item.metadata == {"a": 2}


def test_annotations_upsert_by_client_id(dataset: Dataset) -> None:
    items_upsert(dataset=dataset, rows=rows(2))
    moved = rows(2)
    moved[1]["annotations"][0]["label"] = "truck"
    result = items_upsert(dataset=dataset, rows=moved)
    assert result.annotations_written == 1
    assert Annotation.objects.get(dataset=dataset, annotation_id="a-1").label == "truck"
    assert Annotation.objects.filter(dataset=dataset).count() == 2


def test_new_items_whose_annotation_ids_exist_fall_back_to_the_upsert(dataset: Dataset) -> None:
    items_upsert(dataset=dataset, rows=rows(1))  # annotation a-0 on img-0
    result = items_upsert(
        dataset=dataset,
        rows=[
            {
                "reference_id": "new",
                "annotations": [{"id": "a-0", "label": "bus", "geometry": box()}],
            }
        ],
    )
    assert result.items_created == 1
    ann = Annotation.objects.get(dataset=dataset, annotation_id="a-0")
    assert (ann.item.reference_id, ann.label) == ("new", "bus")
    assert Annotation.objects.filter(dataset=dataset).count() == 1


def test_annotations_without_ids_get_stable_ids(dataset: Dataset) -> None:
    data = [{"reference_id": "x", "annotations": [{"label": "car", "geometry": box()}]}]
    items_upsert(dataset=dataset, rows=data)
    items_upsert(dataset=dataset, rows=data)
    assert Annotation.objects.filter(dataset=dataset).count() == 1
    assert Annotation.objects.get(dataset=dataset).annotation_id.startswith("auto:")


def test_the_same_id_twice_in_a_batch_keeps_the_last(dataset: Dataset) -> None:
    items_upsert(dataset=dataset, rows=[{"reference_id": "x"}])
    shapes_upsert(
        dataset=dataset,
        rows=[
            {"reference_id": "x", "id": "a", "label": "car", "geometry": box()},
            {"reference_id": "x", "id": "a", "label": "bus", "geometry": box()},
        ],
    )
    assert Annotation.objects.get(dataset=dataset, annotation_id="a").label == "bus"


def test_an_invalid_row_rejects_the_whole_batch_naming_it(dataset: Dataset) -> None:
    data = rows(3)
    data[2]["annotations"][0]["geometry"]["width"] = -1
    with pytest.raises(InvalidInput) as exc:
        items_upsert(dataset=dataset, rows=data)
    assert exc.value.fields == [
        {"path": "items[2].annotations[0].geometry.width", "message": "must be > 0"}
    ]
    assert not Item.objects.filter(dataset=dataset).exists()


@pytest.mark.parametrize(
    ("row", "path"),
    [
        ({"metadata": {}}, "items[0].reference_id"),
        ({"reference_id": ""}, "items[0].reference_id"),
        ({"reference_id": "x", "metadata": []}, "items[0].metadata"),
        ({"reference_id": "x", "metadata": {"k": "a\x00b"}}, "items[0].metadata"),
        ({"reference_id": "x", "metadata": {"k": float("nan")}}, "items[0].metadata"),
        ({"reference_id": "x", "annotations": {}}, "items[0].annotations"),
        (
            {"reference_id": "x", "annotations": [{"kind": "blob", "label": "a"}]},
            "items[0].annotations[0].kind",
        ),
        (
            {"reference_id": "x", "annotations": [{"label": "", "geometry": box()}]},
            "items[0].annotations[0].label",
        ),
        (
            {"reference_id": "x", "annotations": [{"label": "a", "geometry": {"x": "1"}}]},
            "items[0].annotations[0].geometry.x",
        ),
        (
            {
                "reference_id": "x",
                "annotations": [
                    {"kind": "polygon", "label": "a", "geometry": {"vertices": [[0, 0], [1, 1]]}}
                ],
            },
            "items[0].annotations[0].geometry.vertices",
        ),
        (
            {
                "reference_id": "x",
                "predictions": [{"label": "a", "confidence": 0.5, "geometry": box()}],
            },
            "items[0].predictions[0].model",
        ),
        (
            {
                "reference_id": "x",
                "predictions": [{"model": "m", "label": "a", "confidence": 1.5, "geometry": box()}],
            },
            "items[0].predictions[0].confidence",
        ),
        ({"reference_id": "x", "media": {"media_key": "datasets/9/media/x.jpg"}}, "items[0].media"),
    ],
)
def test_bad_rows_name_the_field(dataset: Dataset, row: dict[str, Any], path: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        items_upsert(dataset=dataset, rows=[row])
    assert [f["path"] for f in exc.value.fields] == [path]


def test_duplicate_reference_ids_in_a_batch_are_an_error(dataset: Dataset) -> None:
    with pytest.raises(InvalidInput) as exc:
        items_upsert(dataset=dataset, rows=[{"reference_id": "x"}, {"reference_id": "x"}])
    assert exc.value.fields[0]["path"] == "items[1].reference_id"


def test_boxes_are_checked_against_the_stored_image_size(dataset: Dataset) -> None:
    records_write(
        dataset=dataset, records=[clean_item_record({"reference_id": "x"}, media=media(1, 100, 80))]
    )
    shapes_upsert(
        dataset=dataset,
        rows=[{"reference_id": "x", "id": "clip", "label": "car", "geometry": box(90, 70, 20, 20)}],
    )
    assert Annotation.objects.get(annotation_id="clip").geometry == box(90, 70, 10, 10)
    with pytest.raises(InvalidInput) as exc:
        shapes_upsert(
            dataset=dataset,
            rows=[{"reference_id": "x", "label": "car", "geometry": box(200, 10, 5, 5)}],
        )
    assert exc.value.fields[0]["path"] == "annotations[0].geometry"


def test_shapes_for_unknown_items_are_rejected(dataset: Dataset) -> None:
    with pytest.raises(InvalidInput) as exc:
        shapes_upsert(
            dataset=dataset, rows=[{"reference_id": "nope", "label": "car", "geometry": box()}]
        )
    assert exc.value.fields == [
        {"path": "annotations[0].reference_id", "message": "no item 'nope' in this dataset"}
    ]


def test_predictions_create_their_model_and_upsert(dataset: Dataset) -> None:
    data = [
        {
            "reference_id": "x",
            "predictions": [
                {"model": "det", "id": "p1", "label": "car", "confidence": 0.9, "geometry": box()}
            ],
        }
    ]
    items_upsert(dataset=dataset, rows=data)
    items_upsert(dataset=dataset, rows=data)
    model = Model.objects.get(dataset=dataset, name="det")
    assert Prediction.objects.filter(model=model).count() == 1

    model2 = Model.objects.create(dataset=dataset, name="other")
    written = shapes_upsert(
        dataset=dataset,
        model=model2,
        rows=[{"reference_id": "x", "label": "bus", "confidence": 0.2, "geometry": box()}],
    )
    assert written == 1
    assert Prediction.objects.get(model=model2).confidence == 0.2


def test_datasets_do_not_share_reference_ids(dataset: Dataset, alice: Any) -> None:
    other = Dataset.objects.create(owner=alice, name="other")
    items_upsert(dataset=dataset, rows=rows(2))
    result = items_upsert(dataset=other, rows=rows(2))
    assert result.items_created == 2
    assert Annotation.objects.filter(dataset=other).count() == 2


def test_new_items_get_ids_in_the_order_they_were_sent(dataset: Dataset) -> None:
    # Written in key order (for locking), numbered in the order sent: frames stay in order.
    items_upsert(dataset=dataset, rows=[{"reference_id": r} for r in ["c", "a", "b"]])
    # A mixed batch takes the upsert path: the new ones still follow the sent order.
    items_upsert(dataset=dataset, rows=[{"reference_id": r} for r in ["z", "a", "y", "x"]])
    by_id = (
        Item.objects.filter(dataset=dataset).order_by("id").values_list("reference_id", flat=True)
    )
    assert list(by_id) == ["c", "a", "b", "z", "y", "x"]


def test_ids_derived_for_shapes_without_one_are_spelt_as_they_always_were(
    dataset: Dataset,
) -> None:
    # The stored JSON is orjson's (0.00001), the id is hashed from the standard library's
    # spelling (1e-05): a shape sent again after the encoder changed keeps its id.
    data = [{"reference_id": "x", "annotations": [{"label": "car", "geometry": box(x=1e-05)}]}]
    items_upsert(dataset=dataset, rows=data)
    ann = Annotation.objects.get(dataset=dataset)
    geometry = '{"x":1e-05,"y":2.0,"width":3.0,"height":4.0}'
    assert ann.annotation_id == derived_id("x", "box", "car", geometry)
    assert ann.geometry == box(x=1e-05)


def test_json_that_orjson_refuses_is_written_as_before(dataset: Dataset) -> None:
    # Past 64 bits, and keys that are not strings: the standard library's encoder takes them.
    big = {"reference_id": "x", "metadata": {"n": 2**70, "m": {1: "one"}}}
    items_upsert(dataset=dataset, rows=[big])
    assert Item.objects.get(dataset=dataset).metadata == {"n": 2**70, "m": {"1": "one"}}


def test_copied_rows_are_stamped_with_the_time_of_the_write(dataset: Dataset) -> None:
    # COPY takes the time as text: the instant must survive a session in another zone.
    when = datetime(2026, 3, 1, 12, 30, 15, 250_000, tzinfo=UTC)
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'Pacific/Kiritimati'")  # UTC+14
    with patch("curation.bulk.write.timezone.now", return_value=when):
        records_write(dataset=dataset, records=[clean_item_record(rows(1)[0], media=media(0))])
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'UTC'")  # as Django reads timestamps
    item = Item.objects.get(dataset=dataset)
    annotation = Annotation.objects.get(dataset=dataset)
    assert (item.created, item.updated) == (when, when)
    assert (annotation.created, annotation.updated) == (when, when)
