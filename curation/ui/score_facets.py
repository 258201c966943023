"""The grid's score facets (curation.score_facets): the closed entries of the sidebar,
the histogram each one asks for when it is opened (htmx), and the chips of the ranges
that are on. A bucket is a link that toggles its range (`score.<field>=<low>,<high>`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils.html import escape
from django.views.decorators.http import require_GET

from curation import score_facets, selectors
from curation.errors import InvalidInput
from curation.models import Dataset, Slice
from curation.score_facets import number_text
from curation.ui.http import dataset_or_404, html_errors
from curation.ui.state import SCORE_PREFIX, GridState

# The parameters of the histogram request that are not the view's.
_OWN = ("facet", "field")


@dataclass(frozen=True)
class ScoreEntry:
    """A score facet's field in the sidebar, closed until opened (then `url` is asked)."""

    key: str
    title: str
    label: str
    field: str
    meaning: str
    url: str
    active: bool  # a range of it is on: listed open, its histogram asked for at once


@dataclass
class ScoreSection:
    title: str
    entries: list[ScoreEntry] = field(default_factory=list)


def score_sections(
    state: GridState, dataset: Dataset, base_slice: Slice | None
) -> list[ScoreSection]:
    """The sidebar's score facets that have fields in the dataset, by section."""
    if base_slice is None:
        path = reverse("ui:score-facet", args=[dataset.pk])
    else:
        path = reverse("ui:slice-score-facet", args=[dataset.pk, base_slice.pk])
    sections: dict[str, ScoreSection] = {}
    for facet, variants in score_facets.available(dataset):
        section = sections.setdefault(facet.section, ScoreSection(facet.section))
        for variant in variants:
            section.entries.append(
                ScoreEntry(
                    key=facet.key,
                    title=facet.title,
                    label=variant.label,
                    field=variant.field,
                    meaning=facet.meaning,
                    url=state.url(path, {"facet": facet.key, "field": variant.field}),
                    active=variant.field in state.score_ranges,
                )
            )
    return list(sections.values())


def range_text(low: float, high: float | None) -> str:
    if high is None:
        return f"≥ {number_text(low)}"
    return f"[{number_text(low)}, {number_text(high)})"


def _ranges_on(state: GridState, param: str) -> dict[str, str]:
    """The ranges of a `score.<field>` parameter that are on: the parameter's value as the
    links write it (range_value) -> as the URL has it (a hand-written "0.80,0.90")."""
    return {
        score_facets.range_value(*score_facets.parse_range(raw)): raw
        for raw in state.params.get(param, [])
        if raw != ""
    }


def score_chips(state: GridState, base: str) -> list[tuple[str, str]]:
    """(text, link that takes it off) of each score range that is on."""
    chips = []
    for name in state.score_ranges:
        param = SCORE_PREFIX + name
        for raw in _ranges_on(state, param).values():
            low, high = score_facets.parse_range(raw)
            chips.append((f"{name} {range_text(low, high)}", state.toggled(base, param, raw)))
    return chips


@dataclass(frozen=True)
class BarRow:
    text: str
    count: int
    height: int  # percent of the tallest bucket
    active: bool
    url: str
    query: str


@require_GET
@login_required
@html_errors
def score_facet(request: HttpRequest, dataset_id: int, slice_id: int | None = None) -> HttpResponse:
    """One score facet's histogram over the view's items (htmx, when it is opened)."""
    dataset = dataset_or_404(request, dataset_id)
    base_slice = selectors.slice_of(dataset=dataset, slice_id=slice_id) if slice_id else None
    if base_slice is None:
        base = reverse("ui:grid", args=[dataset.pk])
    else:
        base = reverse("ui:slice", args=[dataset.pk, base_slice.pk])
    params = QueryDict(mutable=True)
    for name, values in request.GET.lists():
        if name not in _OWN:
            params.setlist(name, values)
    found = score_facets.variant_of(
        dataset, request.GET.get("facet", ""), request.GET.get("field", "")
    )
    if found is None:
        return HttpResponse('<p class="facet-empty">No such score in this dataset.</p>', status=404)
    facet, variant = found
    param = SCORE_PREFIX + variant.field
    try:
        state = GridState(params, dataset=dataset, base_slice=base_slice)
        # As the other facets: a field with a range on counts the view without its own
        # ranges, so the other buckets stay listed with what they would add.
        counted = state.without_param(param) if param in state.params else state
        histogram = score_facets.score_histogram(
            dataset,
            counted.facet_items(),
            facet,
            variant.field,
            refresh=request.GET.get("refresh") == "1",
        )
    except InvalidInput as exc:
        return HttpResponse(f'<p class="facet-empty">{escape(exc.message)}</p>', status=400)
    current = _ranges_on(state, param)
    tallest = max((b.count for b in histogram.bins), default=0) or 1
    bars = [
        BarRow(
            text=range_text(b.low, b.high),
            count=b.count,
            height=round(100 * b.count / tallest),
            active=b.value in current,
            url=state.toggled(base, param, current.get(b.value, b.value)),
            query=b.query,
        )
        for b in histogram.bins
    ]
    context = {"histogram": histogram, "bars": bars, "facet": facet, "variant": variant}
    return render(request, "ui/_score_histogram.html", context)
