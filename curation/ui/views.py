"""Pages around the datasets: the list with create and ingest, jobs, API tokens, stats.

Views are thin: check access, call the same service or selector as the REST API, render.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST, require_safe

from curation import facets, selectors, services
from curation.access import has_role
from curation.errors import CurationError, InvalidInput
from curation.ingest import services as ingest
from curation.jobs import job_cancel
from curation.models import ApiToken, Dataset, Job, JobStatus, Role
from curation.params import int_value
from curation.quality.jobs import quality_job_start
from curation.ui import charts
from curation.ui.extensions import Coverage, vector_panels
from curation.ui.forms import DatasetCreateForm, IngestForm, TokenCreateForm
from curation.ui.http import dataset_or_404, form_errors_from, html_errors, next_url
from curation.ui.jobs import job_page
from curation.ui.palette import dataset_colours

JOBS_PER_PAGE = 50
MAX_ID = 10**18 - 1  # a job id cursor has at most 18 digits (bigint holds 19)


@dataclass(frozen=True)
class DatasetRow:
    """A dataset as the datasets page lists it."""

    dataset: Dataset
    item_count: int
    item_count_exact: bool
    coverage: Coverage | None
    last_change: datetime
    can_curate: bool


@dataclass(frozen=True)
class JobRow:
    """A job as ui/_job.html shows it: with whether this user may cancel it."""

    job: Job
    can_cancel: bool


def _datasets_page(
    request: HttpRequest,
    *,
    create_form: DatasetCreateForm | None = None,
    ingest_form: IngestForm | None = None,
    ingest_for: int | None = None,
    status: int = 200,
) -> HttpResponse:
    datasets = selectors.datasets_with_last_job(user=request.user)
    rows = []
    for dataset in datasets:
        item_count, item_count_exact = selectors.dataset_item_count(dataset=dataset)
        changes = [t for t in (dataset.updated, dataset.last_job) if t is not None]
        rows.append(
            DatasetRow(
                dataset=dataset,
                item_count=item_count,
                item_count_exact=item_count_exact,
                coverage=vector_panels().dataset_coverage(dataset, item_count),
                last_change=max(changes) if changes else dataset.created,
                can_curate=dataset.user_role in (Role.CURATOR, Role.ADMIN),
            )
        )
    active = selectors.recent_jobs(user=request.user, datasets=datasets, limit=5)
    roles: dict[int | None, str] = {d.pk: d.user_role for d in datasets}
    recent_jobs = [
        JobRow(job=job, can_cancel=has_role(roles.get(job.dataset_id), Role.CURATOR))
        for job in active
    ]
    context = {
        "nav": "datasets",
        "datasets": rows,
        "create_form": create_form or DatasetCreateForm(),
        "ingest_form": ingest_form,
        "blank_ingest_form": IngestForm(),
        "ingest_for": ingest_for,
        "recent_jobs": recent_jobs,
        "random_weight_models": vector_panels().random_weight_models(datasets),
    }
    return render(request, "ui/datasets.html", context, status=status)


@require_safe
@login_required
def dataset_list(request: HttpRequest) -> HttpResponse:
    """The datasets the user has a role on, with forms to create one and start an ingest."""
    return _datasets_page(request)


@require_POST
@login_required
def dataset_create(request: HttpRequest) -> HttpResponse:
    form = DatasetCreateForm(request.POST)
    if form.is_valid():
        try:
            dataset = services.dataset_create(owner=request.user, **form.cleaned_data)
        except CurationError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(
                request, f"Created dataset “{dataset.name}”. Start an ingest to fill it."
            )
            return HttpResponseRedirect(
                reverse("ui:datasets") + f"?ingest={dataset.pk}#ingest-{dataset.pk}"
            )
    return _datasets_page(request, create_form=form, status=400)


@require_POST
@login_required
@html_errors
def dataset_ingest(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """Start an ingest job from a folder under an import root or an uploaded file."""
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    form = IngestForm(request.POST, request.FILES)
    if form.is_valid():
        source = form.source()
        try:
            upload = form.cleaned_data.get("file")
            if upload is not None:
                source["upload_key"] = ingest.ingest_store_upload(
                    dataset=dataset, filename=upload.name, fileobj=upload
                )
            job = ingest.ingest_enqueue(dataset=dataset, user=request.user, source=source)
        except CurationError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(request, f"Ingest job #{job.pk} started for “{dataset.name}”.")
            return HttpResponseRedirect(reverse("ui:datasets") + f"#job-{job.pk}")
    return _datasets_page(request, ingest_form=form, ingest_for=dataset.pk, status=400)


# ------------------------------------------------------------------------------------ jobs


@require_GET
@login_required
@html_errors
def job_progress(request: HttpRequest, dataset_id: int, job_id: int) -> HttpResponse:
    """One job's progress row; htmx polls it until the job finishes (then 286 stops it)."""
    dataset = dataset_or_404(request, dataset_id)
    job = selectors.job_of(dataset=dataset, job_id=job_id)
    context = {
        "job": job,
        "poll": not job.is_finished,
        "compact": request.GET.get("compact") == "1",
        "can_cancel": has_role(dataset.user_role, Role.CURATOR),
    }
    response = render(request, "ui/_job.html", context)
    if job.is_finished:
        response.status_code = 286  # htmx: stop polling
        response["HX-Trigger"] = "job-finished"  # pages refresh what the job changed
    return response


