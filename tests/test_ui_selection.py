"""Actions on selected items: create a slice, add to or remove from one, tag, untag; by
explicit ids or by "select all matching" the view's filters, beyond the loaded page."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.test import Client

from curation.models import Dataset, Item, Slice, Tag
from curation.services import slice_create, tag_add
from curation.ui import selection
from tests.ui_factories import populate

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(bob: User) -> Client:
    client = Client()
    client.force_login(bob)
    return client


@pytest.fixture
def items(dataset: Dataset) -> list[Item]:
    return populate(dataset, 8)


def post(client: Client, dataset: Dataset, **data: str) -> tuple[int, str, list[str]]:
    response = client.post(f"/datasets/{dataset.pk}/selection", data)
    return (
        response.status_code,
        response.get("Location", ""),
        [str(m) for m in get_messages(response.wsgi_request)],
    )


def ids(items: list[Item]) -> str:
    return ",".join(str(i.pk) for i in items)


def test_it_creates_a_slice_of_the_selected_items(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    status, location, messages = post(
        client,
        dataset,
        action="slice_create",
        ids=ids(items[1:4]),
        name="hard cases",
        next=f"/datasets/{dataset.pk}/?query=x",
    )
    created = Slice.objects.get(dataset=dataset)
    assert (status, location) == (302, f"/datasets/{dataset.pk}/?query=x")
    assert created.name == "hard cases"
    assert set(created.items.all()) == set(items[1:4])
    assert messages == ["Created slice “hard cases” with 3 items."]


def test_it_adds_to_and_removes_from_a_slice(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    target, _ = slice_create(
        dataset=dataset, user=None, name="s", reference_ids=[items[0].reference_id]
    )
    post(client, dataset, action="slice_add", ids=ids(items[:3]), slice=str(target.pk))
    assert set(target.items.all()) == set(items[:3])
    _, _, messages = post(
        client, dataset, action="slice_remove", ids=ids(items[1:2]), slice=str(target.pk)
    )
    assert set(target.items.all()) == {items[0], items[2]}
    assert messages[-1] == "Removed 1 item from slice “s”."


def test_it_tags_and_untags(client: Client, dataset: Dataset, items: list[Item]) -> None:
    post(client, dataset, action="tag", ids=ids(items[:2]), name="blurry")
    tag = Tag.objects.get(dataset=dataset, name="blurry")
    assert set(tag.items.all()) == set(items[:2])
    post(client, dataset, action="untag", ids=ids(items[:1]), name="blurry")
    assert list(tag.items.all()) == [items[1]]


def test_select_all_matching_reaches_beyond_the_loaded_page(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    view = urlencode({"metadata.weather": "rain", "limit": "1"})
    post(client, dataset, action="slice_create", scope="view", view=view, name="rainy")
    rainy = {i for i in items if i.metadata["weather"] == "rain"}
    assert len(rainy) > 1
    assert set(Slice.objects.get(name="rainy").items.all()) == rainy


def test_select_all_matching_by_query_and_label(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    view = urlencode({"query": "metadata.speed >= 9", "label": "car"})
    post(client, dataset, action="tag", scope="view", view=view, name="fast cars")
    expected = {
        i for i in items if i.metadata["speed"] >= 9 and i.annotations.filter(label="car").exists()
    }
    assert expected
    assert set(Tag.objects.get(name="fast cars").items.all()) == expected


def test_select_all_in_a_slice_page_stays_in_the_slice(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    inside, _ = slice_create(
        dataset=dataset, user=None, name="in", reference_ids=[i.reference_id for i in items[:3]]
    )
    post(
        client, dataset, action="tag", scope="view", view=f"in_slice={inside.pk}", name="from slice"
    )
    assert set(Tag.objects.get(name="from slice").items.all()) == set(items[:3])


def test_select_all_refuses_more_than_its_limit(
    client: Client, dataset: Dataset, items: list[Item], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(selection, "SELECT_ALL_MAX", 3)
    status, _, messages = post(client, dataset, action="tag", scope="view", view="", name="all")
    assert status == 302
    assert "up to 3 items" in messages[0]
    assert not Tag.objects.exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"action": "tag", "name": "x"}, "Select at least one item."),
        ({"action": "tag", "ids": "1,abc", "name": "x"}, "Item ids must be whole numbers."),
        ({"action": "slice_create", "ids": "1"}, "Give a name."),
        ({"action": "tag", "ids": "1", "name": "   "}, "Give a name."),
        ({"action": "slice_add", "ids": "1"}, "Choose a slice."),
        ({"action": "explode", "ids": "1"}, "Select a valid choice."),
    ],
)
def test_a_bad_selection_form_says_what_is_wrong(
    client: Client, dataset: Dataset, items: list[Item], data: dict[str, str], message: str
) -> None:
    status, location, messages = post(
        client, dataset, **data, next=f"/datasets/{dataset.pk}/?label=car"
    )
    assert (status, location) == (302, f"/datasets/{dataset.pk}/?label=car")
    assert message in messages[0]
    assert not Slice.objects.exists() and not Tag.objects.exists()


def test_items_of_another_dataset_are_refused(
    client: Client, dataset: Dataset, items: list[Item], charlie: User
) -> None:
    other = Dataset.objects.create(name="other", owner=charlie)
    foreign = populate(other, 1)[0]
    _, _, messages = post(
        client, dataset, action="slice_create", ids=ids([items[0], foreign]), name="mixed"
    )
    assert "not in this dataset" in messages[0]
    assert not Slice.objects.exists()


def test_a_slice_name_already_taken_is_reported(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    slice_create(dataset=dataset, user=None, name="taken")
    _, _, messages = post(client, dataset, action="slice_create", ids=ids(items[:1]), name="taken")
    assert messages == ["A slice named 'taken' already exists."]
    assert Slice.objects.get().items.count() == 0


def test_untagging_with_an_unknown_tag_is_reported(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    tag_add(dataset=dataset, name="kept", reference_ids=[items[0].reference_id])
    _, _, messages = post(client, dataset, action="untag", ids=ids(items[:1]), name="nope")
    assert "no tag 'nope'" in messages[0]
    assert Tag.objects.get().items.count() == 1


def test_a_slice_of_another_dataset_is_not_found(
    client: Client, dataset: Dataset, items: list[Item], charlie: User
) -> None:
    other = Dataset.objects.create(name="other", owner=charlie)
    foreign, _ = slice_create(dataset=other, user=None, name="theirs")
    _, _, messages = post(
        client, dataset, action="slice_add", ids=ids(items[:1]), slice=str(foreign.pk)
    )
    assert messages == ["Slice not found."]
    assert foreign.items.count() == 0


def test_next_may_not_leave_the_site(client: Client, dataset: Dataset, items: list[Item]) -> None:
    _, location, _ = post(
        client, dataset, action="tag", ids=ids(items[:1]), name="t", next="https://evil.example/"
    )
    assert location == f"/datasets/{dataset.pk}/"


def test_select_all_in_a_slice_that_is_not_one_is_reported(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    for view in ("in_slice=abc", "in_slice=" + "9" * 30):
        status, _, messages = post(client, dataset, action="tag", scope="view", view=view, name="t")
        assert (status, messages[-1]) == (302, "Slice not found.")
    assert not Tag.objects.exists()


def test_items_cannot_be_added_to_a_dynamic_slice(
    client: Client, dataset: Dataset, items: list[Item], bob: User
) -> None:
    from curation.slices import slice_create_from_query

    dynamic, _ = slice_create_from_query(dataset=dataset, user=bob, name="d", query="width > 1")
    for action in ("slice_add", "slice_remove"):
        _, _, messages = post(
            client, dataset, action=action, ids=ids(items[:1]), slice=str(dynamic.pk)
        )
        assert "is dynamic" in messages[0]
    assert not dynamic.memberships.exists()


def test_registered_actions_are_shown_from_their_role(monkeypatch: pytest.MonkeyPatch) -> None:
    from curation.ui import extensions

    monkeypatch.setattr(extensions, "_selection_actions", [])
    curate = extensions.SelectionAction("Curate", "app:curate", "curate")
    admin = extensions.SelectionAction("Admin", "app:admin", "admin", min_role="admin")
    for action in (curate, admin, curate):  # once per url_name
        extensions.selection_action_register(action)
    assert extensions.selection_actions(None) == []
    assert extensions.selection_actions("viewer") == []
    assert extensions.selection_actions("curator") == [curate]
    assert extensions.selection_actions("admin") == [curate, admin]


def test_the_bar_has_the_other_apps_actions_for_a_curator(
    client: Client, dataset: Dataset, items: list[Item], victor: User
) -> None:
    body = client.get(f"/datasets/{dataset.pk}/").content.decode()
    bar = body.split('id="selection-form"')[1].split("</form>")[0]
    assert bar.count('type="submit" formaction=') == 2
    assert 'data-testid="sel-autotag"' in bar and 'data-testid="sel-review"' in bar
    viewer = Client()
    viewer.force_login(victor)
    assert 'formaction="' not in viewer.get(f"/datasets/{dataset.pk}/").content.decode()
