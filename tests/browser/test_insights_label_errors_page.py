"""The Insights page's label-error section in a real browser: a curator finds the planted
errors ranked first, sees the ground truth and the prediction drawn side by side, opens
the item, and saves a list as a slice."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from curation.jobs import job_run
from curation.models import Annotation, Dataset, Item, JobStatus
from insights.label_error_scan import label_error_scan_create
from tests.browser.support import axe_violations, describe_violations, log_in, screenshot
from tests.ui_factories import MODEL, evaluated


def _plant(scenes: list[Item]) -> None:
    """scene-000's first box relabelled, scene-001's moved by half its width, scene-002's
    deleted: each is predicted at 0.9 where the truth was."""
    first = {
        i.reference_id: Annotation.objects.filter(item=i).order_by("id").first() for i in scenes[:3]
    }
    wrong = first["scene-000"]
    assert wrong is not None
    wrong.label = "pedestrian" if wrong.label != "pedestrian" else "car"
    wrong.save()
    moved = first["scene-001"]
    assert moved is not None
    g = moved.geometry
    moved.geometry = {**g, "x": g["x"] + g["width"] / 2}
    moved.save()
    gone = first["scene-002"]
    assert gone is not None
    gone.delete()


def test_a_curator_finds_planted_errors_and_saves_them_as_a_slice(
    page: Any, bob: User, alice: User, dataset: Dataset, scenes: list[Item]
) -> None:
    _plant(scenes)
    run = evaluated(dataset, alice, "detector on scenes", model=MODEL)
    scan = label_error_scan_create(dataset=dataset, user=alice, run_id=run.pk)
    assert scan.job_id is not None
    done = job_run(job_id=scan.job_id)
    assert done is not None and done.status == JobStatus.SUCCEEDED, done and done.message

    log_in(page, bob, "bob-password-1")
    page.goto(f"/datasets/{dataset.pk}/")
    page.click("[data-testid=tab-insights]")
    page.wait_for_load_state()
    section = page.locator('[data-section="label-errors"]')
    firsts = {
        kind: section.locator(f'[data-type="{kind}"] tbody tr').first.get_attribute("data-ref")
        for kind in ("wrong_label", "bad_box", "missing")
    }
    assert firsts == {"wrong_label": "scene-000", "bad_box": "scene-001", "missing": "scene-002"}
    row = section.locator('[data-type="wrong_label"] tbody tr').first
    assert row.locator('[data-box="truth"]').count() == 1
    assert row.locator('[data-box="prediction"]').count() == 1
    screenshot(page, "insights-label-errors", full_page=True)
    found = axe_violations(page)
    assert not found, describe_violations(found)

    row.locator("a").first.click()
    page.wait_for_url(lambda url: "/items/" in url)
    assert page.url.split("/items/")[1].split("?")[0] == str(
        Item.objects.get(dataset=dataset, reference_id="scene-000").pk
    )
    # The ground truth and the prediction involved, emphasised among the item's shapes.
    focused = page.locator("#item-overlay .shape-focus")
    assert sorted(focused.evaluate_all("gs => gs.map(g => g.dataset.source)")) == ["gt", "pred"]

    page.go_back()
    form = section.locator('[data-type="bad_box"] [data-testid=label-errors-save]')
    form.locator("input[name=name]").fill("bad boxes to fix")
    form.locator("button[value=slice]").click()
    page.wait_for_url(lambda url: "/slices/" in url)
    page.wait_for_load_state()
    shown = page.locator(".tile[data-ref]").evaluate_all("ts => ts.map(t => t.dataset.ref)")
    assert "scene-001" in shown
