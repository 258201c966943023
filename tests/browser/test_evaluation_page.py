"""The evaluation page in a real browser: from the dataset's runs to a run's page, and
from a class's false-positive count to the grid showing exactly those items."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from curation.models import Dataset, Item
from evaluation.models import EvaluationMatch
from tests.browser.support import axe_violations, describe_violations, log_in, screenshot
from tests.ui_factories import MODEL, evaluated


def test_a_viewer_opens_a_run_and_follows_a_classes_false_positives_to_the_grid(
    page: Any, victor: User, alice: User, dataset: Dataset, scenes: list[Item]
) -> None:
    # Bicycles predicted as cars: false cars (and missed bicycles) to look at.
    run = evaluated(
        dataset,
        alice,
        "detector on scenes",
        model=MODEL,
        confidence_threshold=0.2,
        label_mapping={"bicycle": "car"},
    )
    with_fp = set(
        EvaluationMatch.objects.filter(run=run, outcome="fp", label="car").values_list(
            "item_id", flat=True
        )
    )
    expected = sorted(Item.objects.filter(pk__in=with_fp).values_list("reference_id", flat=True))
    assert 0 < len(expected) < len(scenes)  # the filter narrows, and to something

    log_in(page, victor, "victor-password-1")
    page.goto(f"/datasets/{dataset.pk}/")
    page.click("[data-testid=tab-evaluations]")
    page.click("[data-testid=run-link]")
    page.wait_for_load_state()
    assert page.locator("[data-testid=run-name]").inner_text() == "detector on scenes"
    assert page.locator("[data-testid=pr-curves] polyline").count() >= 1
    screenshot(page, "evaluation", full_page=True)
    found = axe_violations(page)
    assert not found, describe_violations(found)

    fp_car = page.locator('tr[data-label="car"] td[data-outcome="fp"] a')
    assert fp_car.inner_text() == str(
        next(c["fp"] for c in run.metrics["per_class"] if c["label"] == "car")
    )
    fp_car.click()
    page.wait_for_url(lambda url: "query=" in url)
    page.wait_for_load_state()
    shown = sorted(page.locator(".tile[data-ref]").evaluate_all("ts => ts.map(t => t.dataset.ref)"))
    assert shown == expected
    assert 'eval["detector on scenes"].fp.car >= 1' in page.locator("textarea, input").evaluate_all(
        "els => els.map(e => e.value).join(' | ')"
    )


def test_picking_a_run_in_the_grid_draws_a_false_positive_in_the_fp_colour(
    page: Any, victor: User, alice: User, dataset: Dataset, scenes: list[Item]
) -> None:
    from curation.ui.outcomes import OUTCOME_COLOURS

    run = evaluated(
        dataset,
        alice,
        "detector on scenes",
        model=MODEL,
        confidence_threshold=0.2,
        label_mapping={"bicycle": "car"},
    )
    fps = EvaluationMatch.objects.filter(run=run, outcome="fp")
    assert fps.exists()
    top = fps.order_by("-confidence").values_list("confidence", flat=True).first()

    log_in(page, victor, "victor-password-1")
    page.goto(f"/datasets/{dataset.pk}/")
    page.select_option("[data-testid=run-picker]", str(run.pk))
    page.wait_for_url(lambda url: f"run={run.pk}" in url)
    page.wait_for_load_state()
    legend = page.locator("[data-testid=outcome-legend]")
    assert legend.is_visible() and "false positive" in legend.inner_text()
    fp_box = page.locator("svg.overlay g[data-outcome=fp] rect").first
    stroke = fp_box.evaluate("el => getComputedStyle(el).stroke")
    red, green, blue = (int(OUTCOME_COLOURS["fp"][i : i + 2], 16) for i in (1, 3, 5))
    assert stroke == f"rgb({red}, {green}, {blue})"
    # A true positive is drawn in another colour.
    tp_stroke = page.locator("svg.overlay g[data-outcome=tp] rect").first.evaluate(
        "el => getComputedStyle(el).stroke"
    )
    assert tp_stroke != stroke

    # Most confident false positive first; the run stays picked.
    page.select_option("[data-testid=match-order]", "fp-confidence")
    page.wait_for_url(lambda url: "match_order=fp-confidence" in url)
    page.wait_for_load_state()
    first = page.locator("[data-testid=sort-value]").first.inner_text()
    assert first == f"{top:.3f}"
    screenshot(page, "grid-outcomes")
    found = axe_violations(page)
    assert not found, describe_violations(found)


def test_a_curator_creates_a_suite_in_the_ui_and_runs_it(
    page: Any, bob: User, alice: User, dataset: Dataset, scenes: list[Item]
) -> None:
    from curation.jobs import job_run
    from curation.models import JobStatus
    from evaluation.models import ScenarioEvaluation

    log_in(page, bob, "bob-password-1")
    page.goto(f"/datasets/{dataset.pk}/")
    page.click("[data-testid=tab-evaluations]")
    page.click("[data-testid=suites-link]")
    page.fill("[data-testid=suite-create] input[name=name]", "release gates")
    page.click("[data-testid=suite-create] button[type=submit]")
    page.wait_for_url(lambda url: "/evaluations/suites/" in url and url.endswith("/"))
    assert page.locator("[data-testid=suite-name]").inner_text() == "release gates"

    form = page.locator("[data-testid=test-create]")
    form.locator("input[name=name]").fill("any box at all")
    form.locator("input[name=metric]").fill("map_50")
    form.locator("input[name=threshold]").fill("0")
    form.locator("button[type=submit]").click()
    page.wait_for_load_state()
    assert page.locator("[data-testid=suite-tests] tr[data-test]").count() == 1

    page.locator("[data-testid=suite-run] button[type=submit]").click()
    page.wait_for_load_state()
    evaluation = ScenarioEvaluation.objects.get(suite__name="release gates")
    assert evaluation.job is not None
    job = job_run(job_id=evaluation.job.pk)  # the worker's part
    assert job is not None and job.status == JobStatus.SUCCEEDED, job.message
    page.reload()
    cell = page.locator("[data-testid=history-cell]")
    assert cell.count() == 1 and cell.get_attribute("data-passed") == "true"
    assert page.locator("[data-testid=latest-result]").inner_text().startswith("pass")
    screenshot(page, "suite", full_page=True)
    found = axe_violations(page)
    assert not found, describe_violations(found)


def test_a_viewer_follows_a_classification_runs_confusion_cell_to_the_grid(
    page: Any, victor: User, alice: User, dataset: Dataset
) -> None:
    from tests.api_helpers import add_items

    def category(label: str, **extra: Any) -> dict[str, Any]:
        return {"kind": "category", "label": label, **extra}

    truth_and_guess = [("cat", "cat"), ("cat", "dog"), ("dog", "dog"), ("dog", "cat")] * 2
    add_items(
        dataset,
        *(
            {
                "reference_id": f"pet-{n}",
                "annotations": [category(truth)],
                "predictions": [category(guess, model="pets", confidence=0.8)],
            }
            for n, (truth, guess) in enumerate(truth_and_guess)
        ),
    )
    evaluated(dataset, alice, "pets classifier", model="pets", task="classification")

    log_in(page, victor, "victor-password-1")
    page.goto(f"/datasets/{dataset.pk}/evaluations/")
    page.click("[data-testid=run-link]")
    page.wait_for_load_state()
    stat = page.locator('[data-testid=classification-stats] [data-stat="accuracy"] .value')
    assert stat.inner_text() == "0.500"
    found = axe_violations(page)
    assert not found, describe_violations(found)

    # Row dog, column cat: the dogs taken for cats.
    page.locator('tr[data-truth="dog"] td').nth(0).locator("a").click()
    page.wait_for_url(lambda url: "query=" in url)
    page.wait_for_load_state()
    shown = sorted(page.locator(".tile[data-ref]").evaluate_all("ts => ts.map(t => t.dataset.ref)"))
    assert shown == ["pet-3", "pet-7"]


def _refs_with(run: Any, **filters: Any) -> set[str]:
    ids = EvaluationMatch.objects.filter(run=run, **filters).values("item_id")
    return set(Item.objects.filter(pk__in=ids).values_list("reference_id", flat=True))


def _grid_refs(page: Any) -> list[str]:
    page.wait_for_url(lambda url: "query=" in url)
    page.wait_for_load_state()
    return sorted(page.locator(".tile[data-ref]").evaluate_all("ts => ts.map(t => t.dataset.ref)"))


def test_the_error_breakdown_and_the_comparison_open_the_grid_on_their_items(
    page: Any, victor: User, alice: User, dataset: Dataset, scenes: list[Item]
) -> None:
    strict = evaluated(
        dataset, alice, "strict", model=MODEL, confidence_threshold=0.6, label_mapping={}
    )
    loose = evaluated(
        dataset,
        alice,
        "loose",
        model=MODEL,
        confidence_threshold=0.2,
        label_mapping={"bicycle": "car"},
    )
    log_in(page, victor, "victor-password-1")

    # The run page's error breakdown: the most frequent error type's count opens its items.
    types = sorted(loose.metrics["errors"]["types"], key=lambda t: -t["count"])
    top = types[0]
    assert top["count"] > 0
    page.goto(f"/datasets/{dataset.pk}/evaluations/{loose.pk}/")
    assert page.locator("[data-testid=error-breakdown] tr[data-error]").count() == 6
    assert page.locator("[data-testid=score-histograms] figure").count() >= 2
    found = axe_violations(page)
    assert not found, describe_violations(found)
    page.locator(f'tr[data-error="{top["type"]}"] a').click()
    expected = _refs_with(loose, error_type=top["type"])
    assert _grid_refs(page) == sorted(expected)

    # The comparison: from the run page's link, choose b, and open an item list.
    page.goto(f"/datasets/{dataset.pk}/evaluations/{loose.pk}/")
    page.click("[data-testid=compare-link]")
    page.wait_for_load_state()
    page.select_option("[data-testid=compare-b]", str(strict.pk))
    page.click("[data-testid=compare-submit]")
    page.wait_for_url(lambda url: "b=" in url)
    page.wait_for_load_state()
    assert page.locator("[data-testid=compare-summary] tr[data-metric]").count() == 18
    found = axe_violations(page)
    assert not found, describe_violations(found)
    screenshot(page, "evaluation-compare", full_page=True)

    every = set(Item.objects.filter(dataset=dataset).values_list("reference_id", flat=True))
    wrong_loose = _refs_with(loose, outcome__in=["fp", "fn"])
    wrong_strict = _refs_with(strict, outcome__in=["fp", "fn"])
    lists = {
        "right_in_a_only": (every - wrong_loose) & wrong_strict,
        "right_in_b_only": (every - wrong_strict) & wrong_loose,
        "wrong_in_both": wrong_loose & wrong_strict,
    }
    key, refs = max(lists.items(), key=lambda kv: len(kv[1]))
    assert refs
    page.locator(f'[data-list="{key}"] a').click()
    assert _grid_refs(page) == sorted(refs)
