"""The scenario suites' pages: a dataset's suites, and a suite's tests (added, changed,
deleted by curators), its evaluation against a model (the scenario job) and its history,
pass or fail per test. Reads go through evaluation.selectors, writes through
evaluation.scenarios; the views never query. Viewers read, curators change; others get
a 404 (curation.access)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from curation import selectors as curation_selectors
from curation.errors import CurationError
from curation.models import Dataset, Role
from curation.ui.http import back_with_error, dataset_or_404, html_errors
from evaluation import scenarios, selectors
from evaluation.engine import STAT_NAMES
from evaluation.models import Comparison, ScenarioEvaluation, ScenarioSuite, ScenarioTest

# What the metric field suggests (any per-class metric of a label works too: ap.car).
METRIC_SUGGESTIONS = (*STAT_NAMES, *scenarios.OPERATING_METRICS)


class SuiteForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, max_length=5000)


class TestForm(forms.Form):
    """A test: a scope (slice, version, query), a metric, and a threshold or a baseline."""

    name = forms.CharField(max_length=200)
    metric = forms.CharField(max_length=300)
    slice = forms.IntegerField(required=False, min_value=1)
    version = forms.IntegerField(required=False, min_value=1)
    query = forms.CharField(required=False, max_length=10_000)
    comparison = forms.ChoiceField(choices=Comparison.choices)
    threshold = forms.FloatField(required=False)
    baseline = forms.IntegerField(required=False, min_value=1)
    delta = forms.FloatField(required=False, min_value=0)

    def arguments(self) -> dict[str, Any]:
        """scenarios.test_create's keyword arguments: the comparison picks which of
        threshold and baseline is given."""
        data = self.cleaned_data
        baseline = data["comparison"] == Comparison.BASELINE
        return {
            "name": data["name"],
            "metric": data["metric"].strip(),
            "slice_id": data["slice"],
            "version": data["version"],
            "query": data["query"] or "",
            "threshold": None if baseline else data["threshold"],
            "baseline": data["baseline"] if baseline else None,
            "delta": (data["delta"] or 0.0) if baseline else 0.0,
        }


class RunForm(forms.Form):
    model = forms.IntegerField(min_value=1)


def _first_error(form: forms.Form) -> str:
    for name, errors in form.errors.items():
        return f"{name}: {errors[0]}" if name != "__all__" else str(errors[0])
    return "Invalid input."


@dataclass(frozen=True)
class Cell:
    """A test's result in one suite evaluation (None: the test was not in it)."""

    passed: bool
    value: str
    required: str
    message: str


@dataclass
class HistoryRow:
    evaluation: ScenarioEvaluation
    status: str
    passed: int
    failed: int
    cells: list[Cell | None] = field(default_factory=list)


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _history(tests: list[ScenarioTest], history: list[ScenarioEvaluation]) -> list[HistoryRow]:
    """One row per suite evaluation, one cell per current test (matched by test id)."""
    rows = []
    for evaluation in history:
        results = {r.test_id: r for r in evaluation.results.all()}
        status = evaluation.job.status if evaluation.job is not None else "—"
        row = HistoryRow(
            evaluation,
            status,
            sum(1 for r in results.values() if r.passed),
            sum(1 for r in results.values() if not r.passed),
        )
        for test in tests:
            found = results.get(test.pk)
            row.cells.append(
                None
                if found is None
                else Cell(
                    found.passed, _number(found.value), _number(found.required), found.message
                )
            )
        rows.append(row)
    return rows


def _suite_url(dataset: Dataset, suite: ScenarioSuite) -> str:
    return reverse("evaluation-ui:suite", args=[dataset.pk, suite.pk])


