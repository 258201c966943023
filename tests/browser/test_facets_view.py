"""In a real browser: the facet sidebar follows the view (its counts are the filtered
items'), two values of one key match either, the key stays open, and the view is saved
as a dynamic slice that holds what the grid showed."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from django.contrib.auth.models import User

from curation.itemsets import slice_items
from curation.models import Annotation, Dataset, Item, Slice
from tests.browser.support import log_in, screenshot


def shown_ids(page: Any) -> set[int]:
    return {
        int(i) for i in page.locator(".tile").evaluate_all("tiles => tiles.map(t => t.dataset.id)")
    }


def facet_count(page: Any, facet: str, value: str) -> int:
    row = page.locator(f"a[data-facet={facet}][data-value='{value}'] .facet-count")
    return int(re.sub(r"\D", "", row.inner_text()))


def test_facets_count_the_view_and_the_view_is_saved(
    page: Any, bob: User, dataset: Dataset, scenes: list[Item]
) -> None:
    log_in(page, bob, "bob-password-1")
    page.goto(f"/datasets/{dataset.pk}/")
    page.locator("[data-testid=facet-basis]").wait_for()
    assert f"{len(scenes)} items" in page.locator("[data-testid=facet-basis]").inner_text()

    page.click("a[data-facet=metadata][data-value='weather=rain']")
    page.wait_for_url("**metadata.weather=rain**")
    page.click("a[data-facet=metadata][data-value='weather=fog']")
    page.wait_for_url("**metadata.weather=fog**")
    chosen = {i.pk for i in scenes if i.metadata["weather"] in ("rain", "fog")}
    assert shown_ids(page) == chosen  # rain or fog

    basis = page.locator("[data-testid=facet-basis]")
    basis.wait_for()
    assert f"This view: {len(chosen)} items" in basis.inner_text()
    cars = Annotation.objects.filter(label="car", item_id__in=chosen)
    assert facet_count(page, "label", "car") == cars.values("item_id").distinct().count()
    weather = Counter(i.metadata["weather"] for i in scenes)
    assert facet_count(page, "metadata", "weather=fog") == weather["fog"]
    assert page.locator("details[open] summary", has_text="weather").is_visible()
    screenshot(page, "grid-facets-view")

    page.click(".save-view summary")
    page.fill(".save-view-form input[name=name]", "wet days")
    page.click(".save-view-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/slices/\d+/$"))
    saved = Slice.objects.get(name="wet days")
    assert set(slice_items(saved).values_list("pk", flat=True)) == chosen
    page.locator("[data-testid=facet-basis]").wait_for()
    assert (
        f"This view: {len(chosen)} items" in page.locator("[data-testid=facet-basis]").inner_text()
    )


def test_a_uniqueness_bucket_narrows_the_grid_to_its_range(
    page: Any, bob: User, dataset: Dataset, scenes: list[Item]
) -> None:
    from tests.embedding_factories import planted_scores

    values = [round(n / len(scenes), 4) for n in range(len(scenes))]  # 0 ... 0.97
    planted_scores(dataset, scenes, values, name="clip")
    in_range = {i.pk for i, v in zip(scenes, values, strict=True) if 0.8 <= v < 0.9}
    assert 0 < len(in_range) < len(scenes)
    log_in(page, bob, "bob-password-1")
    page.goto(f"/datasets/{dataset.pk}/")
    page.locator("[data-testid=facet-basis]").wait_for()
    facet = page.locator("details.score-facet[data-score-facet=uniqueness]")
    assert facet.get_attribute("open") is None  # closed: nothing counted yet
    assert facet.locator("[data-testid=score-histogram]").count() == 0
    facet.locator("summary").click()
    bucket = facet.locator("a.score-bin[data-value='[0.8, 0.9)']")
    bucket.wait_for()
    assert int(bucket.locator(".facet-count").inner_text()) == len(in_range)

    bucket.click()
    page.wait_for_url("**score.uniqueness**")
    assert shown_ids(page) == in_range
    # The facet is open again with its bucket on; a chip says what filters the grid.
    on = page.locator("details.score-facet[data-score-facet=uniqueness][open]").locator(
        "a.score-bin.active[data-value='[0.8, 0.9)']"
    )
    on.wait_for()
    assert page.locator(".chip", has_text="uniqueness").count() >= 1
    on.scroll_into_view_if_needed()
    screenshot(page, "grid-score-facet")

    page.click(".save-view summary")
    page.fill(".save-view-form input[name=name]", "most unique")
    page.click(".save-view-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/slices/\d+/$"))
    saved = Slice.objects.get(name="most unique")
    assert saved.query == '(uniqueness["clip"] >= 0.8 AND uniqueness["clip"] < 0.9)'
    assert set(slice_items(saved).values_list("pk", flat=True)) == in_range
    # The slice's page counts it too; nothing may still be asking when the test ends.
    page.locator("[data-testid=facet-basis]").wait_for()
    page.wait_for_load_state("networkidle")
