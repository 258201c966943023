"""The stats page and the facet counts behind the grid: server-rendered SVG charts,
cached figures, and estimates from a sample (marked as such) for large datasets."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db.models.expressions import RawSQL
from django.test import Client

from curation import facets, sampling
from curation.models import Annotation, Dataset, Item
from tests.ui_factories import facet_panel, populate

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    cache.clear()


@pytest.fixture
def client(alice: User) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def items(dataset: Dataset) -> list[Item]:
    return populate(dataset, 12)


def test_it_charts_labels_boxes_per_image_and_metadata(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    response = client.get(f"/datasets/{dataset.pk}/stats")
    assert response.status_code == 200
    body = response.content.decode()
    for label in set(Annotation.objects.values_list("label", flat=True)):
        count = Annotation.objects.filter(label=label).count()
        assert f"<title>{label}: {count}</title>" in body
    per_item = [i.annotations.count() for i in items]
    for boxes in set(per_item):
        assert f"<title>{boxes}: {per_item.count(boxes)}</title>" in body
    assert 'aria-label="Metadata weather"' in body
    assert 'aria-label="Metadata camera.side"' in body
    assert "<title>rain: 4</title>" in body
    assert "Exact, over all 12 items" in body


def test_it_shows_embedding_coverage_per_model(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    import numpy as np

    from embeddings import vectors as vec
    from embeddings.models import EmbeddingModel, ModelKind
    from embeddings.services import dataset_default_set

    model = EmbeddingModel.objects.create(
        name="mine", dataset=dataset, kind=ModelKind.CUSTOM, dimension=4
    )
    dataset_default_set(dataset=dataset, model=model)
    vec.vectors_write(
        model=model,
        dataset=dataset,
        item_ids=[i.pk for i in items[:3]],
        vectors=vec.normalize(np.eye(4, dtype=np.float32)[:3] + 0.1),
    )
    body = client.get(f"/datasets/{dataset.pk}/stats").content.decode()
    assert "<strong>mine</strong>" in body
    assert "3 · 25.0%" in body


def test_figures_come_from_the_cache_until_refreshed(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    url = f"/datasets/{dataset.pk}/stats"
    assert "Exact, over all 12 items" in client.get(url).content.decode()
    populate(dataset, 14)  # two more items
    assert "Exact, over all 12 items" in client.get(url).content.decode()
    assert "Exact, over all 14 items" in client.get(url + "?refresh=1").content.decode()


def test_a_large_dataset_is_summarised_from_a_sample_with_a_marker(
    client: Client, dataset: Dataset, items: list[Item], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sampling, "SAMPLE_TARGET", 4)
    stats = client.get(f"/datasets/{dataset.pk}/stats").content.decode()
    assert re.search(
        r'<span class="approx">≈</span> Estimated from a sample of \d+ of about \d+ items', stats
    )
    grid = client.get(f"/datasets/{dataset.pk}/").content.decode()
    assert 'class="approx"' in grid
    assert "-item sample" in grid


def test_sampled_counts_are_scaled_to_the_whole_dataset() -> None:
    from django.utils import timezone

    sampled = sampling.Basis(
        exact=False, item_count=1_000_000, sampled=20_000, computed_at=timezone.now()
    )
    assert sampled.scale == 50
    exact = sampling.Basis(exact=True, item_count=12, sampled=12, computed_at=timezone.now())
    assert exact.scale == 1


def test_changes_made_in_the_ui_show_at_once(
    client: Client, bob: User, dataset: Dataset, items: list[Item]
) -> None:
    before = facet_panel(client, client.get(f"/datasets/{dataset.pk}/"))  # now cached
    assert 'data-value="fresh"' not in before
    curator = Client()
    curator.force_login(bob)
    curator.post(
        f"/datasets/{dataset.pk}/selection",
        {"action": "tag", "ids": str(items[0].pk), "name": "fresh"},
    )
    assert 'data-facet="tag" data-value="fresh"' in facet_panel(
        client, client.get(f"/datasets/{dataset.pk}/")
    )


def test_metadata_numbers_beyond_float8_leave_the_pages_working(
    client: Client, dataset: Dataset
) -> None:
    # jsonb holds numbers float8 cannot (10**400, 1e-400); one such item must not take the
    # grid and the stats page down for everyone.
    for index, text in enumerate(["1e400", "-1e400", "1e-400", "5", "7"]):
        Item.objects.create(dataset=dataset, reference_id=f"n{index}", metadata={"n": 0})
        Item.objects.filter(reference_id=f"n{index}").update(
            metadata=RawSQL("jsonb_build_object('n', %s::numeric)", [text])
        )
    # One distinct value far from 1: the histogram's one bucket must not need a width.
    for index in range(2):
        Item.objects.create(dataset=dataset, reference_id=f"big{index}", metadata={"big": 1e20})
    stats = client.get(f"/datasets/{dataset.pk}/stats")
    assert stats.status_code == 200
    summary = facets.dataset_summary(dataset)
    numbers = {key.key: key for key in summary.metadata}
    assert (numbers["n"].minimum, numbers["n"].maximum) == (0.0, 7.0)
    assert sum(b.count for b in numbers["n"].bins) == 3
    assert [b.count for b in numbers["big"].bins] == [2]
    assert client.get(f"/datasets/{dataset.pk}/").status_code == 200


def test_it_charts_image_quality_and_each_bar_opens_its_items(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    blurry = [i.pk for i in items[:3]]
    Item.objects.filter(pk__in=blurry).update(quality_blur=12.5)
    Item.objects.filter(pk__in=blurry[:1]).update(quality_uniform=True)
    body = client.get(f"/datasets/{dataset.pk}/stats").content.decode()

    assert 'aria-label="Image quality"' in body
    assert "<title>blurry: 3</title>" in body
    assert "<title>blank / near-uniform: 1</title>" in body
    # The blur histogram's 10-20 bucket holds the three; its column opens the grid on it.
    assert 'aria-label="Quality quality.blur"' in body
    assert "<title>10: 3</title>" in body
    links = re.findall(r'<a href="([^"]+)" data-testid="chart-link"', body)
    bucket = next(u for u in links if "quality.blur+%3E%3D+10+AND+quality.blur+%3C+20" in u)
    grid = client.get(bucket.replace("&amp;", "&")).content.decode()
    shown = {int(i) for i in re.findall(r"/datasets/\d+/items/(\d+)\?", grid)}
    assert shown == set(blurry)
    # Every item has its signals (populate ingests through media_process): no job offered.
    assert "Compute image quality" not in body
    Item.objects.filter(pk=items[5].pk).update(quality_brightness=None)
    cache.clear()
    body = client.get(f"/datasets/{dataset.pk}/stats").content.decode()
    assert "Compute image quality for 1 older item" in body


def test_a_curator_starts_the_quality_job_and_a_viewer_may_not(
    dataset: Dataset, items: list[Item], bob: User, victor: User, charlie: User
) -> None:
    url = f"/datasets/{dataset.pk}/quality/jobs"
    viewer = Client()
    viewer.force_login(victor)
    assert viewer.post(url).status_code == 403
    stranger = Client()
    stranger.force_login(charlie)
    assert stranger.post(url).status_code == 404
    curator = Client()
    curator.force_login(bob)
    response = curator.post(url)
    assert response.status_code == 302
    assert dataset.jobs.filter(kind="quality").count() == 1


def test_metadata_figures_give_each_key_its_kind_top_values_and_histogram(
    dataset: Dataset,
) -> None:
    # weather: rain x3, fog x2, snow x1; n: 0..16 (17 values, 16 buckets: 16 falls in the
    # last); id: one distinct text per item, past MAX_CATEGORIES; flag: booleans; cam:
    # c0-c12 three times each, c13 twice (the top 12 leave out c13 and, by text, c9).
    weather = ["rain"] * 3 + ["fog"] * 2 + ["snow"]
    for i in range(facets.MAX_CATEGORIES + 1):
        metadata: dict[str, object] = {"id": f"x{i}", "flag": i % 3 == 0, "cam": f"c{i % 14}"}
        if i < len(weather):
            metadata["weather"] = weather[i]
        if i <= 16:
            metadata["n"] = i
        Item.objects.create(dataset=dataset, reference_id=f"m{i}", metadata=metadata)
    keys = {k.key: k for k in facets.dataset_summary(dataset).metadata}
    assert list(keys) == ["cam", "flag", "id", "n", "weather"]
    top = ["c0", "c1", "c10", "c11", "c12", "c2", "c3", "c4", "c5", "c6", "c7", "c8"]
    assert [v.value for v in keys["cam"].values] == top
    assert {k: keys[k].kind for k in keys} == {
        "cam": "category",
        "flag": "category",
        "id": "many",
        "n": "number",
        "weather": "category",
    }
    assert [(v.value, v.count) for v in keys["weather"].values] == [
        ("rain", 3),
        ("fog", 2),
        ("snow", 1),
    ]
    assert [(v.value, v.count) for v in keys["flag"].values] == [("false", 27), ("true", 14)]
    assert keys["id"].values == [] and keys["id"].distinct == facets.MAX_CATEGORIES + 1
    assert (keys["n"].minimum, keys["n"].maximum) == (0.0, 16.0)
    assert [b.count for b in keys["n"].bins] == [1] * 15 + [2]
    assert keys["weather"].bins == []


def test_a_key_of_mixed_types_counts_each_value_once_and_true_as_one_text(
    dataset: Dataset,
) -> None:
    # mixed: 1, 1, 2 (numbers), "two", true, "true", "true" (texts: 3 distinct, true and
    # "true" shown as one value); size: 1.5 and 1.50 are one number (jsonb equality)
    values: list[object] = [1, 1, 2, "two", True, "true", "true"]
    for i, value in enumerate(values):
        Item.objects.create(dataset=dataset, reference_id=f"x{i}", metadata={"mixed": value})
    for i, text in enumerate(["1.5", "1.50"]):  # jsonb keeps each as written
        Item.objects.filter(reference_id=f"x{i}").update(
            metadata=RawSQL("metadata || jsonb_build_object('size', %s::numeric)", [text])
        )
    keys = {k.key: k for k in facets.dataset_summary(dataset).metadata}
    mixed = keys["mixed"]
    assert (mixed.present, mixed.kind, mixed.distinct) == (7, "category", 3)
    assert [(v.value, v.count) for v in mixed.values] == [("true", 3), ("two", 1)]
    size = keys["size"]
    assert (size.present, size.kind, size.minimum, size.maximum) == (2, "number", 1.5, 1.5)
    assert [b.count for b in size.bins] == [2]
