"""The Select tab: the selection builder (pool, strategies with weight sliders, budget,
seed, Preview, Create) and the dataset's past selections. The page calls the selection API
(selection/api.py) from plain JS; the view reads through selectors only."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from curation.access import has_role
from curation.models import Role
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
