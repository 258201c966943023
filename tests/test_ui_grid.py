"""The dataset grid: keyset pages, facets, the query bar and its inline errors, overlays,
and a URL that holds the whole state of the view."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from curation.models import Annotation, Dataset, Item, Model, Prediction
from curation.services import tag_add
from curation.ui import grid as grid_views
from tests.ui_factories import facet_panel, populate

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(alice: User) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def items(dataset: Dataset) -> list[Item]:
    return populate(dataset, 12)


def tile_ids(response: Any) -> list[int]:
    return [
        int(i)
        for i in re.findall(r'class="tile[^"]*"[^>]*data-id="(\d+)"', response.content.decode())
    ]


def link(response: Any, rel: str) -> str | None:
    found = re.search(rf'href="([^"]+)" rel="{rel}"', response.content.decode())
    return found.group(1).replace("&amp;", "&") if found else None


def test_it_walks_the_items_in_keyset_pages_without_gaps_or_repeats(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    url: str | None = f"/datasets/{dataset.pk}/?limit=5"
    seen: list[int] = []
    while url:
        response = client.get(url)
        assert response.status_code == 200
        seen.extend(tile_ids(response))
        url = link(response, "next")
        if url:
            assert "after=" in url
    assert seen == [i.pk for i in items]
    last_page = client.get(f"/datasets/{dataset.pk}/?limit=5&after={items[9].pk}")
    back = client.get(link(last_page, "prev"))
    assert tile_ids(back) == [i.pk for i in items[5:10]]


@pytest.mark.parametrize("descending", [False, True])
def test_it_sorts_by_a_quality_signal_in_keyset_pages_both_ways(
    client: Client, dataset: Dataset, items: list[Item], descending: bool
) -> None:
    # Ties (items 0-3 share a value) and items without one (8, 9) included.
    values = [7.0, 7.0, 7.0, 7.0, 50.0, 3.0, 90.0, 1.0, None, None, 20.0, 60.0]
    for item, value in zip(items, values, strict=True):
        Item.objects.filter(pk=item.pk).update(quality_blur=value)
    known = sorted(
        (v if not descending else -v, i.pk)
        for i, v in zip(items, values, strict=True)
        if v is not None
    )
    expected = [pk for _, pk in known] + [items[8].pk, items[9].pk]
    sort = "-quality.blur" if descending else "quality.blur"
    url: str | None = f"/datasets/{dataset.pk}/?limit=5&sort={sort}"
    seen: list[int] = []
    pages = []
    while url:
        response = client.get(url)
        assert response.status_code == 200
        pages.append(tile_ids(response))
        seen.extend(pages[-1])
        url = link(response, "next")
    assert seen == expected
    # Backwards from the last page gives the same pages.
    last = client.get(f"/datasets/{dataset.pk}/?limit=5&sort={sort}&after={pages[1][-1]}")
    assert tile_ids(last) == pages[2]
    assert tile_ids(client.get(link(last, "prev"))) == pages[1]
    # The item page steps through the same order.
    for at in (2, 9, 10):  # in a tie, the last with a value, the first without
        body = client.get(f"/datasets/{dataset.pk}/items/{expected[at]}?sort={sort}")
        text = body.content.decode()
        nxt = re.search(r'href="([^"]+)" data-key-next', text)
        prev = re.search(r'href="([^"]+)" data-key-prev', text)
        assert prev is not None and f"/items/{expected[at - 1]}?" in prev.group(1)
        if at + 1 < len(expected):
            assert nxt is not None and f"/items/{expected[at + 1]}?" in nxt.group(1)


def test_it_runs_no_count_once_the_facets_are_cached(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    view = f"/datasets/{dataset.pk}/?label=car&metadata.weather=rain&query=width%20%3E%2010"
    first = client.get(view)
    assert 'data-testid="facet-loading"' in first.content.decode()  # not counted in the page
    facet_panel(client, first)  # the sidebar's request counts them once, into the cache
    with CaptureQueriesContext(connection) as queries:
        response = client.get(view)
    assert response.status_code == 200
    assert 'data-facet="label" data-value="car"' in response.content.decode()  # inline now
    counting = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    assert counting == []


def test_the_grid_does_not_wait_for_the_facets(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/datasets/{dataset.pk}/?label=car")
    assert response.status_code == 200
    assert not [q for q in queries if "curation_annotation a ON a.item_id = s.id" in q["sql"]]
    panel = facet_panel(client, response)
    assert 'data-facet="label" data-value="car"' in panel
    assert 'class="facet-row active"' in panel  # the panel knows the view's filters


def test_it_filters_by_a_label_facet(client: Client, dataset: Dataset, items: list[Item]) -> None:
    with_person = set(Annotation.objects.filter(label="person").values_list("item_id", flat=True))
    response = client.get(f"/datasets/{dataset.pk}/?label=person")
    assert set(tile_ids(response)) == with_person
    panel = facet_panel(client, response)
    assert 'data-facet="label" data-value="person"' in panel
    assert 'class="facet-row active"' in panel


def test_values_of_one_facet_combine_with_or_and_facets_with_and(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    def having(label: str) -> set[int]:
        return set(Annotation.objects.filter(label=label).values_list("item_id", flat=True))

    person, car = having("person"), having("car")
    assert person - car and car - person  # the OR and the AND differ on this data
    response = client.get(f"/datasets/{dataset.pk}/?label=person&label=car")
    assert set(tile_ids(response)) == person | car

    weather = {i.pk: i.metadata["weather"] for i in items}
    rain_or_fog = {pk for pk, w in weather.items() if w in ("rain", "fog")}
    assert rain_or_fog and rain_or_fog != set(weather)
    response = client.get(f"/datasets/{dataset.pk}/?metadata.weather=rain&metadata.weather=fog")
    assert set(tile_ids(response)) == rain_or_fog

    response = client.get(
        f"/datasets/{dataset.pk}/?metadata.weather=rain&metadata.weather=fog&label=person"
    )
    assert set(tile_ids(response)) == rain_or_fog & person
    # The API keeps its documented reading: repeated parameters all apply.
    api = client.get(
        f"/api/v1/datasets/{dataset.pk}/items?metadata.weather=rain&metadata.weather=fog"
    )
    assert api.status_code == 200 and api.json()["results"] == []


def test_tag_facets_combine_with_or(client: Client, dataset: Dataset, items: list[Item]) -> None:
    tag_add(dataset=dataset, name="first", reference_ids=[i.reference_id for i in items[:3]])
    tag_add(dataset=dataset, name="second", reference_ids=[i.reference_id for i in items[2:5]])
    response = client.get(f"/datasets/{dataset.pk}/?tag=first&tag=second")
    assert set(tile_ids(response)) == {i.pk for i in items[:5]}


def test_it_filters_by_metadata_with_the_apis_parameters(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    response = client.get(
        f"/datasets/{dataset.pk}/?metadata.weather=rain&metadata.speed__gte=10&metadata.camera.side=front"
    )
    expected = [
        i.pk
        for i in items
        if i.metadata["weather"] == "rain"
        and i.metadata["speed"] >= 10
        and i.metadata["camera"]["side"] == "front"
    ]
    assert expected
    assert tile_ids(response) == expected


def test_it_filters_by_tag_and_by_the_query_bar(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    tag_add(dataset=dataset, name="reviewed", reference_ids=[i.reference_id for i in items[:6]])
    response = client.get(
        f"/datasets/{dataset.pk}/", {"tag": "reviewed", "query": "metadata.speed > 6"}
    )
    assert tile_ids(response) == [i.pk for i in items[:6] if i.metadata["speed"] > 6]


def test_it_underlines_a_query_error_where_it_is(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    response = client.get(f"/datasets/{dataset.pk}/", {"query": "metadata.speed > > 3"})
    assert response.status_code == 400
    body = response.content.decode()
    mirror = re.search(r'id="query-mirror"[^>]*>(.*?)</div>', body, re.S).group(1)
    assert re.sub(r"<mark[^>]*>.*?</mark>.*", "", mirror) == "metadata.speed &gt; "
    assert re.search(r'data-testid="query-error-mark">&gt;</mark>', mirror)
    assert "column 18" in body
    assert tile_ids(response) == []


def test_the_query_check_fragment_reports_an_error_or_nothing(
    client: Client, dataset: Dataset
) -> None:
    bad = client.get(
        f"/datasets/{dataset.pk}/query/check", {"query": "metadata.weather = "}
    ).content.decode()
    assert 'data-testid="query-error"' in bad
    assert 'id="query-mirror" aria-hidden="true" hx-swap-oob="true"' in bad
    assert 'class="query-error-mark at-end"' in bad
    good = client.get(
        f"/datasets/{dataset.pk}/query/check", {"query": 'metadata.weather = "rain"'}
    ).content.decode()
    assert 'data-testid="query-error"' not in good
    assert "<mark" not in good


def test_it_draws_ground_truth_boxes_in_the_pixels_of_the_original(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    item = items[0]
    box = Annotation.objects.filter(item=item).order_by("id").first()
    body = client.get(f"/datasets/{dataset.pk}/?limit=1").content.decode()
    assert f'viewBox="0 0 {item.width} {item.height}"' in body
    g = box.geometry
    assert (
        f'<rect x="{g["x"]:.1f}" y="{g["y"]:.1f}" '
        f'width="{g["width"]:.1f}" height="{g["height"]:.1f}"/>' in body
    )
    assert f'src="/media/items/{item.pk}/thumbnail"' in body


def test_it_draws_one_models_predictions_at_or_above_the_confidence(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    model = Model.objects.get(dataset=dataset)
    url = f"/datasets/{dataset.pk}/?model={model.pk}&conf="
    confident = Prediction.objects.filter(model=model, confidence__gte=0.5).count()
    assert client.get(url + "0.5").content.decode().count("shape shape-pred") == confident
    assert (
        client.get(url + "0").content.decode().count("shape shape-pred")
        == Prediction.objects.count()
    )
    assert "shape shape-pred" not in client.get(f"/datasets/{dataset.pk}/").content.decode()


def test_each_shape_has_its_label_written_at_its_corner(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    item = items[0]
    model = Model.objects.get(dataset=dataset)
    body = client.get(f"/datasets/{dataset.pk}/?limit=1&model={model.pk}&conf=0").content.decode()
    labels = re.findall(r'class="box-label box-label-(gt|pred)"[^>]*style="([^"]+)">([^<]+)<', body)
    annotations = list(Annotation.objects.filter(item=item).order_by("id"))
    predictions = list(Prediction.objects.filter(item=item).order_by("id"))
    assert sorted(text for source, _, text in labels if source == "gt") == sorted(
        a.label for a in annotations
    )
    assert sorted(text for source, _, text in labels if source == "pred") == sorted(
        f"{p.label} {p.confidence:.2f}" for p in predictions
    )
    g = annotations[0].geometry
    left, top = 100 * g["x"] / item.width, 100 * g["y"] / item.height
    assert any(f"left: {left:.2f}%; top: {top:.2f}%;" in style for _, style, _ in labels)


def test_a_thumbnails_text_alternative_counts_the_labels_drawn_on_it(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    item = items[0]
    model = Model.objects.get(dataset=dataset)

    def counted(labels: list[str]) -> str:
        return ", ".join(f"{labels.count(label)} {label}" for label in sorted(set(labels)))

    gt = counted(list(Annotation.objects.filter(item=item).values_list("label", flat=True)))
    sure = Prediction.objects.filter(item=item, model=model, confidence__gte=0.5)
    pred = counted(list(sure.values_list("label", flat=True)))
    plain = client.get(f"/datasets/{dataset.pk}/?limit=1").content.decode()
    assert f'alt="{item.reference_id}: {gt}"' in plain
    drawn = client.get(f"/datasets/{dataset.pk}/?limit=1&model={model.pk}&conf=0.5")
    assert f'alt="{item.reference_id}: {gt}; predicted {pred}"' in drawn.content.decode()


def test_the_grid_has_a_legend_for_ground_truth_and_predictions(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    model = Model.objects.get(dataset=dataset)
    legend = re.search(
        r'data-testid="overlay-legend".*?</span>\s*</span>',
        client.get(f"/datasets/{dataset.pk}/?model={model.pk}&conf=0.3").content.decode(),
        re.S,
    )
    assert legend and "ground truth" in legend.group(0)
    assert "prediction ≥ 0.3" in legend.group(0)
    assert 'class="tiles size-l"' in client.get(f"/datasets/{dataset.pk}/?size=l").content.decode()


def test_the_confidence_travels_from_tiles_to_item_pages(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    model = Model.objects.get(dataset=dataset)
    body = client.get(f"/datasets/{dataset.pk}/?model={model.pk}&conf=0.2").content.decode()
    opened = re.search(r'data-open="([^"]+)"', body).group(1).replace("&amp;", "&")
    assert parse_qs(urlsplit(opened).query) == {"model": [str(model.pk)], "conf": ["0.2"]}
    item_page = client.get(opened).content.decode()
    assert (
        pred_count(item_page)
        == Prediction.objects.filter(
            item_id=int(urlsplit(opened).path.rstrip("/").split("/")[-1]), confidence__gte=0.2
        ).count()
    )


def pred_count(body: str) -> int:
    return body.count('class="shape shape-pred"')


def test_every_label_has_one_colour_and_no_two_share_one(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    response = client.get(f"/datasets/{dataset.pk}/?refresh=1")
    body = response.content.decode()
    tiles = dict(
        re.findall(r'data-label="([^"]+)" data-source="gt" style="--c: (#[0-9a-f]{6})"', body)
    )
    facets = dict(
        (name, colour)
        for colour, name in re.findall(
            r'class="swatch" style="background: (#[0-9a-f]{6})"></span>'
            r'<span class="facet-name">([^<]+)<',
            facet_panel(client, response),
        )
    )
    assert set(tiles) == {"bicycle", "car", "person", "traffic light"}
    assert facets == tiles
    assert len(set(tiles.values())) == len(tiles)


def test_every_link_keeps_the_state_of_the_view(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    response = client.get(
        f"/datasets/{dataset.pk}/",
        {"query": "width > 1", "label": "car", "size": "l", "limit": "2"},
    )
    body = response.content.decode().replace("&amp;", "&")
    panel = facet_panel(client, response).replace("&amp;", "&")
    facet = re.search(r'href="([^"]+)" data-facet="label" data-value="person"', panel).group(1)
    assert parse_qs(urlsplit(facet).query) == {
        "query": ["width > 1"],
        "label": ["car", "person"],
        "size": ["l"],
        "limit": ["2"],
    }
    nxt = parse_qs(urlsplit(link(response, "next")).query)
    assert nxt["query"] == ["width > 1"] and nxt["label"] == ["car"] and "after" in nxt
    opened = re.search(r'data-open="([^"]+)"', body).group(1)
    assert parse_qs(urlsplit(opened).query)["query"] == ["width > 1"]


def test_a_facet_click_goes_back_to_the_first_page(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    body = facet_panel(client, client.get(f"/datasets/{dataset.pk}/?limit=2&after={items[3].pk}"))
    facet = re.search(r'href="([^"]+)" data-facet="label"', body).group(1).replace("&amp;", "&")
    assert "after=" not in facet


@pytest.mark.parametrize(
    "query", ["after=abc", "conf=2", "metadata.speed__near=3", "limit=0", "sort=quality.x"]
)
def test_a_bad_parameter_in_a_link_is_a_clear_400(
    client: Client, dataset: Dataset, query: str
) -> None:
    response = client.get(f"/datasets/{dataset.pk}/?{query}")
    assert response.status_code == 400
    assert query.split("=")[0].split("__")[0] in response.content.decode()


def test_the_count_stops_at_its_cap(
    client: Client, dataset: Dataset, items: list[Item], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (
        'data-count="12">12 items' in client.get(f"/datasets/{dataset.pk}/count").content.decode()
    )
    rain = sum(1 for i in items if i.metadata["weather"] == "rain")
    assert (
        f">{rain} items"
        in client.get(f"/datasets/{dataset.pk}/count?metadata.weather=rain").content.decode()
    )
    monkeypatch.setattr(grid_views, "COUNT_CAP", 5)
    assert "5+ items" in client.get(f"/datasets/{dataset.pk}/count").content.decode()


def test_it_shows_an_empty_view_plainly(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    body = client.get(f"/datasets/{dataset.pk}/?query=width%20%3E%2099999").content.decode()
    assert "No items match this view." in body
    assert tile_ids_from(body) == []


def tile_ids_from(body: str) -> list[str]:
    return re.findall(r'class="tile[^"]*"[^>]*data-id="(\d+)"', body)


def test_refresh_counts_the_facets_again(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    grid = f"/datasets/{dataset.pk}/"
    assert f"{len(items)} items" in facet_panel(client, client.get(grid))  # now cached
    populate(dataset, len(items) + 2)  # two more items; the cache still says the old count
    assert f"{len(items)} items" in facet_panel(client, client.get(grid))
    refreshed = facet_panel(client, client.get(grid + "?refresh=1"))
    assert f"{len(items) + 2} items" in refreshed
