"""Similarity search in a real browser: a text search, "find similar" on a tile, and a
search by an image file, each within the current filters and with scores shown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from curation.jobs import job_run
from curation.models import Dataset, Item
from embeddings.services import embed_job_start
from tests.browser.support import log_in, screenshot
from tests.embedding_factories import tiny_clip_fixture  # noqa: F401
from tests.ui_factories import scene


@pytest.fixture
def embedded(scenes: list[Item], dataset: Dataset, alice: User, tiny_clip: str) -> list[Item]:
    job = job_run(job_id=embed_job_start(dataset=dataset, user=alice, enqueue=False).pk)
    assert job.status == "succeeded", job.message
    return scenes


def scores(page: Any) -> list[float]:
    return [
        float(s)
        for s in page.locator(".tile-score").evaluate_all("ss => ss.map(s => s.dataset.score)")
    ]


def distances(page: Any) -> list[str]:
    """The distances as the tiles show them ("#rank · distance")."""
    return [t.split(" · ")[1] for t in page.locator(".tile-score").all_inner_texts()]


def test_a_text_search_within_a_filter(
    page: Any, alice: User, dataset: Dataset, embedded: list[Item]
) -> None:
    log_in(page, alice, "alice-password-1")
    page.goto(f"/datasets/{dataset.pk}/?metadata.weather=rain")
    assert page.locator("[data-testid=random-weights-banner]").is_visible()
    page.fill("input[name=text]", "a yellow car in the rain")
    page.click(".searchbar button[type=submit]")
    page.wait_for_url("**text=**")
    assert "metadata.weather=rain" in page.url
    found = scores(page)
    assert len(found) == 12 and found == sorted(found, reverse=True)
    shown = distances(page)
    assert [float(d) for d in shown] == sorted(float(d) for d in shown)
    assert len(set(shown)) == len(set(found))  # different scores read differently
    assert page.locator("[data-testid=random-scores]").is_visible()
    ids = page.locator(".tile").evaluate_all("ts => ts.map(t => Number(t.dataset.id))")
    assert set(ids) == {i.pk for i in embedded if i.metadata["weather"] == "rain"}
    screenshot(page, "search-text")


def test_find_similar_from_a_tile(
    page: Any, alice: User, dataset: Dataset, embedded: list[Item]
) -> None:
    query = embedded[7]
    log_in(page, alice, "alice-password-1")
    page.goto(f"/datasets/{dataset.pk}/")
    page.locator(f".tile[data-id='{query.pk}'] a[data-similar]").click()
    page.wait_for_url(f"**like={query.pk}**")
    first = page.locator(".tile").first
    assert first.get_attribute("data-id") == str(query.pk)
    assert first.locator(".tile-query-badge").is_visible()
    assert len(scores(page)) == len(embedded) - 1
    screenshot(page, "search-similar")


def test_a_search_by_image_file(
    page: Any, alice: User, dataset: Dataset, embedded: list[Item], tmp_path: Path
) -> None:
    data, _, _ = scene(11)
    picture = tmp_path / "query.jpg"
    picture.write_bytes(data)
    log_in(page, alice, "alice-password-1")
    page.goto(f"/datasets/{dataset.pk}/?label=car")
    page.set_input_files("#image-search input[type=file]", str(picture))
    page.wait_for_url("**image=**")
    assert "label=car" in page.url
    cars = {i.pk for i in embedded if i.annotations.filter(label="car").exists()}
    ids = page.locator(".tile").evaluate_all("ts => ts.map(t => Number(t.dataset.id))")
    assert set(ids) == cars
    assert page.locator(".chip-search", has_text="similar to the uploaded image").is_visible()
