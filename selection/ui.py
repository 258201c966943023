"""The Select tab: the selection builder (pool, strategies with weight sliders, budget,
seed, Preview, Create) and the dataset's past selections. The page calls the selection API
(selection/api.py) from plain JS; the view reads through selectors only. And what the job
page links a finished selection job to: the slice it made."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from curation.access import has_role
from curation.models import Job, Role
from curation.ui.extensions import JobLink
from curation.ui.http import dataset_or_404, html_errors
from selection import selectors
from selection.strategies import REGISTRY


@login_required
@html_errors
def builder(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = dataset_or_404(request, dataset_id)
    names = selectors.models_for_builder(dataset=dataset)
    strategies = [
        {"name": s.name, "kind": s.kind, "needs": s.needs, "options": list(s.options)}
        for s in REGISTRY.values()
    ]
    return render(
        request,
        "selection/builder.html",
        {
            "dataset": dataset,
            "tab": "select",
            "names": names,
            "strategies": strategies,
            "selections": selectors.selections_of(dataset=dataset)[:20],
            "can_create": has_role(dataset.user_role, Role.CURATOR),
        },
    )


def selection_job_links(job: Job) -> list[JobLink]:
    """A succeeded selection job's slice (from its result: no query), registered in
    selection/apps.py for curation's job page."""
    slice_id = job.result.get("slice")
    if job.dataset_id is None or not isinstance(slice_id, int):
        return []  # the selection was deleted before the job ran: it made nothing
    url = reverse("ui:slice", args=[job.dataset_id, slice_id])
    items = job.result.get("items")
    label = (
        f"The selected slice ({items} items)" if isinstance(items, int) else "The selected slice"
    )
    return [JobLink(label, url, "slice")]
