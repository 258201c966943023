"""The Select tab's builder in a real browser: a refusal names its field, Preview shows each
strategy's part and the picks, Create makes the slice and its frozen version."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from curation.models import Dataset, Slice
from tests.browser.support import axe_violations, describe_violations, log_in, screenshot
from tests.embedding_factories import custom_model, items_with_vectors
from tests.test_selection import DIM, clusters


def test_a_curator_previews_and_creates_a_selection(page: Any, bob: User, dataset: Dataset) -> None:
    points, _ = clusters()
    items_with_vectors(dataset, custom_model(dataset, DIM), points)
    log_in(page, bob, "bob-password-1")
    page.goto(f"/datasets/{dataset.pk}/")
    page.get_by_role("link", name="Select").click()
    page.wait_for_load_state()

    page.check("[data-testid=use-diversity]")
    page.fill("[data-testid=budget]", "9999")
    page.click("button[data-action=preview]")
    error = page.locator("[data-testid=selection-error]")
    error.wait_for(state="visible")
    assert error.inner_text().startswith("budget: is 9999, but the pool has only 275 items")

    page.fill("[data-testid=budget]", "5")
    page.click("button[data-action=preview]")
    tiles = page.locator("[data-testid=preview-tiles] a")
    tiles.nth(4).wait_for()
    assert tiles.count() == 5
    rows = page.locator("[data-testid=contributions] tbody tr td:first-child").all_inner_texts()
    assert "diversity" in rows
    assert "5 items would be selected" in page.inner_text("[data-testid=selection-status]")
    screenshot(page, "selection-builder")
    found = axe_violations(page)
    assert not found, describe_violations(found)

    page.fill("[data-testid=selection-name]", "batch-1")
    page.click("button[data-action=create]")
    page.get_by_text("Created slice batch-1 (5 items, version 1).").wait_for()
    made = Slice.objects.get(dataset=dataset, name="batch-1")
    assert made.memberships.count() == 5 and made.versions.get().item_count == 5
