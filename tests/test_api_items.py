"""Items: filtered cursor-paginated list, detail, bulk upsert by reference_id, deletes."""

from __future__ import annotations

import itertools

import pytest
from django.utils import timezone
from rest_framework.test import APIRequestFactory

from curation.models import Annotation, Dataset, Item, Prediction, Slice, SliceItem, Tag
from curation.serializers import HidesServerPaths, ItemDetailSerializer, ItemSerializer
from curation.storage import media_url
from tests.api_helpers import add_items, box, error_of, error_paths, url


@pytest.fixture
def street(dataset: Dataset) -> Dataset:
    add_items(
        dataset,
        {
            "reference_id": "a",
            "metadata": {"weather": "rain", "speed": 5, "camera": {"model": "x1"}},
        },
        {"reference_id": "b", "metadata": {"weather": "sun", "speed": 12.5, "tags": ["night"]}},
        {"reference_id": "c", "metadata": {"weather": "rain", "speed": "20"}},
        {"reference_id": "d", "metadata": {"weather": "fog", "speed": 30, "ok": True}},
        {"reference_id": "e", "metadata": {}},
    )
    return dataset


def refs(client, path):
    response = client.get(path)
    assert response.status_code == 200, response.json()
    return [i["reference_id"] for i in response.json()["results"]]


# ---------------------------------------------------------------------------- list


def test_it_lists_items_by_id_with_a_cursor(street, victor, client_for):
    client = client_for(victor)
    first = client.get(url(street, "items?limit=2")).json()
    assert [i["reference_id"] for i in first["results"]] == ["a", "b"]
    assert first["results"][0]["metadata"]["weather"] == "rain"
    second = client.get(first["next"]).json()
    assert [i["reference_id"] for i in second["results"]] == ["c", "d"]
    third = client.get(second["next"]).json()
    assert [i["reference_id"] for i in third["results"]] == ["e"]
    assert third["next"] is None
    assert [i["reference_id"] for i in client.get(third["previous"]).json()["results"]] == [
        "c",
        "d",
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("metadata.weather=rain", ["a", "c"]),
        ("metadata.weather__ne=rain", ["b", "d", "e"]),
        ("metadata.weather__in=sun,fog", ["b", "d"]),
        ("metadata.speed__gt=10", ["b", "d"]),  # "20" is a string: numbers compare with numbers
        ("metadata.speed__gte=12.5&metadata.speed__lt=30", ["b"]),
        ("metadata.speed__lte=5", ["a"]),
        ("metadata.speed=20", ["c"]),  # a number also matches its text
        ('metadata.speed="20"', ["c"]),
        ("metadata.camera.model=x1", ["a"]),
        ("metadata.ok=true", ["d"]),
        ("metadata.camera__exists=true", ["a"]),
        ("metadata.weather__exists=false", ["e"]),
        ("metadata.weather=rain&metadata.speed__lt=10", ["a"]),
        ("metadata.weather__gt=rain", ["b"]),  # strings compare as text
        ("reference_id=a&reference_id=d", ["a", "d"]),
    ],
)
def test_it_filters_on_typed_metadata(street, victor, client_for, query, expected):
    assert refs(client_for(victor), url(street, f"items?{query}")) == expected


