"""The Autotag tab of a dataset: its autotags, a form to start one (also opened from the
grid's selection bar, with the selected items as positives), and a page per autotag
where the curator refines it in rounds (confirm or reject the top and the borderline
items, retrain), sees the score histogram (each bar opens the grid on its range) and tags
or slices the items above a threshold. Reads through embeddings.autotag_selectors, writes
through embeddings.autotag; the views never query."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from curation.errors import CurationError, NotFound, invalid_field
from curation.models import Dataset, Role
from curation.params import int_value
from curation.ui.http import dataset_or_404, html_errors
from curation.ui.selection import selection_reference_ids
from embeddings import autotag as services
from embeddings import autotag_selectors as selectors
from embeddings import selectors as embedding_selectors
from embeddings.models import EmbeddingModel

MAX_ID = 2**63 - 1


def _can_curate(dataset: Dataset) -> bool:
    return getattr(dataset, "user_role", None) in (Role.CURATOR, Role.ADMIN)


@dataclass(frozen=True)
class Prefill:
    """The new-autotag form filled from the grid's selection: its positives, one a line."""

    name: str
    positives: str
    count: int


def _autotags_render(
    request: HttpRequest, dataset: Dataset, prefill: Prefill | None = None
) -> HttpResponse:
    return render(
        request,
        "ui/autotags.html",
        {
            "dataset": dataset,
            "tab": "autotag",
            "autotags": selectors.autotags_of(dataset=dataset),
            "models": selectors.models_with_vectors(dataset=dataset),
            "default_model": embedding_selectors.default_model_or_none(dataset=dataset),
            "can_curate": _can_curate(dataset),
            "prefill": prefill,
        },
    )


@require_GET
@login_required
@html_errors
def autotags_page(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """The dataset's autotags and the form that starts one."""
    return _autotags_render(request, dataset_or_404(request, dataset_id))


@require_POST
@login_required
@html_errors
def autotag_from_selection(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """The new-autotag form with the grid's selection as its positives (the selection bar's
    "Autotag from selection"); the curator names it, picks the model and starts it."""
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    refs = selection_reference_ids(dataset, request.POST)
    if len(refs) > services.MAX_EXAMPLES:
        raise invalid_field(
            "ids",
            f"an autotag takes at most {services.MAX_EXAMPLES} positives; {len(refs)} selected",
        )
    name = request.POST.get("name", "").strip()[: services.MAX_NAME]
    return _autotags_render(request, dataset, Prefill(name, "\n".join(refs), len(refs)))


def _model(dataset: Dataset, raw: str) -> EmbeddingModel:
    if not raw:
        return embedding_selectors.default_model(dataset=dataset)
    model_id = int_value(raw, "model", low=1, high=MAX_ID)
    try:
        return embedding_selectors.model_of(dataset=dataset, model_id=model_id)
    except NotFound as exc:
        raise invalid_field("model", exc.message) from exc


def _source(request: HttpRequest, side: str) -> services.ExampleSource:
    """One side's examples from the form: pasted reference ids, a slice, a tag."""
    refs = [r.strip() for r in request.POST.get(f"{side}", "").splitlines() if r.strip()]
    raw_slice = request.POST.get(f"{side}_slice", "")
    return services.ExampleSource(
        reference_ids=refs,
        slice_id=int_value(raw_slice, f"{side}_slice", low=1, high=MAX_ID) if raw_slice else None,
        tag=request.POST.get(f"{side}_tag", "").strip() or None,
    )


@require_POST
@login_required
@html_errors
def autotag_start(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """Create an autotag from the form's examples; round 1 scores as a job."""
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    try:
        autotag, _, job = services.autotag_create(
            dataset=dataset,
            user=request.user,
            name=request.POST.get("name", ""),
            model=_model(dataset, request.POST.get("model", "")),
            positives=_source(request, "positives"),
            negatives=_source(request, "negatives"),
        )
    except CurationError as exc:
        messages.error(request, exc.message)
        return HttpResponseRedirect(reverse("embeddings-ui:autotags", args=[dataset.pk]))
    messages.success(request, f"Autotag “{autotag.name}” trained; scoring job #{job.pk} started.")
    return HttpResponseRedirect(reverse("embeddings-ui:autotag", args=[dataset.pk, autotag.pk]))


@require_GET
@login_required
@html_errors
def autotag_page(request: HttpRequest, dataset_id: int, autotag_id: int) -> HttpResponse:
    """One autotag: its rounds, histogram, the items to confirm or reject, thresholds."""
    dataset = dataset_or_404(request, dataset_id)
    autotag = selectors.autotag_of(dataset=dataset, autotag_id=autotag_id)
    detail = selectors.autotag_detail(autotag=autotag)
    field = services.threshold_query(autotag, 0.0).split(" >= ")[0]
    top = selectors.top_unlabelled(autotag=autotag)
    return render(
        request,
        "ui/autotag.html",
        {
            "dataset": dataset,
            "tab": "autotag",
            "autotag": autotag,
            "detail": detail,
            "latest": detail.rounds[0] if detail.rounds else None,
            "top": top,
            "borderline": selectors.borderline(autotag=autotag, exclude=[s.item.pk for s in top]),
            "bars": selectors.histogram(autotag=autotag),
            "examples": selectors.examples_of(autotag=autotag, limit=60),
            "field": field,
            "grid_url": selectors.grid_url(dataset.pk, f"{field} >= 0.5", field),
            "can_curate": _can_curate(dataset),
        },
    )


@require_POST
@login_required
@html_errors
def autotag_retrain(request: HttpRequest, dataset_id: int, autotag_id: int) -> HttpResponse:
    """The items marked confirmed or rejected become examples; the next round trains."""
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    autotag = selectors.autotag_of(dataset=dataset, autotag_id=autotag_id)
    back = reverse("embeddings-ui:autotag", args=[dataset.pk, autotag.pk])
    marks: dict[str, list[int]] = {"pos": [], "neg": []}
    for key, value in request.POST.items():
        if key.startswith("mark-") and value in marks:
            marks[value].append(int_value(key[5:], "mark", low=1, high=MAX_ID))
    try:
        new, job = services.autotag_round_next(
            autotag=autotag,
            user=request.user,
            positives=services.ExampleSource(item_ids=marks["pos"]),
            negatives=services.ExampleSource(item_ids=marks["neg"]),
        )
    except CurationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            f"Round {new.number} trained on {len(marks['pos'])} confirmed and "
            f"{len(marks['neg'])} rejected items more; scoring job #{job.pk} started.",
        )
    return HttpResponseRedirect(back)


@require_POST
@login_required
@html_errors
def autotag_apply(request: HttpRequest, dataset_id: int, autotag_id: int) -> HttpResponse:
    """Tag the items at or above the threshold, or make a static slice of them."""
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    autotag = selectors.autotag_of(dataset=dataset, autotag_id=autotag_id)
    back = reverse("embeddings-ui:autotag", args=[dataset.pk, autotag.pk])
    name = request.POST.get("name", "")
    try:
        threshold = services.threshold_clean(request.POST.get("threshold", ""))
        if request.POST.get("action") == "slice":
            made, count = services.autotag_slice(
                autotag=autotag, user=request.user, threshold=threshold, name=name
            )
            messages.success(request, f"Slice “{made.name}” made of {count} items.")
        else:
            tag, count = services.autotag_tag(autotag=autotag, threshold=threshold, tag=name)
            messages.success(request, f"Tagged {count} items “{tag.name}”.")
    except CurationError as exc:
        messages.error(request, exc.message)
    return HttpResponseRedirect(back)
