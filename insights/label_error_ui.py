"""The Insights page's label-error and uncertainty buttons: scan a run for label-error
candidates, save a list as a slice or a tag, compute a model's uncertainty. The views
call one service each; they never query."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from curation.errors import CurationError
from curation.models import Role
from curation.params import int_value
from curation.ui.http import back_with_error, dataset_or_404, html_errors
from insights.label_error_scan import label_error_scan_create, label_errors_save
from insights.label_error_selectors import SECTION_TOP, scan_of
from insights.uncertainty import uncertainty_start


def _page(dataset_id: int) -> str:
    return reverse("insights-ui:page", args=[dataset_id]) + "#insights-label-errors"


@login_required
@require_POST
@html_errors
def label_errors_scan(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """Start a label-error scan of a finished evaluation run (curators)."""
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    try:
        scan = label_error_scan_create(
            dataset=dataset,
            user=request.user,
            run_id=request.POST.get("run"),
            # An unticked box is not sent: the form always sends `look_sent`.
            look=request.POST.get("look") == "on" or "look_sent" not in request.POST,
        )
    except CurationError as exc:
        return back_with_error(request, _page(dataset.pk), exc)
    messages.success(request, f"Finding label errors in “{scan.run.name}” (job {scan.job_id}).")
    return HttpResponseRedirect(_page(dataset.pk))


@login_required
@require_POST
@html_errors
def label_errors_save_view(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """Make a ranked list a static slice or a tag (curators)."""
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    try:
        scan = scan_of(dataset=dataset, scan_id=request.POST.get("scan"))
        kind, made, added = label_errors_save(
            dataset=dataset,
            user=request.user,
            scan=scan,
            type=request.POST.get("type") or None,
            limit=int_value(
                request.POST.get("limit") or str(SECTION_TOP), "limit", low=1, high=10_000
            ),
            save_as=request.POST.get("as", ""),
            name=request.POST.get("name", ""),
        )
    except CurationError as exc:
        return back_with_error(request, _page(dataset.pk), exc)
    if kind == "slice":
        messages.success(request, f"Saved {added} items as the slice “{made.name}”.")
        return HttpResponseRedirect(reverse("ui:slice", args=[dataset.pk, made.pk]))
    messages.success(request, f"Tagged {added} items “{made.name}”.")
    return HttpResponseRedirect(_page(dataset.pk))


@login_required
@require_POST
@html_errors
def uncertainty_start_view(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """Start computing a model's uncertainty per item (curators)."""
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    back = reverse("insights-ui:page", args=[dataset.pk]) + "#insights-uncertainty"
    try:
        job = uncertainty_start(
            dataset=dataset, user=request.user, model_id=request.POST.get("model")
        )
    except CurationError as exc:
        return back_with_error(request, back, exc)
    messages.success(request, f"Computing the model's uncertainty (job {job.pk}).")
    return HttpResponseRedirect(back)