def test_it_filters_by_tag_and_slice(street, bob, client_for):
    ids = dict(Item.objects.values_list("reference_id", "id"))
    night = Tag.objects.create(dataset=street, name="night")
    blurry = Tag.objects.create(dataset=street, name="blurry")
    night.items.add(ids["a"], ids["b"])
    blurry.items.add(ids["b"])
    picked = Slice.objects.create(dataset=street, name="picked")
    SliceItem.objects.create(slice=picked, item_id=ids["b"])
    SliceItem.objects.create(slice=picked, item_id=ids["c"])
    client = client_for(bob)
    assert refs(client, url(street, "items?tag=night")) == ["a", "b"]
    assert refs(client, url(street, "items?tag=night&tag=blurry")) == ["b"]
    assert refs(client, url(street, f"items?slice={picked.pk}")) == ["b", "c"]
    assert refs(client, url(street, f"items?slice={picked.pk}&tag=night")) == ["b"]


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ("metadata.speed__around=3", "metadata.speed__around"),
        ("metadata.speed__gt=true", "metadata.speed__gt"),
        ("metadata.=x", "metadata."),
        ("metadata.a__exists=maybe", "metadata.a__exists"),
        ("weather=rain", "weather"),
        ("slice=abc", "slice"),
        ("slice=999999", "slice"),
        ("limit=lots", "limit"),
        ("limit=0", "limit"),
        ("cursor=bogus", "cursor"),
        ("reference_id=a%00", "reference_id"),
        ("cursor=cD1hYmM=", "cursor"),  # base64 of p=abc: a position that is not an id
        # past Python's int() limit of 4,300 digits
        pytest.param("metadata.speed=" + "1" * 4400, "metadata.speed", id="4400-digits"),
        pytest.param("metadata.speed__gt=" + "1" * 4400, "metadata.speed__gt", id="4400-digits-gt"),
        pytest.param(
            "metadata.speed__in=1," + "1" * 4400, "metadata.speed__in", id="4400-digits-in"
        ),
    ],
)
def test_bad_filters_are_a_400_naming_the_parameter(street, victor, client_for, query, path):
    assert error_paths(client_for(victor).get(url(street, f"items?{query}"))) == [path]


def test_a_large_limit_is_capped(street, victor, client_for):
    assert len(client_for(victor).get(url(street, "items?limit=5000")).json()["results"]) == 5


def test_it_filters_by_the_query_language(street, victor, client_for):
    client = client_for(victor)
    assert refs(
        client, url(street, 'items?query=metadata.weather = "rain" AND metadata.speed < 10')
    ) == ["a"]
    response = client.get(url(street, "items?query=metadata.weather = AND"))
    assert response.status_code == 400
    assert error_paths(response) == ["query"]


def test_query_check_warns_about_names_the_dataset_lacks(street, victor, client_for):
    add_items(street, {"reference_id": "p", "annotations": [box(id="p-1", label="pedestrian")]})
    client = client_for(victor)
    check = url(street, "query/check")
    response = client.get(check, {"query": "annotations.pedestrain >= 2"})
    assert response.status_code == 200, response.json()
    assert response.json() == {
        "warnings": [
            {
                "message": "No annotation in this dataset is labelled 'pedestrain', so it "
                "counts 0. Did you mean 'pedestrian'?",
                "offset": 12,
                "end_offset": 22,
                "suggestion": "pedestrian",
            }
        ]
    }
    fine = client.get(check, {"query": 'annotations.pedestrian >= 2 AND metadata.weather = "x"'})
    assert fine.json() == {"warnings": []}
    bad = client.get(check, {"query": "predictions[demo-detector].car >= 1"})
    assert error_paths(bad) == ["query"]
    assert 'Quote the name: predictions["demo-detector"].' in bad.json()["error"]["message"]
    assert error_paths(client.get(check)) == ["query"]


def test_query_check_needs_a_role(street, charlie, client_for):
    error_of(client_for(charlie).get(url(street, "query/check"), {"query": "width > 1"}), 404)
    error_of(client_for(None).get(url(street, "query/check"), {"query": "width > 1"}), 401)


def test_listing_needs_a_role(street, charlie, client_for):
    error_of(client_for(charlie).get(url(street, "items")), 404)
    error_of(client_for(None).get(url(street, "items")), 401)
    error_of(client_for(charlie).get(url(999999, "items")), 404)


# -------------------------------------------------------------------------- detail


def test_detail_has_tags_and_annotations_and_predictions_on_request(dataset, victor, client_for):
    ids = add_items(
        dataset,
        {
            "reference_id": "a",
            "annotations": [box(id="gt-1")],
            "predictions": [box(id="p-1", model="yolo", confidence=0.8)],
        },
    )
    Tag.objects.create(dataset=dataset, name="night").items.add(ids["a"])
    client = client_for(victor)
    body = client.get(url(dataset, f"items/{ids['a']}")).json()
    assert body["reference_id"] == "a"
    assert body["tags"] == ["night"]
    assert [(a["id"], a["reference_id"], a["label"]) for a in body["annotations"]] == [
        ("gt-1", "a", "car")
    ]
    assert body["annotations"][0]["geometry"] == {"x": 10, "y": 10, "width": 20, "height": 20}
    assert body["predictions"] is None
    assert body["media_url"] is None
    body = client.get(url(dataset, f"items/{ids['a']}?include=predictions")).json()
    assert [(p["id"], p["model"], p["confidence"]) for p in body["predictions"]] == [
        ("p-1", "yolo", 0.8)
    ]
    assert error_paths(client.get(url(dataset, f"items/{ids['a']}?include=everything"))) == [
        "include"
    ]