@require_safe
@login_required
@html_errors
def job_detail(request: HttpRequest, dataset_id: int, job_id: int) -> HttpResponse:
    """One job: parameters, status and progress, timing, result, errors, what it made."""
    dataset = dataset_or_404(request, dataset_id)  # as the jobs list: any role on the dataset
    job = selectors.job_of(dataset=dataset, job_id=job_id)
    context = {
        "nav": "jobs",
        "tab": "jobs",
        "dataset": dataset,
        "page": job_page(job, can_cancel=has_role(dataset.user_role, Role.CURATOR)),
        "random_weight_models": vector_panels().random_weight_models([dataset]),
    }
    return render(request, "ui/job.html", context)


@require_safe
@login_required
@html_errors
def job_list(request: HttpRequest) -> HttpResponse:
    """Running and recent jobs of the user's datasets (or of one), newest first."""
    dataset = None
    if request.GET.get("dataset"):
        dataset = dataset_or_404(request, request.GET["dataset"])
    status = request.GET.get("status", "")
    try:
        # A hand-edited cursor is ignored: the list starts from the newest job.
        before: int | None = int_value(request.GET.get("before", ""), "before", low=0, high=MAX_ID)
    except InvalidInput:
        before = None
    rows = selectors.jobs_listed(
        user=request.user,
        dataset=dataset,
        status=status if status in JobStatus.values else "",
        before=before,
        limit=JOBS_PER_PAGE + 1,
    )
    visible = list(selectors.datasets_for_user(request.user))
    roles: dict[int | None, str] = {d.pk: d.user_role for d in visible}
    context = {
        "nav": "jobs",
        "tab": "jobs",
        "dataset": dataset,
        "jobs": [
            JobRow(job=job, can_cancel=has_role(roles.get(job.dataset_id), Role.CURATOR))
            for job in rows[:JOBS_PER_PAGE]
        ],
        "next_before": rows[JOBS_PER_PAGE - 1].pk if len(rows) > JOBS_PER_PAGE else None,
        "status": status,
        "statuses": JobStatus.values,
        "random_weight_models": vector_panels().random_weight_models(
            [dataset] if dataset else visible
        ),
    }
    return render(request, "ui/jobs.html", context)


@require_POST
@login_required
@html_errors
def job_cancel_view(request: HttpRequest, dataset_id: int, job_id: int) -> HttpResponse:
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    job = selectors.job_of(dataset=dataset, job_id=job_id)
    try:
        job_cancel(job=job)
    except CurationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Job #{job.pk} cancelled.")
    return HttpResponseRedirect(next_url(request, reverse("ui:jobs")))


# ---------------------------------------------------------------------------------- tokens


def _tokens_page(
    request: HttpRequest,
    *,
    form: TokenCreateForm | None = None,
    created: ApiToken | None = None,
    secret: str = "",
    status: int = 200,
) -> HttpResponse:
    context = {
        "nav": "tokens",
        "tokens": selectors.tokens_of(user=request.user),
        "form": form or TokenCreateForm(),
        "created": created,
        "secret": secret,
    }
    return render(request, "ui/tokens.html", context, status=status)


@require_safe
@login_required
def token_list(request: HttpRequest) -> HttpResponse:
    """The user's API tokens, and a form to create one."""
    return _tokens_page(request)


@require_POST
@login_required
def token_create(request: HttpRequest) -> HttpResponse:
    """Create a token and show its secret, once, in this response (it is never stored)."""
    form = TokenCreateForm(request.POST)
    if not form.is_valid():
        return _tokens_page(request, form=form, status=400)
    token, secret = services.token_create(user=request.user, name=form.cleaned_data["name"])
    response = _tokens_page(request, created=token, secret=secret)
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@login_required
@html_errors
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = selectors.token_of(user=request.user, token_id=token_id)
    services.token_revoke(token=token)
    messages.success(
        request, f"Token “{token.name}” revoked; programs using it can no longer sign in."
    )
    return HttpResponseRedirect(reverse("ui:tokens"))


# ----------------------------------------------------------------------------------- stats


@require_POST
@login_required
@html_errors
def quality_start(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """Start the job that computes image quality for the items ingested before it existed."""
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    job = quality_job_start(dataset=dataset, user=request.user)
    messages.success(request, f"Image quality job #{job.pk} started; follow it on the jobs page.")
    return HttpResponseRedirect(reverse("ui:stats", args=[dataset.pk]))


@require_safe
@login_required
@html_errors
def dataset_stats(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """Label histogram, boxes per item, metadata distributions and embedding coverage."""
    dataset = dataset_or_404(request, dataset_id)
    summary = facets.dataset_summary(dataset, refresh=request.GET.get("refresh") == "1")
    count = summary.basis.item_count
    colours = dataset_colours(dataset)
    grid = reverse("ui:grid", args=[dataset.pk])

    def query_url(query: str) -> str:
        return f"{grid}?{urlencode({'query': query})}"

    figures = summary.quality
    context = {
        "tab": "stats",
        "dataset": dataset,
        "summary": summary,
        "label_chart": charts.bars(
            [(lc.label, lc.annotations) for lc in summary.labels], colours=colours
        ),
        "label_items_chart": charts.bars(
            [(lc.label, lc.items) for lc in summary.labels], colours=colours
        ),
        "boxes_chart": charts.columns(summary.boxes_per_item),
        "metadata_charts": [charts.metadata_chart(key) for key in summary.metadata],
        "quality": figures,
        "quality_charts": [] if figures is None else charts.quality_charts(figures, query_url),
        "quality_flags_chart": None
        if figures is None
        else charts.quality_flags_chart(figures, query_url),
        "coverage": vector_panels().models_coverage(dataset, count),
        "can_curate": has_role(dataset.user_role, Role.CURATOR),
        "random_weight_models": vector_panels().random_weight_models([dataset]),
    }
    return render(request, "ui/stats.html", context)
