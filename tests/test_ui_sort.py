"""The grid sorted by a value of the query language: the order, items without a value
last, ties by id, pages forward and back that see every item once, the item page's
previous/next in the same order, and a 400 naming `sort` or `order` for a bad one."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from curation.models import Dataset, Item
from curation.query import QueryError, sort_expression
from tests.api_helpers import add_items, box
from tests.ui_factories import evaluated, outcome_world


def refs(body: str) -> list[str]:
    return re.findall(r'data-ref="([^"]+)"', body)


def link(body: str, rel: str) -> str | None:
    """The grid pager's `rel` ("next", "prev") link."""
    found = re.search(rf'<a class="button" href="([^"]+)" rel="{rel}">', body)
    return html.unescape(found.group(1)) if found else None


@pytest.fixture
def scored(dataset: Dataset) -> dict[str, Any]:
    """Eight items: `score` in metadata (two without, two tied) and cars per item."""
    rows = [
        ("a", 3.0, 1),
        ("b", None, 0),
        ("c", 1.5, 4),
        ("d", 3.0, 2),
        ("e", -2, 0),
        ("f", None, 3),
        ("g", 10, 1),
        ("h", 0.25, 2),
    ]
    add_items(
        dataset,
        *[
            {
                "reference_id": ref,
                "metadata": {} if score is None else {"score": score},
                "annotations": [box(i * 5, 0, 5, 5, label="car") for i in range(cars)],
            }
            for ref, score, cars in rows
        ],
    )
    ids = dict(Item.objects.filter(dataset=dataset).values_list("reference_id", "id"))
    return {"rows": rows, "ids": ids}


def expected(rows: list[tuple[str, Any, int]], ids: dict[str, int], *, column: int, desc: bool):
    valued = [r for r in rows if r[column] is not None]
    valued.sort(key=lambda r: (-r[column] if desc else r[column], ids[r[0]]))
    missing = sorted((r for r in rows if r[column] is None), key=lambda r: ids[r[0]])
    return [r[0] for r in valued + missing]


def grid(client: Client, dataset: Dataset, query: str) -> str:
    response = client.get(f"/datasets/{dataset.pk}/?{query}")
    assert response.status_code == 200, response.content[:500]
    return str(response.content.decode())


def walk(client: Client, dataset: Dataset, start: str) -> tuple[list[list[str]], str]:
    """Every page from `start` by its next links; the pages, and the last page's body."""
    pages, body = [], grid(client, dataset, start)
    pages.append(refs(body))
    while (following := link(body, "next")) is not None:
        body = client.get(following).content.decode()
        pages.append(refs(body))
    return pages, body


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("sort", "column", "desc"),
    [("metadata.score", 1, False), ("metadata.score", 1, True), ("annotations.car", 2, True)],
)
def test_pages_forward_and_back_see_every_item_once_in_order(
    dataset: Dataset, alice: User, scored: dict[str, Any], sort: str, column: int, desc: bool
) -> None:
    client = Client()
    client.force_login(alice)
    order = "desc" if desc else "asc"
    pages, last = walk(client, dataset, f"sort={sort}&order={order}&limit=3")
    want = expected(scored["rows"], scored["ids"], column=column, desc=desc)
    assert [ref for page in pages for ref in page] == want
    assert [len(p) for p in pages] == [3, 3, 2]
    back, body = [], last
    while (previous := link(body, "prev")) is not None:
        body = client.get(previous).content.decode()
        back.append(refs(body))
    assert back == pages[:-1][::-1]


@pytest.mark.django_db
def test_tiles_show_their_value_and_the_filter_still_applies(
    dataset: Dataset, alice: User, scored: dict[str, Any]
) -> None:
    client = Client()
    client.force_login(alice)
    body = grid(client, dataset, "query=annotations.car >= 2&sort=metadata.score&order=desc")
    assert refs(body) == ["d", "c", "h", "f"]
    values = re.findall(r'data-testid="sort-value"[^>]*>([^<]*)<', body)
    assert values == ["3", "1.5", "0.25", "—"]


