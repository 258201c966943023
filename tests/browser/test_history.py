"""The item page's History panel in a real browser: who changed an annotation, and a
curator's Revert that puts it back and is listed in turn."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from curation.history import change_context
from curation.models import Annotation, Dataset
from tests.api_helpers import add_items, box
from tests.browser.support import log_in, screenshot


def test_a_curator_reverts_a_change_from_the_item_page(
    page: Any, alice: User, bob: User, dataset: Dataset
) -> None:
    ids = add_items(dataset, {"reference_id": "h", "annotations": [box(id="h-1")]})
    with change_context(user=bob, source="api"):
        add_items(dataset, {"reference_id": "h", "annotations": [box(id="h-1", label="bus")]})
    log_in(page, alice, "alice-password-1")
    page.goto(f"/datasets/{dataset.pk}/items/{ids['h']}")
    panel = page.get_by_test_id("item-history")
    newest = panel.locator("li").first
    assert "by bob via api" in newest.inner_text()
    assert "car (box) at 10,10 20x20 → bus (box) at 10,10 20x20" in newest.inner_text()
    assert panel.get_by_role("button", name="Revert").count() == 1

    newest.get_by_role("button", name="Revert").click()
    page.wait_for_url(f"**/items/{ids['h']}")
    assert page.locator(".messages").get_by_text("reverted").is_visible()
    assert Annotation.objects.get(annotation_id="h-1").label == "car"
    reverted = panel.locator("li").first
    assert "by alice via revert" in reverted.inner_text()
    assert "bus (box) at 10,10 20x20 → car (box) at 10,10 20x20" in reverted.inner_text()
    panel.scroll_into_view_if_needed()
    screenshot(page, "item-history")
