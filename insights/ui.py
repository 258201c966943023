"""The Insights page of a dataset: each registered section (insights/sections.py) with
what its selector read, and the buttons of its sections (compute the scores, find leaks,
remove them from one side). The views read through the sections; they never query."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from curation.errors import CurationError
from curation.models import Role
from curation.params import int_value
from curation.ui.http import dataset_or_404, html_errors
from embeddings.selectors import default_model, default_model_or_none
from insights.leaks import latest_report, leaks_job_start, leaks_remove
from insights.sections import rendered
from insights.uniqueness import scores_job_start

MAX_ID = 2**63 - 1


@login_required
@html_errors
def insights_page(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = dataset_or_404(request, dataset_id)
    return render(
        request,
        "insights/page.html",
        {"dataset": dataset, "sections": rendered(dataset, request.user), "tab": "insights"},
    )


def _back(dataset_id: int, section: str) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("insights-ui:page", args=[dataset_id]) + f"#{section}")


@require_POST
@login_required
@html_errors
def scores_start(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """Compute the scores of the dataset's default model (a job)."""
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    try:
        model = default_model(dataset=dataset)
        job = scores_job_start(dataset=dataset, user=request.user, model=model)
    except CurationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Scores job #{job.pk} started; follow it on the jobs page.")
    return _back(dataset.pk, "insights-scores")


@require_POST
@login_required
@html_errors
def leaks_start(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """Find the leaks between the two sides the form names (a job)."""
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    try:
        job = leaks_job_start(
            dataset=dataset,
            user=request.user,
            a=request.POST.get("a", ""),
            b=request.POST.get("b", ""),
            model=default_model_or_none(dataset=dataset),
        )
    except CurationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Leaks job #{job.pk} started; follow it on the jobs page.")
    return _back(dataset.pk, "insights-leaks")


@require_POST
@login_required
@html_errors
def leaks_remove_side(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """Take the report's leaking items out of one side: untag them, or remove them from
    the slice."""
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    report_id = int_value(request.POST.get("report", ""), "report", low=1, high=MAX_ID)
    try:
        result = leaks_remove(
            report=latest_report(dataset=dataset, report_id=report_id),
            side=request.POST.get("side", ""),
        )
    except CurationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, f"{result['removed']} items taken out of {result['removed_from']}."
        )
    return _back(dataset.pk, "insights-leaks")