def test_detail_of_an_unknown_or_foreign_item_is_404(dataset, alice, charlie, client_for):
    other = Dataset.objects.create(name="other", owner=charlie)
    foreign = add_items(other, {"reference_id": "x"})["x"]
    client = client_for(alice)
    error_of(client.get(url(dataset, f"items/{foreign}")), 404, "not_found")
    error_of(client.get(url(dataset, "items/999999")), 404)
    error_of(client_for(charlie).get(url(dataset, f"items/{foreign}")), 404)


# ---------------------------------------------------------------------------- bulk


def test_bulk_upsert_creates_then_updates_by_reference_id(dataset, bob, client_for):
    client = client_for(bob)
    rows = [
        {"reference_id": "a", "metadata": {"weather": "rain"}, "annotations": [box(id="a1")]},
        {
            "reference_id": "b",
            "metadata": {"weather": "sun"},
            "predictions": [box(model="yolo", confidence=0.5)],
        },
    ]
    response = client.post(url(dataset, "items/bulk"), {"items": rows}, format="json")
    assert response.status_code == 200
    assert response.json() == {
        "items_created": 2,
        "items_updated": 0,
        "items_unchanged": 0,
        "annotations_written": 1,
        "predictions_written": 1,
        "error_count": 0,
    }
    rows[0]["metadata"] = {"weather": "snow"}
    again = client.post(url(dataset, "items/bulk"), {"items": rows}, format="json").json()
    assert (again["items_created"], again["items_updated"], again["items_unchanged"]) == (0, 1, 1)
    assert Item.objects.get(reference_id="a").metadata == {"weather": "snow"}


def test_an_identical_bulk_reupload_changes_nothing(dataset, bob, client_for):
    client = client_for(bob)
    rows = [
        {"reference_id": f"r{i}", "annotations": [box(), box(x=50, label="bus")]} for i in range(20)
    ]
    client.post(url(dataset, "items/bulk"), {"items": rows}, format="json")
    counts = (Item.objects.count(), Annotation.objects.count())
    again = client.post(url(dataset, "items/bulk"), {"items": rows}, format="json").json()
    assert (again["items_created"], again["items_updated"], again["items_unchanged"]) == (0, 0, 20)
    assert again["annotations_written"] == 0
    assert (Item.objects.count(), Annotation.objects.count()) == counts == (20, 40)


def test_a_bad_row_refuses_the_whole_batch_naming_each_bad_field(dataset, bob, client_for):
    rows = [
        {"reference_id": "fine"},
        {"reference_id": "bad box", "annotations": [box(), box(w=-1)]},
        {"metadata": {}},
        {"reference_id": "bad confidence", "predictions": [box(model="m", confidence=1.5)]},
        {"reference_id": "fine"},
    ]
    response = client_for(bob).post(url(dataset, "items/bulk"), {"items": rows}, format="json")
    assert error_paths(response) == [
        "items[1].annotations[1].geometry.width",
        "items[2].reference_id",
        "items[3].predictions[0].confidence",
        "items[4].reference_id",
    ]
    assert not Item.objects.exists()


@pytest.mark.parametrize(
    ("body", "path"),
    [({}, "items"), ({"items": {"reference_id": "a"}}, "items"), ({"items": ["a"]}, "items[0]")],
)
def test_a_malformed_bulk_body_is_a_400(dataset, bob, client_for, body, path):
    assert error_paths(client_for(bob).post(url(dataset, "items/bulk"), body, format="json")) == [
        path
    ]


def test_bulk_refuses_more_rows_than_configured(dataset, bob, client_for, settings):
    settings.NUCLEUS_BULK_MAX_ROWS = 2
    rows = [{"reference_id": str(i)} for i in range(3)]
    response = client_for(bob).post(url(dataset, "items/bulk"), {"items": rows}, format="json")
    assert error_paths(response) == ["items"]


