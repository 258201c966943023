"""Every main page at a desktop, a laptop and a phone width: the page never scrolls
sideways, no control lies off the screen or under another, and the parts that sit side by
side on a wide screen (header, breadcrumb and export menu, picture and side panel) do not
cover each other on a narrow one. Measured with bounding boxes in the page, not pixels.

A wide table may scroll inside its own box (`overflow-x: auto`): its controls then count
as reachable when that box is on the screen."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from curation.jobs import job_run
from curation.models import Dataset, Item
from curation.services import slice_append, slice_create, token_create
from curation.versions import slice_version_create
from embeddings.duplicates import duplicates_job_start
from tests.browser.support import log_in, screenshot
from tests.embedding_factories import items_with_images, jpeg_bytes
from tests.ui_factories import MODEL, evaluated

SIZES = {"1440": (1440, 900), "1024": (1024, 800), "390": (390, 844)}

# One pass over the page: what scrolls sideways, what sits outside the screen or outside a
# box that clips it, which controls cover each other, and which of the named pairs overlap.
MEASURE = r"""
(pairs) => {
  const W = window.innerWidth, SLACK = 1, problems = [];
  const name = (el) => {
    let s = el.tagName.toLowerCase();
    if (el.id) s += "#" + el.id;
    if (el.classList.length) s += "." + Array.from(el.classList).join(".");
    const text = (el.getAttribute("aria-label") || el.textContent || el.value || "")
      .replace(/\s+/g, " ").trim();
    return text ? `${s} "${text.slice(0, 30)}"` : s;
  };
  const shown = (el) => {
    // Not inside a closed <details>, nor hidden by visibility.
    const seen = { contentVisibilityAuto: true, visibilityProperty: true };
    if (!el.checkVisibility(seen)) return false;
    const r = el.getBoundingClientRect();
    if (r.width < 2 || r.height < 2) return false;
    const style = getComputedStyle(el);
    return style.visibility !== "hidden" && style.display !== "none";
  };
  const scroll = document.documentElement.scrollWidth;
  if (scroll > W + SLACK) problems.push(`the page scrolls sideways: ${scroll}px wide in ${W}px`);

  const controls = Array.from(
    document.querySelectorAll("a, button, input:not([type=hidden]), select, summary, textarea")
  ).filter(shown);
  for (const el of controls) {
    // The horizontal span that must be on the screen: the control's, or that of the
    // nearest box it scrolls in.
    let r = el.getBoundingClientRect(), left = r.left, right = r.right, via = "";
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const o = getComputedStyle(p).overflowX;
      if (o === "visible") continue;
      const box = p.getBoundingClientRect();
      if (o === "auto" || o === "scroll") {
        [left, right, via] = [box.left, box.right, ` (scrolls in ${name(p)})`];
        continue;
      }
      if (left < box.left - SLACK || right > box.right + SLACK)
        problems.push(`${name(el)} is cut off by ${name(p)}`);
    }
    if (left < -SLACK || right > W + SLACK)
      problems.push(
        `${name(el)}${via} is off the screen: ${Math.round(left)}..${Math.round(right)} of ${W}`
      );
  }

  const overlap = (a, b) => {
    const x = Math.min(a.right, b.right) - Math.max(a.left, b.left);
    const y = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
    return x > SLACK && y > SLACK;
  };
  // Line by line: an inline link that wraps has one box per line, and the rectangle
  // around both lines would cover whatever sits beside it without anything overlapping.
  const covers = (a, b) => {
    const bs = Array.from(b.getClientRects());
    return Array.from(a.getClientRects()).some((r) => bs.some((s) => overlap(r, s)));
  };
  // Controls in the page's flow (not menus, bars or overlays that float on purpose).
  const flowing = controls.filter((el) => {
    for (let p = el; p && p !== document.body; p = p.parentElement) {
      const style = getComputedStyle(p);
      if (style.opacity === "0" || style.position === "fixed") return false;
      if (p !== el && style.position === "absolute") return false;
    }
    return getComputedStyle(el).position !== "absolute";
  });
  for (let i = 0; i < flowing.length; i++) {
    for (let j = i + 1; j < flowing.length; j++) {
      const a = flowing[i], b = flowing[j];
      if (a.contains(b) || b.contains(a)) continue;
      if (covers(a, b)) problems.push(`${name(a)} overlaps ${name(b)}`);
    }
  }
  for (const [one, other] of pairs) {
    for (const a of Array.from(document.querySelectorAll(one)).filter(shown))
      for (const b of Array.from(document.querySelectorAll(other)).filter(shown))
        if (covers(a, b)) problems.push(`${one} overlaps ${other}`);
  }
  return problems;
}
"""

# Parts that sit beside each other on a wide screen and must never cover each other.
PAIRS = [
    (".brand", ".topnav"),
    (".topnav", ".topbar-user"),
    (".crumbs", ".dataset-header .menu"),
    (".crumbs > *", ".dataset-actions"),
    (".crumbs", ".dataset-header .tabs"),
    (".dataset-header .menu", ".dataset-header .tabs"),
    (".sidebar", ".workspace-main"),
    (".item-figure", ".item-side"),
    ("section[aria-label='Nearest neighbours']", ".item-side"),
    ("section[aria-label='Duplicate group']", ".item-side"),
    (".slice-panel h1", ".slice-panel .card-head > .row"),
]


def _pages(dataset: Dataset, bob: User, scenes: list[Item]) -> list[tuple[str, str]]:
    """Give every main page something to show, and return (name, path) for each."""
    picked, _ = slice_create(
        dataset=dataset,
        user=bob,
        name="night scenes with occluded pedestrians, second review",
        reference_ids=[i.reference_id for i in scenes[:5]],
    )
    slice_version_create(slice=picked, user=bob, note="first pass")
    slice_append(slice=picked, reference_ids=[i.reference_id for i in scenes[5:8]])
    slice_version_create(slice=picked, user=bob, note="three more after review")
    same = jpeg_bytes(7, (192, 160))
    items_with_images(dataset, 2, prefix="copy", payloads=[same, same])
    job = job_run(job_id=duplicates_job_start(dataset=dataset, user=bob, model=None).pk)
    assert job.result["exact_groups"] == 1, job.result
    token_create(user=bob, name="training pipeline on the cluster")
    run = evaluated(dataset, bob, "detector on the street scenes, all defaults", model=MODEL)
    base = f"/datasets/{dataset.pk}"
    return [
        ("datasets", "/"),
        ("grid", f"{base}/"),
        ("item", f"{base}/items/{scenes[3].pk}"),
        ("item, editing", f"{base}/items/{scenes[3].pk}?edit=1"),
        ("stats", f"{base}/stats"),
        ("slice", f"{base}/slices/{picked.pk}/"),
        ("slice diff", f"{base}/slices/{picked.pk}/diff?from=1&to=2"),
        ("jobs", "/jobs/"),
        ("job", f"{base}/jobs/{job.pk}"),
        ("duplicates", f"{base}/duplicates/groups"),
        ("tokens", "/tokens/"),
        ("evaluations", f"{base}/evaluations/"),
        ("evaluation", f"{base}/evaluations/{run.pk}/"),
    ]


@pytest.mark.parametrize("size", SIZES)
def test_no_page_overflows_or_overlaps(
    page: Any, bob: User, dataset: Dataset, scenes: list[Item], size: str
) -> None:
    pages = _pages(dataset, bob, scenes)
    width, height = SIZES[size]
    page.set_viewport_size({"width": width, "height": height})
    log_in(page, bob, "bob-password-1")
    found = []
    for label, path in pages:
        page.goto(path)
        page.wait_for_load_state("networkidle")  # facets and counts arrive by htmx
        found += [f"{label} at {width}px: {p}" for p in page.evaluate(MEASURE, PAIRS)]
        if size == "390" and label in ("grid", "item"):
            screenshot(page, f"{label}-390")
        if label == "grid":  # with a selection, its bar at the bottom too
            page.locator(".tile").first.click()
            page.locator("#selection-form").wait_for(state="visible")
            found += [f"selection at {width}px: {p}" for p in page.evaluate(MEASURE, PAIRS)]
    # The dataset's export menu, open, stays on the screen.
    page.goto(pages[1][1])
    page.click(".dataset-header .menu summary")
    page.locator(".menu-items").wait_for(state="visible")
    found += [f"export menu at {width}px: {p}" for p in page.evaluate(MEASURE, PAIRS)]
    assert not found, "\n".join(found)


def test_on_a_phone_the_facets_are_a_drawer_behind_a_filters_button(
    page: Any, bob: User, dataset: Dataset, scenes: list[Item]
) -> None:
    page.emulate_media(reduced_motion="reduce")  # no slide: the drawer is where it ends up
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, bob, "bob-password-1")
    page.goto(f"/datasets/{dataset.pk}/")
    drawer = page.locator("#facets-drawer")
    toggle = page.locator("[data-drawer-toggle]")
    car = page.locator("a[data-facet=label][data-value=car]")
    car.wait_for(state="attached")  # the facets arrive by htmx after the page
    assert toggle.get_attribute("aria-controls") == "facets-drawer"
    assert toggle.get_attribute("aria-expanded") == "false"
    assert not drawer.is_visible() and not car.is_visible()
    first_tile = page.locator(".tile").first.bounding_box()
    assert first_tile["x"] < 20  # the grid has the whole width

    toggle.click()
    assert toggle.get_attribute("aria-expanded") == "true"
    box = drawer.bounding_box()
    assert box["x"] == 0 and 0 < box["width"] <= 390
    assert car.is_visible()
    assert page.evaluate("document.activeElement.matches('[data-drawer-close]')")
    # Modal while open: the grid and the header take no focus.
    assert page.locator(".workspace-main").evaluate("el => el.inert")
    assert page.locator(".topbar").evaluate("el => el.inert")
    screenshot(page, "grid-390-filters")

    page.keyboard.press("Escape")
    assert toggle.get_attribute("aria-expanded") == "false"
    assert not drawer.is_visible()
    assert page.evaluate("document.activeElement.matches('[data-drawer-toggle]')")
    assert not page.locator(".workspace-main").evaluate("el => el.inert")

    toggle.click()
    page.locator(".drawer-head [data-drawer-close]").click()
    assert not drawer.is_visible()
    toggle.click()
    page.mouse.click(380, 400)  # the dimmed page beside the drawer
    assert not drawer.is_visible()
    toggle.click()
    car.click()
    page.wait_for_url("**label=car**")
    assert page.locator(".chip").first.inner_text().startswith("label")

    # On a wide screen the same page shows the sidebar and no Filters button.
    page.set_viewport_size({"width": 1440, "height": 900})
    assert drawer.is_visible() and not toggle.is_visible()
    assert page.locator(".drawer-head").is_hidden()
