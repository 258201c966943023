"""The Insights page of a dataset: each registered section (insights/sections.py) with
what its selector read. The view reads through the sections; it never queries."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from curation.ui.http import dataset_or_404, html_errors
from insights.sections import rendered


@login_required
@html_errors
def insights_page(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = dataset_or_404(request, dataset_id)
    return render(
        request,
        "insights/page.html",
        {"dataset": dataset, "sections": rendered(dataset, request.user), "tab": "insights"},
    )