def test_invalid_json_is_a_400(dataset, bob, client_for):
    response = client_for(bob).post(
        url(dataset, "items/bulk"), data="{not json", content_type="application/json"
    )
    error_of(response, 400, "parse_error")


def test_a_viewer_cannot_write_items(dataset, victor, client_for):
    client = client_for(victor)
    error_of(
        client.post(url(dataset, "items/bulk"), {"items": [{"reference_id": "a"}]}, format="json"),
        403,
    )
    error_of(
        client.post(url(dataset, "items/delete"), {"reference_ids": ["a"]}, format="json"), 403
    )
    assert not Item.objects.exists()


def test_no_role_is_404_for_writes(dataset, charlie, client_for):
    error_of(
        client_for(charlie).post(url(dataset, "items/bulk"), {"items": []}, format="json"), 404
    )


def test_it_takes_10000_rows_with_5_boxes_each_in_one_request(dataset, bob, client_for):
    rows = [
        {
            "reference_id": f"img-{i:05d}",
            "metadata": {"weather": "rain" if i % 2 else "sun", "index": i},
            "annotations": [box(x=10 * k, y=5 * k, id=f"img-{i:05d}-{k}") for k in range(5)],
        }
        for i in range(10_000)
    ]
    response = client_for(bob).post(url(dataset, "items/bulk"), {"items": rows}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["items_created"] == 10_000
    assert response.json()["annotations_written"] == 50_000
    assert Item.objects.filter(dataset=dataset).count() == 10_000
    assert Annotation.objects.filter(dataset=dataset).count() == 50_000


# ---------------------------------------------------------------------------- delete


def test_it_deletes_one_item_with_its_annotations_and_predictions(dataset, bob, client_for):
    ids = add_items(
        dataset,
        {
            "reference_id": "a",
            "annotations": [box()],
            "predictions": [box(model="m", confidence=0.1)],
        },
        {"reference_id": "b", "annotations": [box()]},
    )
    assert client_for(bob).delete(url(dataset, f"items/{ids['a']}")).status_code == 204
    assert list(Item.objects.values_list("reference_id", flat=True)) == ["b"]
    assert Annotation.objects.count() == 1
    assert not Prediction.objects.exists()


def test_deleting_needs_curator_and_a_known_item(dataset, victor, bob, client_for):
    ids = add_items(dataset, {"reference_id": "a"})
    error_of(client_for(victor).delete(url(dataset, f"items/{ids['a']}")), 403)
    error_of(client_for(bob).delete(url(dataset, "items/999999")), 404)
    assert Item.objects.count() == 1


def test_bulk_delete_by_reference_id_reports_missing_ones(dataset, bob, client_for):
    add_items(dataset, {"reference_id": "a"}, {"reference_id": "b"}, {"reference_id": "c"})
    client = client_for(bob)
    body = {"reference_ids": ["a", "c", "zzz"]}
    assert client.post(url(dataset, "items/delete"), body, format="json").json() == {
        "deleted": 2,
        "missing": ["zzz"],
    }
    assert list(Item.objects.values_list("reference_id", flat=True)) == ["b"]
    # A retry succeeds and deletes nothing more.
    assert client.post(url(dataset, "items/delete"), body, format="json").json() == {
        "deleted": 0,
        "missing": ["a", "c", "zzz"],
    }
    assert error_paths(
        client.post(url(dataset, "items/delete"), {"reference_ids": "a"}, format="json")
    ) == ["reference_ids"]


# ------------------------------------------------- answers made directly, and their cost


def _full_items(dataset, import_root):
    """Items with every field of the item JSON set, or unset: media, quality, paths."""
    ids = add_items(
        dataset,
        {"reference_id": "full", "metadata": {"weather": "rain", "n": [1, {"x": None}]}},
        {"reference_id": "bare"},
    )
    Item.objects.filter(pk=ids["full"]).update(
        media_key="items/full.jpg",
        thumbnail_key="thumbs/full.jpg",
        source_uri=str(import_root / "cams" / "full.jpg"),
        width=640,
        height=480,
        sha256="ab" * 32,
        byte_size=12345,
        quality_brightness=101.5,
        quality_contrast=3,
        quality_uniform=False,
    )
    return [Item.objects.get(pk=ids["full"]), Item.objects.get(pk=ids["bare"])]


@pytest.mark.parametrize("staff", [False, True])
def test_item_json_is_what_drfs_generic_serializer_makes(
    dataset, alice, import_root, staff, settings
):
    alice.is_staff = staff
    settings.ALLOWED_HOSTS = ["nucleus.example"]
    request = APIRequestFactory().get("/api/v1/x", HTTP_HOST="nucleus.example:8443")
    request.user = alice
    full, bare = _full_items(dataset, import_root)
    for item, zone, serializer_class in itertools.product(
        (full, bare), ("UTC", "Asia/Kolkata"), (ItemSerializer, ItemDetailSerializer)
    ):
        if serializer_class is ItemDetailSerializer:
            item.tag_names, item.annotation_list, item.prediction_list = ["night"], [], None
        with timezone.override(zone):  # datetimes are written in the current zone
            made = serializer_class(item, context={"request": request}).data
            generic = HidesServerPaths.to_representation(
                serializer_class(item, context={"request": request}), item
            )
        assert made == generic
        assert list(made) == list(generic)  # the same keys, in the same order
        assert made["created"].endswith("Z" if zone == "UTC" else "+05:30")
    for item in (full, bare):
        made = ItemSerializer(item, context={"request": request}).data
        for kind, key in (("original", "media_url"), ("thumbnail", "thumbnail_url")):
            assert made[key] == media_url(item, kind, request)
    rows = ItemSerializer([full, bare], many=True, context={"request": request}).data
    assert rows[0]["media_url"] == f"http://nucleus.example:8443/media/items/{full.pk}/original"
    assert rows[0]["thumbnail_url"].endswith(f"/media/items/{full.pk}/thumbnail")
    assert rows[1]["media_url"] is None and rows[1]["thumbnail_url"] is None
    assert rows[0]["source_uri"] == (
        str(import_root / "cams/full.jpg") if staff else "cams/full.jpg"
    )
    assert rows[0]["quality"]["contrast"] == 3.0 and rows[0]["quality"]["uniform"] is False
    assert rows[0]["created"].endswith("Z")
    # Without a request (outside a view), relative media paths, and paths hidden.
    alone = ItemSerializer(full).data
    assert alone["media_url"] == f"/media/items/{full.pk}/original"
    assert alone["source_uri"] == "cams/full.jpg"


def test_a_page_of_items_costs_the_same_queries_at_any_size(
    dataset, victor, client_for, django_assert_num_queries
):
    add_items(dataset, *({"reference_id": f"r{i}", "metadata": {"i": i}} for i in range(30)))
    client = client_for(victor)
    assert client.get(url(dataset, "items?limit=1")).status_code == 200  # token touched
    for limit in (2, 30):
        # The token and its user, the dataset, victor's membership (the access check,
        # on every request), the page: nothing per item.
        with django_assert_num_queries(4):
            body = client.get(url(dataset, f"items?limit={limit}")).json()
        assert len(body["results"]) == limit


def test_an_item_detail_is_four_queries_whatever_it_holds(
    dataset, alice, client_for, django_assert_num_queries
):
    ids = add_items(
        dataset,
        {"reference_id": "a", "annotations": [box(id=f"gt-{i}") for i in range(5)]},
        {"reference_id": "b"},
    )
    for name in ("night", "blurry"):
        Tag.objects.create(dataset=dataset, name=name).items.add(ids["a"])
    client = client_for(alice)  # the owner: the access check needs no membership
    assert client.get(url(dataset, f"items/{ids['b']}")).status_code == 200  # token touched
    for ref, tags, count in (("a", ["blurry", "night"], 5), ("b", [], 0)):
        # The token, the dataset, the item with its tag names, its annotations.
        with django_assert_num_queries(4):
            body = client.get(url(dataset, f"items/{ids[ref]}")).json()
        assert body["tags"] == tags
        assert len(body["annotations"]) == count
        assert all(a["reference_id"] == ref for a in body["annotations"])
