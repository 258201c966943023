"""Selection into slices in a real browser: shift-click a range of tiles, create a slice,
open it, freeze a version and download it as COCO."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User

from curation.models import Dataset, Item, Slice, SliceVersion
from tests.browser.support import log_in, screenshot


def test_shift_click_a_range_then_create_a_slice(
    page: Any, bob: User, dataset: Dataset, scenes: list[Item]
) -> None:
    log_in(page, bob, "bob-password-1")
    page.goto(f"/datasets/{dataset.pk}/")
    tiles = page.locator(".tile")
    tiles.nth(2).click()
    tiles.nth(6).click(modifiers=["Shift"])
    tiles.nth(9).click()
    assert page.locator("[data-sel-count]").inner_text() == "6 selected"
    page.fill("#selection-form input[name=name]", "hard cases")
    screenshot(page, "grid-selection")
    page.click("#selection-form button[value=slice_create]")
    page.wait_for_load_state()
    assert (
        page.locator(".message-success").inner_text() == "Created slice “hard cases” with 6 items."
    )
    created = Slice.objects.get(dataset=dataset, name="hard cases")
    assert sorted(created.items.values_list("pk", flat=True)) == [
        scenes[i].pk for i in (2, 3, 4, 5, 6, 9)
    ]
    # Creating the slice forgets the cached facet counts, so the sidebar is counted anew
    # and arrives by htmx after the page: wait for it (is_visible() does not wait).
    page.locator("a[data-facet=slice][data-value='hard cases']").wait_for(state="visible")


def test_select_all_matching_tags_beyond_the_page(
    page: Any, bob: User, dataset: Dataset, scenes: list[Item]
) -> None:
    log_in(page, bob, "bob-password-1")
    # The view's count arrives by htmx after the page, and a quick click once beat it (the
    # label then said "All matching items selected"). Its request is held here until
    # after the click, so the late count is what is tested, every time.
    held: list[Any] = []
    page.route("**/count?*", lambda route: held.append(route))
    page.goto(f"/datasets/{dataset.pk}/?metadata.weather=fog&limit=5")
    page.locator(".tile").first.click()
    page.click("[data-select-all]")
    assert page.locator("[data-sel-count]").inner_text() == "All matching items selected"
    assert len(held) == 1
    held[0].continue_()
    page.wait_for_function(
        "document.querySelector('[data-sel-count]').textContent === 'All 12 items selected'"
    )
    page.fill("#selection-form input[name=name]", "foggy")
    page.click("#selection-form button[value=tag]")
    page.wait_for_load_state()
    foggy = {i.pk for i in scenes if i.metadata["weather"] == "fog"}
    assert set(dataset.tags.get(name="foggy").items.values_list("pk", flat=True)) == foggy


def test_open_a_slice_freeze_a_version_and_export_coco(
    page: Any, bob: User, dataset: Dataset, scenes: list[Item], tmp_path: Path
) -> None:
    from curation.services import slice_create

    picked, _ = slice_create(
        dataset=dataset,
        user=bob,
        name="to label",
        reference_ids=[i.reference_id for i in scenes[:5]],
    )
    log_in(page, bob, "bob-password-1")
    page.goto(f"/datasets/{dataset.pk}/")
    page.click("a[aria-label='Open slice to label']")
    page.wait_for_url(f"**/slices/{picked.pk}/")
    assert page.locator(".tile").count() == 5
    page.fill("input[name=note]", "first pass")
    page.click("text=Freeze version")
    page.wait_for_load_state()
    assert page.locator(".message-success").inner_text().startswith("Froze version 1: 5 items")
    assert SliceVersion.objects.get(slice=picked).item_count == 5
    screenshot(page, "slice")

    with page.expect_download() as waiting:
        page.locator("tr[data-version='1'] a[data-export=coco]").click()
    download = waiting.value
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    coco = json.loads(saved.read_text())
    assert sorted(image["file_name"] for image in coco["images"]) == [
        f"{i.reference_id}.jpg" for i in scenes[:5]
    ]
    assert {c["name"] for c in coco["categories"]} <= {"car", "person", "bicycle", "traffic light"}
    assert len(coco["annotations"]) == sum(i.annotations.count() for i in scenes[:5])
