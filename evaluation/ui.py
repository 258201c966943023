"""The evaluation pages of the UI: a dataset's runs, and one run's numbers, classes, PR
curves and confusion matrix with links to the items behind each count. The views read
through evaluation.selectors and shape with evaluation.pages; they never query."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from curation.models import Role
from curation.params import int_value
from curation.ui.http import dataset_or_404, html_errors
from evaluation.classification_pages import classification_page
from evaluation.compare import compare_runs
from evaluation.models import Task
from evaluation.pages import compare_page, run_page
from evaluation.selectors import run_of, runs_of


@login_required
@html_errors
def runs_page(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """The dataset's evaluation runs, newest first."""
    dataset = dataset_or_404(request, dataset_id)
    runs = list(runs_of(dataset=dataset).order_by("-created", "-id"))
    return render(
        request,
        "ui/evaluations.html",
        {"dataset": dataset, "runs": runs, "tab": "evaluations"},
    )


@login_required
@html_errors
def run_detail(request: HttpRequest, dataset_id: int, run_id: int) -> HttpResponse:
    """One run: summary cards, per-class table and PR curves, confusion matrix (a
    classification run: accuracy, per-class table, confusion matrix)."""
    dataset = dataset_or_404(request, dataset_id)
    run = run_of(dataset=dataset, run_id=run_id)
    if run.task == Task.CLASSIFICATION:
        return render(
            request,
            "ui/evaluation_classification.html",
            {"dataset": dataset, "page": classification_page(run), "tab": "evaluations"},
        )
    return render(
        request,
        "ui/evaluation.html",
        {
            "dataset": dataset,
            "page": run_page(run),
            "tab": "evaluations",
            "can_curate": dataset.user_role in (Role.CURATOR, Role.ADMIN),
        },
    )


@login_required
@html_errors
def compare(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """Two runs side by side: a form to choose them, then the deltas and the items each
    gets right and the other wrong (evaluation.compare)."""
    dataset = dataset_or_404(request, dataset_id)
    runs = list(runs_of(dataset=dataset).order_by("-created", "-id"))
    chosen = {k: request.GET.get(k) or "" for k in ("a", "b")}
    page = None
    if chosen["a"] and chosen["b"]:
        a = int_value(chosen["a"], "a", low=1)
        b = int_value(chosen["b"], "b", low=1)
        page = compare_page(dataset.pk, compare_runs(dataset=dataset, a_id=a, b_id=b))
    return render(
        request,
        "ui/evaluation_compare.html",
        {"dataset": dataset, "runs": runs, "chosen": chosen, "page": page, "tab": "evaluations"},
    )