@require_safe
@login_required
@html_errors
def suites_page(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """The dataset's scenario suites, and (for curators) a form for a new one."""
    dataset = dataset_or_404(request, dataset_id)
    context = {
        "dataset": dataset,
        "tab": "evaluations",
        "suites": list(selectors.suites_listed(dataset=dataset)),
        "can_curate": dataset.user_role in (Role.CURATOR, Role.ADMIN),
    }
    return render(request, "ui/suites.html", context)


@require_POST
@login_required
@html_errors
def suite_create(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    back = reverse("evaluation-ui:suites", args=[dataset.pk])
    form = SuiteForm(request.POST)
    if not form.is_valid():
        return back_with_error(request, back, _first_error(form))
    try:
        suite = scenarios.suite_create(
            dataset=dataset,
            user=request.user,
            name=form.cleaned_data["name"],
            description=form.cleaned_data["description"],
        )
    except CurationError as exc:
        return back_with_error(request, back, exc)
    return HttpResponseRedirect(_suite_url(dataset, suite))


@require_safe
@login_required
@html_errors
def suite_page(request: HttpRequest, dataset_id: int, suite_id: int) -> HttpResponse:
    """A suite: its tests, the form that runs it for a model, its history."""
    dataset = dataset_or_404(request, dataset_id)
    suite = selectors.suite_of(dataset=dataset, suite_id=suite_id)
    tests = list(suite.tests.all())
    history = selectors.suite_history(suite=suite)
    context = {
        "dataset": dataset,
        "tab": "evaluations",
        "suite": suite,
        "tests": tests,
        "history": _history(tests, history),
        # Each test with its result in the latest evaluation (None: not in it).
        "test_rows": list(
            zip(
                tests,
                _history(tests, history[:1])[0].cells if history else [None] * len(tests),
                strict=True,
            )
        ),
        "can_curate": dataset.user_role in (Role.CURATOR, Role.ADMIN),
        "models": curation_selectors.model_choices(dataset=dataset),
        "slices": [(s.pk, s.name) for s in curation_selectors.slices_of(dataset=dataset)],
        "baselines": selectors.baseline_choices(dataset=dataset),
        "metrics": METRIC_SUGGESTIONS,
        "comparisons": Comparison.choices,
    }
    return render(request, "ui/suite.html", context)


def _curated_suite(
    request: HttpRequest, dataset_id: int, suite_id: int
) -> tuple[Dataset, ScenarioSuite, str]:
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    suite = selectors.suite_of(dataset=dataset, suite_id=suite_id)
    return dataset, suite, _suite_url(dataset, suite)


@require_POST
@login_required
@html_errors
def suite_edit(request: HttpRequest, dataset_id: int, suite_id: int) -> HttpResponse:
    _, suite, back = _curated_suite(request, dataset_id, suite_id)
    form = SuiteForm(request.POST)
    if not form.is_valid():
        return back_with_error(request, back, _first_error(form))
    try:
        scenarios.suite_update(
            suite=suite,
            name=form.cleaned_data["name"],
            description=form.cleaned_data["description"],
        )
    except CurationError as exc:
        return back_with_error(request, back, exc)
    messages.success(request, "Suite saved.")
    return HttpResponseRedirect(back)


@require_POST
@login_required
@html_errors
def suite_delete(request: HttpRequest, dataset_id: int, suite_id: int) -> HttpResponse:
    dataset, suite, _ = _curated_suite(request, dataset_id, suite_id)
    name = suite.name
    scenarios.suite_delete(suite=suite)
    messages.success(request, f"Deleted the suite {name}.")
    return HttpResponseRedirect(reverse("evaluation-ui:suites", args=[dataset.pk]))


@require_POST
@login_required
@html_errors
def test_save(
    request: HttpRequest, dataset_id: int, suite_id: int, test_id: int | None = None
) -> HttpResponse:
    """Add a test to the suite, or (with `test_id`) change one."""
    _, suite, back = _curated_suite(request, dataset_id, suite_id)
    form = TestForm(request.POST)
    if not form.is_valid():
        return back_with_error(request, back, _first_error(form))
    try:
        if test_id is None:
            scenarios.test_create(suite=suite, **form.arguments())
        else:
            test = selectors.suite_test_of(suite=suite, test_id=test_id)
            scenarios.test_update(test=test, **form.arguments())
    except CurationError as exc:
        return back_with_error(request, back, exc)
    messages.success(request, f"Saved the test {form.cleaned_data['name']}.")
    return HttpResponseRedirect(back)


@require_POST
@login_required
@html_errors
def test_delete(request: HttpRequest, dataset_id: int, suite_id: int, test_id: int) -> HttpResponse:
    _, suite, back = _curated_suite(request, dataset_id, suite_id)
    test = selectors.suite_test_of(suite=suite, test_id=test_id)
    scenarios.test_delete(test=test)
    messages.success(request, f"Deleted the test {test.name}; its past results stay.")
    return HttpResponseRedirect(back)


@require_POST
@login_required
@html_errors
def suite_run(request: HttpRequest, dataset_id: int, suite_id: int) -> HttpResponse:
    """Evaluate the suite for a model: queues the scenario job."""
    _, suite, back = _curated_suite(request, dataset_id, suite_id)
    form = RunForm(request.POST)
    if not form.is_valid():
        return back_with_error(request, back, _first_error(form))
    try:
        evaluation = scenarios.suite_evaluate(
            suite=suite, user=request.user, model_id=form.cleaned_data["model"]
        )
    except CurationError as exc:
        return back_with_error(request, back, exc)
    messages.success(
        request,
        f"Queued evaluation #{evaluation.pk} of the suite; its results appear below as "
        "each test finishes.",
    )
    return HttpResponseRedirect(back)
