"""The Insights page's scores and leaks sections in a real browser: a bar opens the grid
on its items, a curator finds the leaks between train and test and takes them out of test."""

from __future__ import annotations

import re
from typing import Any

from django.contrib.auth.models import User

from curation.jobs import job_run
from curation.models import Dataset, Item, Job, JobStatus
from insights.uniqueness import scores_job_start
from tests.browser.support import axe_violations, describe_violations, log_in, screenshot


def test_a_curator_reads_the_scores_and_removes_the_leaks(
    page: Any, bob: User, dataset: Dataset, scored_splits: dict[str, Any]
) -> None:
    job = scores_job_start(dataset=dataset, user=bob, model=scored_splits["model"], neighbors=5)
    assert job_run(job_id=job.pk).status == JobStatus.SUCCEEDED

    log_in(page, bob, "bob-password-1")
    page.goto(f"/datasets/{dataset.pk}/")
    page.get_by_role("link", name="Insights").click()
    page.wait_for_load_state()
    uniqueness = page.locator('[data-score="uniqueness"]')
    assert uniqueness.locator("[data-testid=ranked] a").first.get_attribute("data-ref") == (
        "scene-40"
    )

    # The sides of the form, then the report the job makes.
    page.select_option("[data-testid=leaks-form] select[name=a]", "tag:train")
    page.select_option("[data-testid=leaks-form] select[name=b]", "tag:test")
    page.click("[data-testid=leaks-form] button")
    page.wait_for_load_state()
    assert "Leaks job" in page.locator(".message-success").inner_text()
    assert job_run(job_id=Job.objects.get(kind="insights_leaks").pk).status == "succeeded"
    page.reload()
    evidence = page.locator("[data-testid=leak-pairs] tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.evidence)"
    )
    assert evidence == ["same_item", "exact"]
    below_header = "id => { document.getElementById(id).scrollIntoView(); scrollBy(0, -110); }"
    page.evaluate(below_header, "insights-scores")
    screenshot(page, "insights")
    page.evaluate(below_header, "insights-leaks")
    screenshot(page, "insights-leaks")
    found = axe_violations(page)
    assert not found, describe_violations(found)

    page.click("[data-testid=remove-b]")
    page.wait_for_load_state()
    assert "2 items taken out of tag:test" in page.locator(".message-success").inner_text()
    assert set(
        Item.objects.filter(tag_links__tag__name="test").values_list("reference_id", flat=True)
    ) == {f"scene-{i}" for i in range(21, 25)}

    # The top bar of uniqueness opens the grid on exactly its items (the lone one).
    bar = page.locator('[data-score="uniqueness"] [data-testid=bar]').last
    count = int(bar.locator("em").inner_text())
    bar.click()
    page.wait_for_load_state()
    assert re.search(r"uniqueness", page.url)
    refs = page.locator("[data-ref]").evaluate_all("els => els.map(e => e.dataset.ref)")
    assert count == 1 and refs == ["scene-40"]