@pytest.mark.django_db
def test_the_item_page_steps_through_the_sorted_view(
    dataset: Dataset, alice: User, scored: dict[str, Any]
) -> None:
    client = Client()
    client.force_login(alice)
    ids = scored["ids"]
    want = expected(scored["rows"], ids, column=2, desc=True)
    middle = want[3]
    body = client.get(
        f"/datasets/{dataset.pk}/items/{ids[middle]}?sort=annotations.car&order=desc"
    ).content.decode()
    hrefs = dict(
        (rel, int(pk))
        for pk, rel in re.findall(
            r'href="/datasets/\d+/items/(\d+)\?[^"]*" data-key-(prev|next)', body
        )
    )
    assert hrefs == {"prev": ids[want[2]], "next": ids[want[4]]}


@pytest.mark.django_db
def test_a_registered_field_sorts_by_its_value(dataset: Dataset, alice: User) -> None:
    outcome_world(dataset)
    evaluated(dataset, alice, "base run")
    client = Client()
    client.force_login(alice)
    body = grid(client, dataset, 'sort=eval["base run"].fp&order=desc')
    # fp per item (tests/ui_factories.outcome_world): c 2, b 1, a 0, d 0.
    assert refs(body) == ["c", "b", "a", "d"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ("sort=tag", "sort"),
        ("sort=width >", "sort"),
        ("sort=nosuch.x", "sort"),
        ("order=up", "order"),
    ],
)
def test_a_bad_sort_is_a_400_naming_its_field(
    dataset: Dataset, alice: User, scored: dict[str, Any], params: str, field: str
) -> None:
    client = Client()
    client.force_login(alice)
    response = client.get(f"/datasets/{dataset.pk}/?{params}")
    assert response.status_code == 400
    assert f"<li><code>{field}</code>:" in response.content.decode()


@pytest.mark.django_db
def test_sort_errors_name_sort_and_say_what_sorts(dataset: Dataset) -> None:
    with pytest.raises(QueryError) as caught:
        sort_expression("slice", dataset=dataset)
    assert caught.value.fields[0]["path"] == "sort"
    assert "Cannot sort by 'slice'" in caught.value.message


# ------------------------------------------------------------------------------ the API


@pytest.mark.django_db
@pytest.mark.parametrize("desc", [False, True])
def test_the_api_pages_a_sorted_list_both_ways(
    dataset: Dataset, alice: User, scored: dict[str, Any], client_for: Any, desc: bool
) -> None:
    api = client_for(alice)
    order = "desc" if desc else "asc"
    response = api.get(
        f"/api/v1/datasets/{dataset.pk}/items",
        {"sort": "metadata.score", "order": order, "limit": 3},
    )
    pages, values = [], []
    while True:
        assert response.status_code == 200, response.content[:300]
        body = response.json()
        pages.append([row["reference_id"] for row in body["results"]])
        values += [row["sort_value"] for row in body["results"]]
        if body["next"] is None:
            break
        response = api.get(body["next"])
    want = expected(scored["rows"], scored["ids"], column=1, desc=desc)
    assert [ref for page in pages for ref in page] == want
    by_ref = {ref: score for ref, score, _ in scored["rows"]}
    assert values == [by_ref[ref] for ref in want]
    back = []
    while body["previous"] is not None:
        body = api.get(body["previous"]).json()
        back.append([row["reference_id"] for row in body["results"]])
    assert back == pages[:-1][::-1]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"sort": "tag"}, "sort"),
        ({"sort": "width", "order": "down"}, "order"),
        ({"sorted": "x"}, "sorted"),
    ],
)
def test_the_api_refuses_a_bad_sort_naming_the_field(
    dataset: Dataset, alice: User, client_for: Any, params: dict[str, str], field: str
) -> None:
    response = client_for(alice).get(f"/api/v1/datasets/{dataset.pk}/items", params)
    assert response.status_code == 400
    assert [f["path"] for f in response.json()["error"]["fields"]] == [field]
