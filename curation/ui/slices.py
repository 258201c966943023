"""Slice pages: the slice's items in the same grid, its versions (freeze, diff, restore)
and export buttons. Versions come from curation.versions and exports are the REST API's own
streamed export endpoints, which accept the browser's session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from curation import facets, itemsets, selectors, slices, versions
from curation.access import has_role
from curation.errors import CurationError
from curation.export.formats import ITEM_FORMATS
from curation.models import Dataset, Role, Slice, SliceVersion
from curation.params import int_value
from curation.ui.extensions import vector_panels
from curation.ui.grid import COUNT_CAP, grid_render
from curation.ui.http import back_with_error, dataset_or_404, html_errors
from curation.ui.state import GridState

DIFF_SHOWN = 200


@dataclass(frozen=True)
class SliceCount:
    """The slice page's one count: None when the saved query no longer evaluates."""

    items: int | None
    capped: bool  # there are more than `items`


@dataclass(frozen=True)
class VersionRow:
    """A row of the versions table: the version and its export links."""

    version: SliceVersion
    exports: list[tuple[str, str]]


def export_links(
    dataset: Dataset, found: Slice | None = None, version: int | None = None
) -> list[tuple[str, str]]:
    """(format, URL) of the API's streamed export of a dataset, a slice or a version."""
    if found is None:
        base = reverse("api-dataset-export", args=[dataset.pk])
    else:
        base = reverse("api-slice-export", args=[dataset.pk, found.pk])
    suffix = f"&version={version}" if version is not None else ""
    return [(name, f"{base}?format={name}{suffix}") for name in ITEM_FORMATS]


def _slice_context(dataset: Dataset, found: Slice) -> dict[str, Any]:
    # The page's one count, stopping past COUNT_CAP: a static slice's members, or what a
    # dynamic slice's query matches now.
    problem = ""
    try:
        count = selectors.count_upto(itemsets.slice_items(found), most=COUNT_CAP)
    except CurationError as exc:
        # A saved query that no longer compiles (it names a slice since deleted): show the
        # slice with the reason, so its versions and exports stay reachable.
        problem = exc.message
        slice_count = SliceCount(items=None, capped=False)
    else:
        slice_count = SliceCount(items=min(count, COUNT_CAP), capped=count > COUNT_CAP)
    numbered = list(versions.slice_versions(slice=found))
    return {
        "slice_problem": problem,
        "slice_count": slice_count,
        "versions": numbered[::-1],
        "version_rows": [
            VersionRow(version=v, exports=export_links(dataset, found, v.number))
            for v in numbered[::-1]
        ],
        "exports": export_links(dataset, found),
        "can_curate": has_role(dataset.user_role, Role.CURATOR),
        "query_url": f"{reverse('ui:grid', args=[dataset.pk])}?{urlencode({'query': found.query})}"
        if found.query.strip()
        else "",
    }


@require_safe
@login_required
@html_errors
def slice_page(request: HttpRequest, dataset_id: int, slice_id: int) -> HttpResponse:
    """A slice: its items as a grid, its versions, export buttons."""
    dataset = dataset_or_404(request, dataset_id)
    found = selectors.slice_of(dataset=dataset, slice_id=slice_id)
    base = reverse("ui:slice", args=[dataset.pk, found.pk])
    return grid_render(request, dataset, found, base, _slice_context(dataset, found))


@require_POST
@login_required
@html_errors
def version_freeze(request: HttpRequest, dataset_id: int, slice_id: int) -> HttpResponse:
    """Freeze the slice as a new numbered version."""
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    found = selectors.slice_of(dataset=dataset, slice_id=slice_id)
    note = request.POST.get("note", "").strip()
    back = reverse("ui:slice", args=[dataset.pk, found.pk])
    if len(note) > 2000:
        return back_with_error(request, back, "The note is longer than 2,000 characters.")
    if "\x00" in note:
        return back_with_error(request, back, "The note must not contain NUL characters.")
    try:
        version = versions.slice_version_create(slice=found, user=request.user, note=note)
    except CurationError as exc:  # a dynamic slice whose query no longer compiles
        return back_with_error(request, back, f"Could not freeze the slice: {exc.message}")
    messages.success(
        request,
        f"Froze version {version.number}: {version.item_count} items, "
        f"{version.annotation_count} annotations.",
    )
    return HttpResponseRedirect(back)


@require_POST
@login_required
@html_errors
def version_restore(
    request: HttpRequest, dataset_id: int, slice_id: int, number: int
) -> HttpResponse:
    """Make a version's items the slice's items again."""
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    found = selectors.slice_of(dataset=dataset, slice_id=slice_id)
    version = versions.slice_version_of(slice=found, number=number)
    result = versions.slice_version_restore(slice=found, version=version)
    facets.summary_forget(dataset)
    text = f"Restored version {version.number}: the slice has {result['item_count']} items."
    if result["missing"]:
        text += f" {result['missing']} items of that version were deleted from the dataset since."
    messages.success(request, text)
    return HttpResponseRedirect(reverse("ui:slice", args=[dataset.pk, found.pk]))


def _version_param(request: HttpRequest, found: Slice, name: str) -> SliceVersion:
    number = int_value(request.GET.get(name, ""), name, low=0, message="choose a version")
    return versions.slice_version_of(slice=found, number=number)


@require_safe
@login_required
@html_errors
def version_diff(request: HttpRequest, dataset_id: int, slice_id: int) -> HttpResponse:
    """What changed between two versions of a slice: added, removed, changed items."""
    dataset = dataset_or_404(request, dataset_id)
    found = selectors.slice_of(dataset=dataset, slice_id=slice_id)
    context: dict[str, Any] = {
        "tab": "items",
        "dataset": dataset,
        "slice": found,
        "versions": list(versions.slice_versions(slice=found)),
        "random_weight_models": vector_panels().random_weight_models([dataset]),
    }
    try:
        old, new = _version_param(request, found, "from"), _version_param(request, found, "to")
    except CurationError as exc:
        context["error"] = exc.message
        return render(request, "ui/slice_diff.html", context, status=400)
    context.update(
        old=old,
        new=new,
        diff=versions.slice_versions_diff(old=old, new=new, limit=DIFF_SHOWN),
    )
    return render(request, "ui/slice_diff.html", context)


@require_POST
@login_required
@html_errors
def slice_from_view(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """Save the view (query, labels, metadata, tag and slice facets) as a dynamic slice,
    re-evaluated on every read."""
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    fallback = reverse("ui:grid", args=[dataset.pk])
    try:
        state = GridState(QueryDict(request.POST.get("view", "")), dataset=dataset)
    except CurationError as exc:  # a hand-edited view (like=abc, a bad cursor)
        return back_with_error(request, fallback, exc)
    query, why_not = state.view_query()
    if not query:
        return back_with_error(request, fallback, why_not)
    try:
        created, _ = slices.slice_create_from_query(
            dataset=dataset, user=request.user, name=request.POST.get("name", ""), query=query
        )
    except CurationError as exc:
        return back_with_error(request, fallback, exc)
    facets.summary_forget(dataset)
    messages.success(request, f"Saved the view as the dynamic slice “{created.name}”.")
    return HttpResponseRedirect(reverse("ui:slice", args=[dataset.pk, created.pk]))
