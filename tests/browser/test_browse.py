"""Browsing in a real browser: log in, filter by a label facet and by a query, fix a query
error shown inline, move with the keyboard, open an item and toggle its annotations; boxes
named on the grid and one confidence threshold for the grid and the item page."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from curation.models import Annotation, Dataset, Item, Model, Prediction
from tests.browser.support import log_in, screenshot
from tests.ui_factories import LONG_DESCRIPTION


def shown_ids(page: Any) -> list[int]:
    return [
        int(i) for i in page.locator(".tile").evaluate_all("tiles => tiles.map(t => t.dataset.id)")
    ]


def test_logging_in_lands_on_the_datasets_page(page: Any, alice: User, scenes: list[Item]) -> None:
    page.goto("/")
    assert "/login/" in page.url
    screenshot(page, "login")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "wrong password")
    page.click("button[type=submit]")
    assert page.locator(".form-error").is_visible()
    log_in(page, alice, "alice-password-1")
    assert page.get_by_role("link", name="street scenes").is_visible()
    screenshot(page, "datasets")


def test_filtering_by_a_label_facet_and_by_a_query(
    page: Any, alice: User, dataset: Dataset, scenes: list[Item]
) -> None:
    log_in(page, alice, "alice-password-1")
    page.goto(f"/datasets/{dataset.pk}/")
    assert len(shown_ids(page)) == 36
    screenshot(page, "grid")

    page.click("a[data-facet=label][data-value=person]")
    page.wait_for_url("**label=person**")
    with_person = sorted(
        set(Annotation.objects.filter(label="person").values_list("item_id", flat=True))
    )
    assert shown_ids(page) == with_person
    assert page.locator(".chip", has_text="label: person").is_visible()

    page.fill("#query-input", "metadata.speed >= 60")
    page.click(".querybar button[type=submit]")
    page.wait_for_url("**query=**")
    fast = [i.pk for i in scenes if i.pk in with_person and i.metadata["speed"] >= 60]
    assert fast and shown_ids(page) == fast
    assert "label=person" in page.url  # the facet stays on: the URL holds the whole view

    page.goto(page.url)  # the same link, opened again, shows the same view
    assert shown_ids(page) == fast


def test_a_query_error_is_shown_where_it_is_and_fixed(
    page: Any, alice: User, dataset: Dataset, scenes: list[Item]
) -> None:
    log_in(page, alice, "alice-password-1")
    page.goto(f"/datasets/{dataset.pk}/")
    page.fill("#query-input", 'metadata.weather = = "rain"')
    error = page.locator("[data-testid=query-error]")
    error.wait_for()  # checked while typing, before submitting
    assert "column 20" in error.inner_text()
    assert page.locator("[data-testid=query-error-mark]").inner_text() == "="
    page.click(".querybar button[type=submit]")
    page.wait_for_url("**query=**")
    assert page.locator(".querybar.has-error").is_visible()
    assert page.locator("[data-testid=query-error-mark]").is_visible()
    screenshot(page, "grid-query-error")

    page.fill("#query-input", 'metadata.weather = "rain"')
    page.locator("[data-testid=query-error]").wait_for(state="detached")
    page.click(".querybar button[type=submit]")
    page.wait_for_load_state()
    assert page.locator("[data-testid=query-error]").count() == 0
    assert shown_ids(page) == [i.pk for i in scenes if i.metadata["weather"] == "rain"]


def test_the_keyboard_moves_selects_and_opens(
    page: Any, bob: User, dataset: Dataset, scenes: list[Item]
) -> None:
    log_in(page, bob, "bob-password-1")
    page.goto(f"/datasets/{dataset.pk}/")
    page.locator(".tile").first.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press(" ")
    page.keyboard.press("ArrowRight")
    page.keyboard.press(" ")
    selected = page.locator(".tile.selected")
    assert selected.evaluate_all("tiles => tiles.map(t => Number(t.dataset.id))") == [
        scenes[1].pk,
        scenes[2].pk,
    ]
    assert page.locator("[data-sel-count]").inner_text() == "2 selected"
    page.keyboard.press("Escape")
    assert page.locator(".tile.selected").count() == 0
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/items/{scenes[2].pk}**")


def test_an_item_shows_its_annotations_and_toggles_them_by_label(
    page: Any, alice: User, dataset: Dataset, scenes: list[Item]
) -> None:
    item = scenes[5]
    log_in(page, alice, "alice-password-1")
    page.goto(f"/datasets/{dataset.pk}/?label=car")
    page.locator(f".tile[data-id='{item.pk}'] a[aria-label^=Open]").click()
    page.wait_for_url(f"**/items/{item.pk}?label=car")
    labels = sorted(set(Annotation.objects.filter(item=item).values_list("label", flat=True)))
    gt = page.locator("#item-overlay .shape-gt")
    assert gt.count() == Annotation.objects.filter(item=item).count()
    top = page.locator("#item-overlay .shape-pred").last  # drawn last, so on top
    top.hover()
    tip = page.locator("#shape-tip")
    assert tip.is_visible()
    assert (
        tip.inner_text()
        == f"{top.get_attribute('data-label')} (prediction){top.get_attribute('data-confidence')}"
    )
    screenshot(page, "item")

    label = labels[0]
    page.locator(f"input[data-toggle-label='{label}'][data-toggle-source=gt]").uncheck()
    hidden = page.locator(f"#item-overlay .shape-gt[data-label='{label}']")
    assert hidden.count() >= 1
    assert all(not hidden.nth(i).is_visible() for i in range(hidden.count()))
    others = page.locator("#item-overlay .shape-gt:not(.off)")
    assert others.count() == gt.count() - hidden.count()
    page.locator(f"input[data-toggle-label='{label}'][data-toggle-source=gt]").check()
    assert hidden.first.is_visible()

    page.keyboard.press("ArrowRight")  # the next car in the same view
    cars = [i.pk for i in scenes if i.annotations.filter(label="car").exists()]
    page.wait_for_url(f"**/items/{cars[cars.index(item.pk) + 1]}?label=car")


def test_the_stats_page_charts_the_dataset(
    page: Any, alice: User, dataset: Dataset, scenes: list[Item]
) -> None:
    log_in(page, alice, "alice-password-1")
    page.goto(f"/datasets/{dataset.pk}/stats")
    assert page.locator("section[aria-label='Label histogram'] svg.chart rect").count() == 4
    assert page.locator("section[aria-label='Boxes per image'] svg.chart rect").count() >= 2
    screenshot(page, "stats", full_page=True)

    # A column of an image quality histogram opens the grid on its range's items.
    chart = page.locator("section[aria-label='Quality quality.brightness'] svg.chart")
    titles = chart.locator("a rect title").all_text_contents()
    counts = [int(t.rsplit(": ", 1)[1]) for t in titles]
    fullest = counts.index(max(counts))
    assert 0 < counts[fullest] <= 36
    chart.locator("a").nth(fullest).click()
    page.wait_for_url("**/datasets/*/?query=quality.brightness*")
    assert page.locator(".tile").count() == counts[fullest]


def test_boxes_are_named_and_one_confidence_threshold_serves_grid_and_item(
    page: Any, alice: User, dataset: Dataset, scenes: list[Item]
) -> None:
    model = Model.objects.get(dataset=dataset)
    shown = scenes[:8]
    log_in(page, alice, "alice-password-1")
    page.goto(f"/datasets/{dataset.pk}/?model={model.pk}&limit=8")
    legend = page.locator("[data-testid=overlay-legend]")
    assert legend.is_visible()
    assert "ground truth" in legend.inner_text() and "prediction ≥ 0.5" in legend.inner_text()
    preds = Prediction.objects.filter(item__in=shown)
    assert page.locator(".shape-pred").count() == preds.filter(confidence__gte=0.5).count()

    # Names show over a tile on hover, at the top left corner of their box.
    first = page.locator(".tile").first
    name = first.locator(".box-label-gt").first
    assert not name.is_visible()
    first.hover()
    assert name.is_visible()
    label = name.inner_text()
    box = first.locator(f'.shape-gt[data-label="{label}"] rect').first.bounding_box()
    at = name.bounding_box()
    assert abs(at["x"] - box["x"]) <= 2 and abs(at["y"] - box["y"]) <= 2, (at, box)
    screenshot(page, "grid-box-labels")

    # Lowering the threshold draws the unsure predictions too.
    page.fill("input[type=number][name=conf]", "0")
    page.press("input[type=number][name=conf]", "Enter")
    page.wait_for_url("**conf=0**")
    assert page.locator(".shape-pred").count() == preds.count()

    # The item page opens at the same threshold, and its own control changes it for both.
    item = shown[0]
    page.locator(".tile").first.locator("a[aria-label^=Open]").click()
    page.wait_for_url(f"**/items/{item.pk}?**")
    assert "conf=0" in page.url
    assert page.locator(".item-figure .shape-pred").count() == preds.filter(item=item).count()
    page.fill("[data-testid=conf-form] input[name=conf]", "0.95")
    page.press("[data-testid=conf-form] input[name=conf]", "Enter")
    page.wait_for_url("**conf=0.95**")
    assert page.locator(".item-figure .shape-pred").count() == 0
    assert page.locator("[data-testid=hidden-predictions]").is_visible()
    screenshot(page, "item-threshold")
    page.click("[data-key-back]")
    page.wait_for_url(f"**/datasets/{dataset.pk}/?**conf=0.95**")
    assert page.locator(".shape-pred").count() == 0
    assert page.locator("input[type=number][name=conf]").input_value() == "0.95"

    # At size L every name shows without hovering.
    page.click(".segmented a:has-text('L')")
    page.wait_for_url("**size=l**")
    page.mouse.move(0, 0)
    assert page.locator(".tile").nth(1).locator(".box-label-gt").first.is_visible()


def test_a_long_description_opens_whole_in_the_list_and_is_whole_on_the_dataset_page(
    page: Any, alice: User, dataset: Dataset
) -> None:
    Dataset.objects.filter(pk=dataset.pk).update(description=LONG_DESCRIPTION)
    short = Dataset.objects.create(name="short one", owner=alice, description="Two cities.")
    log_in(page, alice, "alice-password-1")
    described = page.locator(f"#dataset-{dataset.pk} [data-testid=dataset-description]")
    more = page.locator(f"#dataset-{dataset.pk} [data-clamp-toggle]")
    clamped = described.evaluate("el => [el.clientHeight, el.scrollHeight]")
    assert clamped[0] < clamped[1], clamped  # two lines of it, not all
    assert more.is_visible()
    assert page.locator(f"#dataset-{short.pk} [data-clamp-toggle]").is_hidden()  # fits
    more.click()
    opened = described.evaluate("el => [el.clientHeight, el.scrollHeight]")
    assert opened[0] >= opened[1] > clamped[0], opened
    assert more.inner_text() == "less"

    page.goto(f"/datasets/{dataset.pk}/")
    whole = page.locator("[data-testid=dataset-description]")
    assert whole.inner_text() == LONG_DESCRIPTION
    assert whole.evaluate("el => el.scrollHeight <= el.clientHeight")


def test_the_query_bar_completes_names_and_warns_about_unknown_ones(
    page: Any, alice: User, dataset: Dataset, scenes: list[Item]
) -> None:
    log_in(page, alice, "alice-password-1")
    page.goto(f"/datasets/{dataset.pk}/")
    query = page.locator("#query-input")
    query.press_sequentially("annotations.")
    suggestions = page.get_by_role("listbox", name="Suggestions")
    options = suggestions.get_by_role("option")
    suggestions.get_by_role("option", name="traffic light").wait_for()
    assert query.get_attribute("aria-expanded") == "true"
    assert options.first.get_attribute("aria-selected") == "true"
    # The dataset's labels, in order: bicycle, car, person, traffic light.
    query.press("ArrowDown")
    query.press("ArrowDown")
    assert query.get_attribute("aria-activedescendant") == "query-suggestion-2"
    assert options.nth(2).get_attribute("aria-selected") == "true"
    screenshot(page, "grid-query-completion")
    query.press("Enter")
    assert query.input_value() == "annotations.person"
    assert suggestions.is_hidden()
    assert query.get_attribute("aria-expanded") == "false"

    query.press_sequentially(" >= 1 AND predictions[det")
    suggestions.get_by_role("option", name="detector-v1").wait_for()
    query.press("Tab")  # a name with '-' goes in quoted, and the bracket is closed
    assert query.input_value() == 'annotations.person >= 1 AND predictions["detector-v1"]'
    query.press_sequentially(".ca")
    suggestions.get_by_role("option", name="car").wait_for()
    query.press("Escape")
    assert suggestions.is_hidden()
    assert query.input_value() == 'annotations.person >= 1 AND predictions["detector-v1"].ca'

    query.fill("annotations.persn >= 1")
    warning = page.locator("[data-testid=query-warnings]")
    warning.wait_for()  # checked while typing
    assert "Did you mean 'person'?" in warning.inner_text()
    page.click(".querybar button[type=submit]")
    page.wait_for_url("**query=**")
    assert "Did you mean 'person'?" in page.locator("[data-testid=query-warnings]").inner_text()

    with page.expect_popup() as opened:
        page.get_by_role("link", name="Query reference").click()
    reference = opened.value
    reference.get_by_role("heading", name="The query language").wait_for()
