"""Reads of the evaluation app (the API's views call these; they never query)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from curation.errors import NotFound
from curation.models import Dataset
from evaluation.models import EvaluationMatch, EvaluationRun


def runs_of(*, dataset: Dataset) -> QuerySet[EvaluationRun]:
    return EvaluationRun.objects.filter(dataset=dataset).select_related(
        "model", "job", "created_by"
    )


def run_of(*, dataset: Dataset, run_id: Any) -> EvaluationRun:
    try:
        pk = int(run_id)
    except (TypeError, ValueError):
        raise NotFound("Evaluation run not found.") from None
    found = runs_of(dataset=dataset).filter(pk=pk).first()
    if found is None:
        raise NotFound("Evaluation run not found.")
    return found


def matches_of(
    *, run: EvaluationRun, outcome: str | None = None, label: str | None = None
) -> QuerySet[EvaluationMatch]:
    """A run's matches, narrowed to one outcome and one label when given."""
    rows = EvaluationMatch.objects.filter(run=run)
    if outcome is not None:
        rows = rows.filter(outcome=outcome)
    if label is not None:
        rows = rows.filter(label=label)
    return rows
