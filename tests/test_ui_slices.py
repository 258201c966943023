"""Slice pages: the slice's items, versions (freeze, diff, restore), exports, and saving
a view as a dynamic slice."""

from __future__ import annotations

import json
import re
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.db import connection
from django.http import QueryDict
from django.test import Client
from django.test.utils import CaptureQueriesContext

from curation.itemsets import slice_items
from curation.models import Dataset, Item, Slice, SliceItem, SliceVersion
from curation.services import slice_append, slice_create, slice_remove, tag_add
from curation.slices import slice_create_from_query
from curation.ui.state import GridState
from curation.versions import slice_version_create
from tests.ui_factories import populate

pytestmark = pytest.mark.django_db


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def items(dataset: Dataset) -> list[Item]:
    return populate(dataset, 8)


@pytest.fixture
def picked(dataset: Dataset, items: list[Item]) -> Slice:
    found, _ = slice_create(
        dataset=dataset, user=None, name="picked", reference_ids=[i.reference_id for i in items[:3]]
    )
    return found


def tile_ids(body: str) -> list[int]:
    return [int(i) for i in re.findall(r'class="tile[^"]*"[^>]*data-id="(\d+)"', body)]


def messages_of(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_a_slice_page_shows_its_items_and_export_buttons(
    victor: User, dataset: Dataset, items: list[Item], picked: Slice
) -> None:
    body = logged_in(victor).get(f"/datasets/{dataset.pk}/slices/{picked.pk}/").content.decode()
    assert tile_ids(body) == [i.pk for i in items[:3]]
    for name in ("jsonl", "coco", "yolo"):
        assert (
            f'href="/api/v1/datasets/{dataset.pk}/slices/{picked.pk}/export?format={name}" download'
            in body
        )
    assert "Freeze version" not in body  # a viewer cannot freeze


def test_the_grid_filters_stay_within_the_slice(
    alice: User, dataset: Dataset, items: list[Item], picked: Slice
) -> None:
    body = (
        logged_in(alice)
        .get(f"/datasets/{dataset.pk}/slices/{picked.pk}/?query=metadata.speed%20%3E%200")
        .content.decode()
    )
    assert tile_ids(body) == [i.pk for i in items[1:3]]


def test_a_dynamic_slice_shows_its_query_and_its_matches(
    alice: User, dataset: Dataset, items: list[Item]
) -> None:
    dynamic, _ = slice_create_from_query(
        dataset=dataset, user=alice, name="rainy", query='metadata.weather = "rain"'
    )
    body = logged_in(alice).get(f"/datasets/{dataset.pk}/slices/{dynamic.pk}/").content.decode()
    assert tile_ids(body) == [i.pk for i in items if i.metadata["weather"] == "rain"]
    assert "<code>metadata.weather = &quot;rain&quot;</code>" in body
    assert ">dynamic<" in body


def test_a_curator_freezes_a_version(
    bob: User, dataset: Dataset, items: list[Item], picked: Slice
) -> None:
    response = logged_in(bob).post(
        f"/datasets/{dataset.pk}/slices/{picked.pk}/versions", {"note": "for labeling"}
    )
    assert response.status_code == 302
    version = SliceVersion.objects.get(slice=picked)
    assert (version.number, version.item_count, version.note) == (1, 3, "for labeling")
    assert messages_of(response)[0].startswith("Froze version 1: 3 items")
    body = logged_in(bob).get(f"/datasets/{dataset.pk}/slices/{picked.pk}/").content.decode()
    assert (
        f'href="/api/v1/datasets/{dataset.pk}/slices/{picked.pk}/export?format=coco&amp;version=1"'
        in body
    )


def test_a_viewer_cannot_freeze_or_restore(
    victor: User, dataset: Dataset, picked: Slice, alice: User
) -> None:
    client = logged_in(victor)
    assert client.post(f"/datasets/{dataset.pk}/slices/{picked.pk}/versions").status_code == 403
    slice_version_create(slice=picked, user=alice)
    assert (
        client.post(f"/datasets/{dataset.pk}/slices/{picked.pk}/versions/1/restore").status_code
        == 403
    )
    assert SliceVersion.objects.count() == 1


def test_restoring_a_version_brings_its_items_back(
    bob: User, alice: User, dataset: Dataset, items: list[Item], picked: Slice
) -> None:
    slice_version_create(slice=picked, user=alice)
    slice_remove(slice=picked, reference_ids=[items[0].reference_id])
    slice_append(slice=picked, reference_ids=[items[5].reference_id])
    response = logged_in(bob).post(f"/datasets/{dataset.pk}/slices/{picked.pk}/versions/1/restore")
    assert response.status_code == 302
    assert set(picked.items.all()) == set(items[:3])
    assert messages_of(response) == ["Restored version 1: the slice has 3 items."]


def test_restoring_a_version_that_does_not_exist_is_not_found(
    bob: User, dataset: Dataset, picked: Slice
) -> None:
    assert (
        logged_in(bob)
        .post(f"/datasets/{dataset.pk}/slices/{picked.pk}/versions/9/restore")
        .status_code
        == 404
    )


def test_the_diff_of_two_versions_lists_added_and_removed_items(
    alice: User, dataset: Dataset, items: list[Item], picked: Slice
) -> None:
    slice_version_create(slice=picked, user=alice)
    slice_remove(slice=picked, reference_ids=[items[0].reference_id])
    slice_append(slice=picked, reference_ids=[items[6].reference_id, items[7].reference_id])
    slice_version_create(slice=picked, user=alice)
    response = logged_in(alice).get(f"/datasets/{dataset.pk}/slices/{picked.pk}/diff?from=1&to=2")
    assert response.status_code == 200
    body = response.content.decode()
    assert ">+2<" in body and ">\N{MINUS SIGN}1<" in body
    added = body.split('aria-label="Added"')[1].split("</section>")[0]
    assert items[6].reference_id in added and items[7].reference_id in added
    removed = body.split('aria-label="Removed"')[1].split("</section>")[0]
    assert items[0].reference_id in removed


def test_a_diff_of_versions_not_chosen_or_not_there_says_why(
    alice: User, dataset: Dataset, picked: Slice
) -> None:
    slice_version_create(slice=picked, user=alice)
    client = logged_in(alice)
    response = client.get(f"/datasets/{dataset.pk}/slices/{picked.pk}/diff?from=1")
    assert response.status_code == 400
    assert "to: choose a version" in response.content.decode()
    response = client.get(f"/datasets/{dataset.pk}/slices/{picked.pk}/diff?from=1&to=5")
    assert response.status_code == 400
    assert "has no version 5" in response.content.decode()


def test_the_export_buttons_download_with_the_browser_session(
    victor: User, dataset: Dataset, items: list[Item], picked: Slice, alice: User
) -> None:
    slice_version_create(slice=picked, user=alice)
    response = logged_in(victor).get(
        f"/api/v1/datasets/{dataset.pk}/slices/{picked.pk}/export?format=coco&version=1"
    )
    assert response.status_code == 200
    coco = json.loads(b"".join(response.streaming_content))
    # Named by the image files the items were read from (test://scene-000.jpg).
    assert sorted(image["file_name"] for image in coco["images"]) == sorted(
        f"{i.reference_id}.jpg" for i in items[:3]
    )


def test_a_view_is_saved_as_a_dynamic_slice(bob: User, dataset: Dataset, items: list[Item]) -> None:
    view = urlencode({"query": "metadata.speed >= 9", "label": "car", "size": "l"})
    response = logged_in(bob).post(
        f"/datasets/{dataset.pk}/slices/from-view", {"view": view, "name": "fast cars"}
    )
    saved = Slice.objects.get(name="fast cars")
    assert response["Location"] == f"/datasets/{dataset.pk}/slices/{saved.pk}/"
    assert saved.query == 'annotations."car" >= 1 AND (metadata.speed >= 9)'


def test_every_facet_is_saved_as_the_query_that_matches_what_the_grid_showed(
    bob: User, dataset: Dataset, items: list[Item]
) -> None:
    populate(dataset, 16)  # more items, so that each facet below leaves some out
    slice_create(
        dataset=dataset,
        user=None,
        name="some slice",
        reference_ids=[i.reference_id for i in Item.objects.filter(dataset=dataset)[:12]],
    )
    tagged = [i.reference_id for i in Item.objects.filter(dataset=dataset).order_by("-id")[:14]]
    tag_add(dataset=dataset, name='say "hi"', reference_ids=tagged)
    static = Slice.objects.get(name="some slice")
    # Image quality facets: all items but every fifth are blurry, none is dark.
    every = list(Item.objects.filter(dataset=dataset).order_by("id").values_list("pk", flat=True))
    Item.objects.filter(pk__in=[pk for n, pk in enumerate(every) if n % 5]).update(quality_blur=5)
    view = urlencode(
        [
            ("quality", "blurry"),
            ("quality", "dark"),
            ("label", "car"),
            ("label", "person"),
            ("metadata.weather", "rain"),
            ("metadata.weather", "fog"),
            ("metadata.speed__gte", "3"),
            ("tag", 'say "hi"'),
            ("tag", "unused"),
            ("slice", str(static.pk)),
            ("query", "width > 10"),
        ]
    )
    shown = set(GridState(QueryDict(view), dataset=dataset).items().values_list("pk", flat=True))
    assert shown and shown != set(Item.objects.filter(dataset=dataset).values_list("pk", flat=True))

    logged_in(bob).post(f"/datasets/{dataset.pk}/slices/from-view", {"view": view, "name": "v"})

    saved = Slice.objects.get(name="v")
    assert set(slice_items(saved).values_list("pk", flat=True)) == shown
    assert "tag IN" in saved.query and "slice IN" in saved.query
    assert "(quality.blur < 40 OR quality.brightness < 50)" in saved.query


@pytest.mark.parametrize(
    ("view", "name", "message"),
    [
        ("text=car&metadata.weather=rain", "x", "has no query form"),
        ("metadata.weather__exists=true", "x", "has no form in the query language"),
        ("metadata.speed=1e999", "x", "cannot write"),
        ("query=width%20%3E%201", "", "must not be blank"),
        ("", "everything", "Nothing filters this view"),
        ("query=width%20%3E", "broken", "Unexpected end of query"),
        ("like=abc", "similar", "like: must be a whole number"),
        ("query=width%20%3E%201", "a\x00b", "must not contain NUL"),
    ],
)
def test_saving_a_view_that_cannot_be_a_dynamic_slice_says_why(
    bob: User, dataset: Dataset, view: str, name: str, message: str
) -> None:
    response = logged_in(bob).post(
        f"/datasets/{dataset.pk}/slices/from-view", {"view": view, "name": name}
    )
    assert response.status_code == 302
    assert message in messages_of(response)[0]
    assert not Slice.objects.exists()


def test_a_note_too_long_freezes_nothing(bob: User, dataset: Dataset, picked: Slice) -> None:
    response = logged_in(bob).post(
        f"/datasets/{dataset.pk}/slices/{picked.pk}/versions", {"note": "x" * 2001}
    )
    assert messages_of(response) == ["The note is longer than 2,000 characters."]
    assert not SliceVersion.objects.exists()


def test_a_note_with_a_nul_character_freezes_nothing(
    bob: User, dataset: Dataset, picked: Slice
) -> None:
    response = logged_in(bob).post(
        f"/datasets/{dataset.pk}/slices/{picked.pk}/versions", {"note": "a\x00b"}
    )
    assert response.status_code == 302
    assert messages_of(response) == ["The note must not contain NUL characters."]
    assert not SliceVersion.objects.exists()


def test_a_slice_page_counts_its_items_once(
    alice: User, dataset: Dataset, items: list[Item]
) -> None:
    dynamic, _ = slice_create_from_query(
        dataset=dataset, user=alice, name="rainy", query='metadata.weather = "rain"'
    )
    client = logged_in(alice)
    page = f"/datasets/{dataset.pk}/slices/{dynamic.pk}/"
    client.get(page)  # counts the facets once, into the cache
    with CaptureQueriesContext(connection) as queries:
        body = client.get(page).content.decode()
    counting = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    assert len(counting) == 1
    rainy = sum(1 for i in items if i.metadata["weather"] == "rain")
    assert f"{rainy} items" in body


def test_a_dynamic_slice_whose_query_broke_keeps_its_page_and_versions(
    bob: User, dataset: Dataset, items: list[Item], picked: Slice
) -> None:
    dynamic, _ = slice_create_from_query(
        dataset=dataset, user=bob, name="from picked", query='slice = "picked"'
    )
    slice_version_create(slice=dynamic, user=bob)
    SliceItem.objects.filter(slice=picked).delete()
    picked.delete()  # the saved query now names a slice that is gone
    client = logged_in(bob)
    response = client.get(f"/datasets/{dataset.pk}/slices/{dynamic.pk}/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "saved query no longer works" in body and "No slice named" in body
    assert "? items" in body
    assert f"slices/{dynamic.pk}/export?format=jsonl&amp;version=1" in body
    assert tile_ids(body) == []
    frozen = client.post(f"/datasets/{dataset.pk}/slices/{dynamic.pk}/versions", {"note": "x"})
    assert frozen.status_code == 302
    assert messages_of(frozen)[0].startswith("Could not freeze the slice: No slice named")
    assert SliceVersion.objects.filter(slice=dynamic).count() == 1
