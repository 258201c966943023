"""The query bar: where its text is wrong (for underlining), and its endpoints: the live
check (error or warnings) and completion of the name at the cursor. The names come from
curation.vocabulary; the grid page (curation.ui.grid) shows the same error and warnings."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from curation import vocabulary
from curation.params import int_value
from curation.query import QueryError
from curation.query.hints import QueryWarning
from curation.ui.http import dataset_or_404, html_errors
from curation.ui.state import GridState


@dataclass(frozen=True)
class QueryErrorMark:
    """Where the query bar's text is wrong, split so the page can underline it."""

    message: str
    column: int
    before: str
    marked: str
    after: str
    at_end: bool  # the error is past the last character (the query stops too soon)
    expected: list[str]


def query_error_of(state: GridState) -> QueryErrorMark | None:
    """Where the query bar's text is wrong, split for underlining; None when it compiles."""
    if not state.q.strip():
        return None
    try:
        state.query_condition()
    except QueryError as exc:
        return _error_parts(state.q, exc)
    return None


def _error_parts(text: str, exc: QueryError) -> QueryErrorMark:
    start = min(exc.position["offset"], len(text))
    end = min(max(exc.position["end_offset"], start), len(text))
    return QueryErrorMark(
        message=exc.message,
        column=exc.position["column"],
        before=text[:start],
        marked=text[start:end],
        after=text[end:],
        at_end=start == end,
        expected=exc.expected,
    )


@require_GET
@login_required
@html_errors
def query_check(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """The query bar's error, if any, as a fragment (htmx checks while the user types)."""
    dataset = dataset_or_404(request, dataset_id)
    text = request.GET.get("query", "")
    error = None
    warnings: list[QueryWarning] = []
    if text.strip():
        try:
            warnings = vocabulary.query_check(text, dataset=dataset)
        except QueryError as exc:
            error = _error_parts(text, exc)
    context = {"query_error": error, "query_warnings": warnings, "oob": True}
    return render(request, "ui/_query_error.html", context)


@require_GET
@login_required
@html_errors
def query_complete(request: HttpRequest, dataset_id: int) -> JsonResponse:
    """Completions for the name at the query bar's cursor, from this dataset's names.

    `query` is the bar's text and `pos` the cursor (a character offset; the end when
    absent). The answer says which characters the chosen suggestion replaces.
    """
    dataset = dataset_or_404(request, dataset_id)
    text = request.GET.get("query", "")
    raw = request.GET.get("pos", "")
    position = len(text) if raw == "" else int_value(raw, "pos", low=0, high=len(text))
    found = vocabulary.query_completion(text, position, dataset=dataset)
    return JsonResponse(
        {
            "start": found.start,
            "end": found.end,
            "suggestions": [
                {"text": s.text, "label": s.label, "kind": s.kind} for s in found.suggestions
            ],
        }
    )
