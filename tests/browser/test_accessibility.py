"""Accessibility, WCAG 2.2 AA as the bar: axe-core finds no serious or critical violation
on any main page, a skip link and a grid that is one tab stop keep the keyboard path short,
and a focused tile looks unlike a selected one."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from curation.jobs import job_run
from curation.models import Annotation, Dataset, Item, Model
from curation.services import slice_create
from embeddings.duplicates import duplicates_job_start
from tests.browser.support import axe_violations, describe_violations, log_in


def test_no_serious_or_critical_violations_on_the_main_pages(
    page: Any, bob: User, dataset: Dataset, scenes: list[Item]
) -> None:
    picked, _ = slice_create(
        dataset=dataset,
        user=bob,
        name="to label",
        reference_ids=[i.reference_id for i in scenes[:5]],
    )
    model = Model.objects.get(dataset=dataset)
    job = job_run(job_id=duplicates_job_start(dataset=dataset, user=bob, model=None).pk)
    found: dict[str, list[dict[str, Any]]] = {}

    page.goto("/login/")
    found["login"] = axe_violations(page)
    log_in(page, bob, "bob-password-1")
    pages = {
        "datasets": "/",
        "grid": f"/datasets/{dataset.pk}/",
        "grid with predictions, large": f"/datasets/{dataset.pk}/?model={model.pk}&size=l",
        "empty grid": f"/datasets/{dataset.pk}/?query=metadata.speed%20%3E%201000",
        "item": f"/datasets/{dataset.pk}/items/{scenes[3].pk}",
        "item, editing": f"/datasets/{dataset.pk}/items/{scenes[3].pk}?edit=1",
        "stats": f"/datasets/{dataset.pk}/stats",
        "slice": f"/datasets/{dataset.pk}/slices/{picked.pk}/",
        "jobs": "/jobs/",
        "job": f"/datasets/{dataset.pk}/jobs/{job.pk}",
        "duplicates": f"/datasets/{dataset.pk}/duplicates/groups",
        "tokens": "/tokens/",
    }
    for name, url in pages.items():
        page.goto(url)
        if name.startswith("grid") or name == "slice":  # facets arrive after the page
            page.locator("[data-testid=facet-loading]").wait_for(state="detached")
            assert page.locator(".tile").count() > 0
        found[name] = axe_violations(page)
    failing = {name: v for name, v in found.items() if v}
    assert not failing, "\n".join(
        f"== {name} {pages.get(name, '/login/')}\n{describe_violations(v)}"
        for name, v in failing.items()
    )


def _focused(page: Any) -> str:
    """What has focus, as a short description: tag, classes and text."""
    return str(
        page.evaluate(
            "() => { const e = document.activeElement;"
            " return `${e.tagName.toLowerCase()}.${[...e.classList].join('.')}"
            " ${(e.getAttribute('aria-label') || e.textContent || '').trim().slice(0, 40)}`; }"
        )
    )


def _tabs_until(page: Any, selector: str, limit: int) -> int:
    """Press Tab until the focused element matches `selector`; how many presses it took
    (fails past `limit`, naming where focus went)."""
    path = []
    for presses in range(1, limit + 1):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return presses
        path.append(_focused(page))
    raise AssertionError(f"{selector} not reached in {limit} Tabs: " + " | ".join(path))


def _contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two computed colours, "rgb(r, g, b)"."""

    def luminance(colour: str) -> float:
        r, g, b = (int(v) / 255 for v in colour[colour.index("(") + 1 : -1].split(",")[:3])
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted([luminance(a), luminance(b)], reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_the_keyboard_reaches_the_tiles_and_the_selection_bar_in_a_few_presses(
    page: Any, bob: User, dataset: Dataset, scenes: list[Item]
) -> None:
    log_in(page, bob, "bob-password-1")
    page.goto(f"/datasets/{dataset.pk}/")
    page.locator("[data-testid=facet-loading]").wait_for(state="detached")

    # From page load: the skip link is the first stop and lands on the first tile.
    assert _tabs_until(page, ".skip-link", limit=1) == 1
    assert page.locator(".skip-link").inner_text() == "Skip to items"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.dataset.id") == str(scenes[0].pk)

    # The grid is one tab stop: its tiles' links are not stops of their own.
    page.keyboard.press("ArrowRight")
    page.keyboard.press(" ")
    assert page.locator("[data-sel-count]").inner_text() == "1 selected"
    assert _tabs_until(page, "#selection-form button", limit=3) == 1
    page.keyboard.press("Shift+Tab")  # back into the grid, on the tile it left
    assert page.evaluate("document.activeElement.dataset.id") == str(scenes[1].pk)

    # From the query bar, past the toolbar and the grid, to the selection bar.
    page.locator("#query-input").focus()
    assert _tabs_until(page, "#selection-form button", limit=12) <= 12


def test_a_focused_tile_looks_unlike_a_selected_one(
    page: Any, bob: User, dataset: Dataset, scenes: list[Item]
) -> None:
    log_in(page, bob, "bob-password-1")
    page.goto(f"/datasets/{dataset.pk}/")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # the skip link: focus on the first tile
    page.keyboard.press(" ")  # select it
    page.keyboard.press("ArrowRight")  # focus the second, unselected
    # Tiles ease their border and ring in (CSS transitions of 0.1 s): read the colours once
    # both have ended, not halfway (a read mid-transition once found the old border).
    for item in scenes[:2]:
        page.locator(f".tile[data-id='{item.pk}']").evaluate(
            "t => Promise.all(t.getAnimations().map(a => a.finished))"
        )
    style = """t => { const s = getComputedStyle(t); return {
        background: s.backgroundColor, border: s.borderTopColor, shadow: s.boxShadow,
        page: getComputedStyle(document.body).backgroundColor}; }"""
    selected = page.locator(f".tile[data-id='{scenes[0].pk}']").evaluate(style)
    focused = page.locator(f".tile[data-id='{scenes[1].pk}']").evaluate(style)
    assert page.locator(".tile.selected").count() == 1
    assert selected["background"] != focused["background"]  # selection fills the tile
    # Focus is a ring around the tile, a colour that is neither the selection's nor absent.
    ring = focused["shadow"].rsplit("rgb", 1)[1].split(")")[0]
    ring = f"rgb{ring})"
    assert ring not in selected["shadow"]
    assert _contrast(ring, focused["page"]) >= 3
    assert _contrast(selected["border"], selected["page"]) >= 3
    assert _contrast(selected["border"], selected["background"]) >= 3


def test_thumbnails_and_overlays_say_what_is_drawn(
    page: Any, alice: User, dataset: Dataset, scenes: list[Item]
) -> None:
    item = scenes[0]
    counts: dict[str, int] = {}
    for label in Annotation.objects.filter(item=item).values_list("label", flat=True):
        counts[label] = counts.get(label, 0) + 1
    drawn = ", ".join(f"{n} {label}" for label, n in sorted(counts.items()))
    log_in(page, alice, "alice-password-1")
    page.goto(f"/datasets/{dataset.pk}/")
    alt = page.locator(f".tile[data-id='{item.pk}'] img").get_attribute("alt")
    assert alt == f"{item.reference_id}: {drawn}"

    page.goto(f"/datasets/{dataset.pk}/items/{item.pk}")
    assert (
        page.locator("#item-image")
        .get_attribute("alt")
        .startswith(f"{item.reference_id}: {drawn}; predicted ")
    )
    overlay = page.get_by_role("img", name="Ground truth:")
    label = overlay.get_attribute("aria-label")
    assert label.startswith("Ground truth: ") and "Predictions: " in label
    assert sorted(label.split(".")[0].removeprefix("Ground truth: ").split(", ")) == sorted(
        Annotation.objects.filter(item=item).values_list("label", flat=True)
    )
