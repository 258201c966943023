"""The facet sidebar counts the view: its filters, query, facets and slice, not the whole
dataset; exactly up to a bound, then from a sample, marked as approximate."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from curation import facets, sampling
from curation.itemsets import slice_items
from curation.models import Annotation, Dataset, Item, Slice
from curation.slices import slice_create_from_items
from tests.ui_factories import facet_panel, grid_ids, histogram_of, populate, score_entry_url

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(alice: User) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def items(dataset: Dataset) -> list[Item]:
    return populate(dataset, 12)


def panel_of(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return facet_panel(client, response)


def label_counts(panel: str) -> dict[str, int]:
    rows = re.findall(
        r'data-facet="label" data-value="([^"]+)".*?class="facet-count">(\d+)<', panel, re.S
    )
    return {label: int(n) for label, n in rows}


def basis_text(panel: str) -> str:
    found = re.search(r'data-testid="facet-basis">(.*?)·', panel, re.S)
    assert found is not None
    return " ".join(re.sub(r"<[^>]+>", "", found.group(1)).split())


def items_with(label: str, among: set[int]) -> set[int]:
    return set(
        Annotation.objects.filter(label=label, item_id__in=among).values_list("item_id", flat=True)
    )


def test_label_counts_follow_a_metadata_filter(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    rain = {i.pk for i in items if i.metadata["weather"] == "rain"}
    assert 0 < len(rain) < len(items)
    whole = label_counts(panel_of(client, f"/datasets/{dataset.pk}/"))
    panel = panel_of(client, f"/datasets/{dataset.pk}/?metadata.weather=rain")

    counts = label_counts(panel)
    assert counts and counts != whole
    assert counts == {label: len(items_with(label, rain)) for label in counts}
    assert basis_text(panel) == f"This view: {len(rain)} items"


def test_a_slice_page_counts_the_slice(client: Client, dataset: Dataset, items: list[Item]) -> None:
    chosen = items[:5]
    found, _ = slice_create_from_items(
        dataset=dataset, user=None, name="five", reference_ids=[i.reference_id for i in chosen]
    )
    panel = panel_of(client, f"/datasets/{dataset.pk}/slices/{found.pk}/")

    assert basis_text(panel) == "This view: 5 items"
    ids = {i.pk for i in chosen}
    assert label_counts(panel) == {
        label: len(items_with(label, ids))
        for label in set(Annotation.objects.filter(item_id__in=ids).values_list("label", flat=True))
    }


def test_tag_counts_follow_the_view_and_a_new_tag_shows_at_once(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    rain = [i for i in items if i.metadata["weather"] == "rain"]
    other = [i for i in items if i.metadata["weather"] != "rain"]
    url = f"/datasets/{dataset.pk}/?metadata.weather=rain"
    panel_of(client, url)  # counted and cached
    # Tagged through the UI: every cached view of the dataset is forgotten.
    ids = ",".join(str(i.pk) for i in rain[:2] + other[:3])
    response = client.post(
        f"/datasets/{dataset.pk}/selection",
        {"action": "tag", "name": "mixed", "ids": ids},
    )
    assert response.status_code == 302, response.status_code
    panel = panel_of(client, url)
    tag = re.search(
        r'data-facet="tag" data-value="mixed".*?class="facet-count">(\d+)<', panel, re.S
    )
    assert tag is not None and int(tag.group(1)) == 2


def test_values_of_one_key_stay_listed_and_open_when_on(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    panel = panel_of(client, f"/datasets/{dataset.pk}/?metadata.weather=rain&metadata.weather=fog")
    weather = Counter(i.metadata["weather"] for i in items)
    for value in ("rain", "fog"):
        row = re.search(
            rf'class="facet-row active"[^>]*data-value="weather={value}".*?facet-count">(\d+)<',
            panel,
            re.S,
        )
        assert row is not None and int(row.group(1)) == weather[value]
    assert re.search(r'<details open>\s*<summary><span class="mono">weather<', panel)


def test_a_group_that_is_on_counts_the_view_without_its_own_filter(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    speedy = {i.pk for i in items if i.metadata["speed"] >= 5}
    assert 0 < len(speedy) < len(items)
    panel = panel_of(
        client, f"/datasets/{dataset.pk}/?metadata.weather=rain&query=metadata.speed%20%3E%3D%205"
    )
    # fog is still offered, with the items it would add (fast, foggy ones), not active
    fog = {i.pk for i in items if i.metadata["weather"] == "fog" and i.pk in speedy}
    row = re.search(
        r'class="facet-row"[^>]*data-value="weather=fog".*?facet-count">(\d+)<', panel, re.S
    )
    assert fog and row is not None and int(row.group(1)) == len(fog)
    # other groups count the view itself
    rain = {i.pk for i in items if i.metadata["weather"] == "rain" and i.pk in speedy}
    assert label_counts(panel) == {
        label: len(items_with(label, rain)) for label in label_counts(panel)
    }


def test_a_group_that_is_on_has_only_its_part_counted_and_it_never_stands_for_the_whole(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    cache.clear()
    # Without its label filter, this view is the whole dataset: the sidebar counts the
    # dataset's labels for it, and nothing else of the dataset's.
    panel = panel_of(client, f"/datasets/{dataset.pk}/?label=car")
    everyone = {i.pk for i in items}
    assert label_counts(panel) == {
        label: len(items_with(label, everyone)) for label in label_counts(panel)
    }
    labels_only = frozenset({"labels"})
    part = facets.cached_summary(dataset, None, parts=labels_only)
    assert part is not None and part.parts == labels_only
    assert part.labels and part.metadata == [] and part.quality is None and part.slices == []
    # The part is never taken for the dataset's figures: its own page counts them all.
    assert facets.cached_summary(dataset, None) is None
    whole = facets.dataset_summary(dataset)
    assert whole.parts == facets.PARTS and whole.metadata and whole.quality is not None
    assert [(lc.label, lc.items) for lc in whole.labels] == [
        (lc.label, lc.items) for lc in part.labels
    ]
    # and the whole figures, once counted, serve a part as well
    served = facets.cached_summary(dataset, None, parts=labels_only)
    assert served is not None and served.parts == facets.PARTS
    with pytest.raises(ValueError, match="unknown summary parts"):
        facets.dataset_summary(dataset, parts=frozenset({"labels", "colour"}))


def test_a_large_view_is_sampled_and_marked(
    client: Client, dataset: Dataset, items: list[Item], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sampling, "SAMPLE_TARGET", 3)
    summary = facets.dataset_summary(
        dataset, Item.objects.filter(dataset=dataset, metadata__weather="rain"), refresh=True
    )
    rain = sum(1 for i in items if i.metadata["weather"] == "rain")
    assert rain > 3
    assert not summary.basis.exact and summary.basis.view
    assert summary.basis.item_count >= 4 and summary.basis.sampled <= rain
    panel = panel_of(client, f"/datasets/{dataset.pk}/?metadata.weather=rain&refresh=1")
    assert "≈" in basis_text(panel) and "sample" in basis_text(panel)


def test_a_view_the_sample_shows_large_skips_the_exact_read_and_a_small_one_is_exact(
    dataset: Dataset, items: list[Item], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A "large dataset" whose planner size makes the first sample read every block, so
    # what it finds is the view itself.
    monkeypatch.setattr(sampling, "SAMPLE_TARGET", 2)
    monkeypatch.setattr(sampling, "LARGE_DATASET", 0)
    monkeypatch.setattr(sampling.selectors, "planner_rows", lambda queryset: 2)
    exact_read = "LIMIT 3"  # the read that stops past SAMPLE_TARGET
    wide = Item.objects.filter(dataset=dataset)  # 12 items: 4 x the target or more
    blocks = sampling._blocks([i.pk for i in items])

    def basis_of(view: Any) -> tuple[sampling.Basis, list[int], bool]:
        with CaptureQueriesContext(connection) as queries:
            basis, _, params = sampling.sample_basis(dataset, view)
        read = any(exact_read in q["sql"] for q in queries.captured_queries)
        return basis, params[0], read

    # found in enough blocks: no exact read, the sample's figures
    monkeypatch.setattr(sampling, "SKIP_EXACT_BLOCKS", blocks)
    basis, ids, read = basis_of(wide)
    assert not read and not basis.exact
    assert basis.item_count == len(items) == basis.sampled
    assert sorted(ids) == sorted(i.pk for i in items)
    # the same rows from fewer blocks than that (a view whose items lie together): read
    monkeypatch.setattr(sampling, "SKIP_EXACT_BLOCKS", blocks + 1)
    assert basis_of(wide)[2]
    # a view the sample puts under 4 x the target: read, and counted exactly
    basis, ids, read = basis_of(Item.objects.filter(pk=items[0].pk))
    assert read and basis.exact and basis.item_count == 1 and ids == [items[0].pk]


def test_figures_counted_across_a_change_are_not_kept_and_a_refreshed_part_wins(
    dataset: Dataset, items: list[Item], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache.clear()
    counting = facets._summarise

    def changed_meanwhile(*args: Any) -> facets.Summary:
        found = counting(*args)
        facets.summary_forget(dataset)  # a tag added in the UI while this was counting
        return found

    monkeypatch.setattr(facets, "_summarise", changed_meanwhile)
    facets.dataset_summary(dataset)
    assert facets.cached_summary(dataset) is None  # not stored as the changed view's
    monkeypatch.setattr(facets, "_summarise", counting)

    whole = facets.dataset_summary(dataset)
    labels_only = frozenset({"labels"})
    Annotation.objects.filter(item__dataset=dataset, label="car").delete()
    refreshed = facets.dataset_summary(dataset, parts=labels_only, refresh=True)
    assert "car" in [lc.label for lc in whole.labels]
    assert "car" not in [lc.label for lc in refreshed.labels]
    served = facets.cached_summary(dataset, parts=labels_only)
    assert served is not None and served.parts == labels_only
    assert "car" not in [lc.label for lc in served.labels]


def test_a_search_counts_the_items_it_ranks(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    panel = panel_of(client, f"/datasets/{dataset.pk}/?text=car&metadata.weather=rain")
    rain = sum(1 for i in items if i.metadata["weather"] == "rain")
    assert basis_text(panel) == f"Filtered items: {rain} items"


def test_a_broken_query_leaves_the_sidebar_on_the_whole_dataset(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    response = client.get(f"/datasets/{dataset.pk}/?query=width%20%3E")
    assert response.status_code == 400
    panel = facet_panel(client, response)
    assert basis_text(panel) == f"Whole dataset: {len(items)} items"


def quality_counts(panel: str) -> dict[str, int]:
    rows = re.findall(
        r'data-facet="quality" data-value="([^"]+)".*?class="facet-count">(\d+)<', panel, re.S
    )
    return {key: int(n) for key, n in rows}


def test_quality_facets_count_the_view_and_filter_the_grid(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    blurry = {i.pk for i in items[::2]}
    Item.objects.filter(pk__in=blurry).update(quality_blur=3.0)
    rain = {i.pk for i in items if i.metadata["weather"] == "rain"}
    assert blurry & rain and rain - blurry

    assert quality_counts(panel_of(client, f"/datasets/{dataset.pk}/"))["blurry"] == len(blurry)
    panel = panel_of(client, f"/datasets/{dataset.pk}/?metadata.weather=rain")
    assert quality_counts(panel)["blurry"] == len(blurry & rain)

    # The facet filters the grid, and stays listed (on) with the count of its own group.
    page = client.get(f"/datasets/{dataset.pk}/?metadata.weather=rain&quality=blurry")
    shown = {int(i) for i in re.findall(r"/datasets/\d+/items/(\d+)\?", page.content.decode())}
    assert shown == blurry & rain
    panel = facet_panel(client, page)
    assert quality_counts(panel)["blurry"] == len(blurry & rain)
    assert re.search(r'facet-row active"[^>]*data-facet="quality" data-value="blurry"', panel)


# ------------------------------------------------------------------------ score facets


def test_a_quality_signal_is_a_histogram_facet_of_the_view(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    blur = {item.pk: float(5 * n) for n, item in enumerate(items)}  # 0, 5, ... 55
    for pk, value in blur.items():
        Item.objects.filter(pk=pk).update(quality_blur=value)
    rain = {i.pk for i in items if i.metadata["weather"] == "rain"}
    panel = panel_of(client, f"/datasets/{dataset.pk}/?metadata.weather=rain")
    # Listed closed: its histogram is asked for when it is opened.
    closed = r'<details class="score-facet" data-score-facet="quality.blur"[^>]*"\s*>'
    assert re.search(closed, panel)
    bins = histogram_of(client, score_entry_url(panel, "quality.blur"))
    edges = [0.0, 5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120]
    expected = [
        sum(1 for pk in rain if low <= blur[pk] < high)
        for low, high in zip(edges, [*edges[1:], float("inf")], strict=True)
    ]
    assert [count for _, count, _, _ in bins] == expected
    assert [text for text, _, _, _ in bins][3:5] == ["[20, 40)", "[40, 80)"]


def test_a_bucket_narrows_the_grid_to_its_range_and_the_view_saves(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    blur = {item.pk: float(5 * n) for n, item in enumerate(items)}
    for pk, value in blur.items():
        Item.objects.filter(pk=pk).update(quality_blur=value)
    panel = panel_of(client, f"/datasets/{dataset.pk}/")
    bins = histogram_of(client, score_entry_url(panel, "quality.blur"))
    text, count, link, on = bins[3]
    assert text == "[20, 40)"
    assert not on and count == 4
    in_range = {pk for pk, v in blur.items() if 20 <= v < 40}
    assert grid_ids(client, link) == in_range
    # The facet stays listed, open, with its bucket on and the others still counted.
    page = client.get(link)
    panel = facet_panel(client, page)
    assert re.search(r'data-field="quality.blur" open>', panel)
    again = histogram_of(client, score_entry_url(panel, "quality.blur"))
    assert [c for _, c, _, _ in again] == [c for _, c, _, _ in bins]
    assert [on for _, _, _, on in again] == [i == 3 for i in range(len(again))]
    # A second bucket adds its items (any of the ranges); clicking one again takes it off.
    both = again[4][2]
    assert grid_ids(client, both) == {pk for pk, v in blur.items() if 20 <= v < 80}
    # Saved as a dynamic slice: the query holds the bucket's condition.
    view = link.split("?", 1)[1]
    response = client.post(
        f"/datasets/{dataset.pk}/slices/from-view", {"name": "soft", "view": view}
    )
    assert response.status_code == 302, response.content
    saved = Slice.objects.get(name="soft")
    assert saved.query == "(quality.blur >= 20 AND quality.blur < 40)"
    assert set(slice_items(saved).values_list("pk", flat=True)) == in_range


def test_a_score_histogram_of_a_large_view_is_sampled_and_marked(
    client: Client, dataset: Dataset, items: list[Item], monkeypatch: pytest.MonkeyPatch
) -> None:
    Item.objects.filter(dataset=dataset).update(quality_blur=30.0)
    monkeypatch.setattr(sampling, "SAMPLE_TARGET", 3)
    panel = panel_of(client, f"/datasets/{dataset.pk}/?refresh=1")
    response = client.get(score_entry_url(panel, "quality.blur") + "&refresh=1")
    body = response.content.decode()
    assert response.status_code == 200
    assert 'class="facet-count">≈' in body and "sample" in body


def test_bad_score_parameters_are_a_400_naming_them(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    for name, value in (
        ("score.quality.blur", "high"),
        ("score.quality.blur", "40,20"),
        ("score.quality.blur OR true", "0,1"),
    ):
        response = client.get(f"/datasets/{dataset.pk}/", {name: value})
        assert response.status_code == 400, (name, value)
        assert name in response.content.decode()
    response = client.get(
        f"/datasets/{dataset.pk}/score-facet", {"facet": "quality.blur", "field": "width"}
    )
    assert response.status_code == 404


def test_a_slice_page_counts_its_score_facets_over_the_slice(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    blur = {item.pk: float(5 * n) for n, item in enumerate(items)}
    for pk, value in blur.items():
        Item.objects.filter(pk=pk).update(quality_blur=value)
    chosen = items[2:9]  # blur 10 to 40
    found, _ = slice_create_from_items(
        dataset=dataset, user=None, name="some", reference_ids=[i.reference_id for i in chosen]
    )
    panel = panel_of(client, f"/datasets/{dataset.pk}/slices/{found.pk}/")
    url = score_entry_url(panel, "quality.blur")
    assert url.startswith(f"/datasets/{dataset.pk}/slices/{found.pk}/score-facet?")
    bins = {text: (count, link) for text, count, link, _ in histogram_of(client, url)}
    assert bins["[10, 20)"][0] == 2 and bins["[20, 40)"][0] == 4 and bins["[40, 80)"][0] == 1
    link = bins["[20, 40)"][1]
    assert link.startswith(f"/datasets/{dataset.pk}/slices/{found.pk}/?")
    assert grid_ids(client, link) == {i.pk for i in chosen if 20 <= blur[i.pk] < 40}


def test_a_hand_written_range_is_on_in_its_facet_and_its_chip_takes_it_off(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    import html

    Item.objects.filter(dataset=dataset).update(quality_blur=30.0)
    url = f"/datasets/{dataset.pk}/?score.quality.blur=20.0%2C40.00"
    page = client.get(url)
    body = page.content.decode()
    chip = re.search(r'quality\.blur \[20, 40\)<a href="([^"]+)"', body)
    assert chip is not None
    assert "score." not in html.unescape(chip.group(1))
    bins = histogram_of(client, score_entry_url(facet_panel(client, page), "quality.blur"))
    on = [(text, link) for text, _, link, active in bins if active]
    assert [text for text, _ in on] == ["[20, 40)"]
    assert "score." not in on[0][1]  # clicking it again takes the hand-written range off
