"""Reads of the evaluation app (the API's views call these; they never query)."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet

from curation.errors import NotFound
from curation.models import Dataset
from evaluation.models import (
    EvaluationMatch,
    EvaluationRun,
    ScenarioEvaluation,
    ScenarioResult,
    ScenarioSuite,
    ScenarioTest,
)


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
    *,
    run: EvaluationRun,
    outcome: str | None = None,
    label: str | None = None,
    error_type: str | None = None,
) -> QuerySet[EvaluationMatch]:
    """A run's matches, narrowed to one outcome, one label and one error type when given."""
    rows = EvaluationMatch.objects.filter(run=run)
    if error_type is not None:
        rows = rows.filter(error_type=error_type)
    if outcome is not None:
        rows = rows.filter(outcome=outcome)
    if label is not None:
        rows = rows.filter(label=label)
    return rows


def suites_of(*, dataset: Dataset) -> QuerySet[ScenarioSuite]:
    return ScenarioSuite.objects.filter(dataset=dataset).prefetch_related(
        Prefetch("tests", queryset=ScenarioTest.objects.select_related("baseline"))
    )


def suite_of(*, dataset: Dataset, suite_id: Any) -> ScenarioSuite:
    try:
        pk = int(suite_id)
    except (TypeError, ValueError):
        raise NotFound("Scenario suite not found.") from None
    found = suites_of(dataset=dataset).filter(pk=pk).first()
    if found is None:
        raise NotFound("Scenario suite not found.")
    return found


def suite_test_of(*, suite: ScenarioSuite, test_id: Any) -> ScenarioTest:
    try:
        pk = int(test_id)
    except (TypeError, ValueError):
        raise NotFound("Scenario test not found.") from None
    found = ScenarioTest.objects.filter(suite=suite, pk=pk).first()
    if found is None:
        raise NotFound("Scenario test not found.")
    return found


def suite_evaluations_of(*, suite: ScenarioSuite) -> QuerySet[ScenarioEvaluation]:
    """A suite's history: its evaluations with their results."""
    return (
        ScenarioEvaluation.objects.filter(suite=suite)
        .select_related("model", "job", "created_by")
        .prefetch_related(Prefetch("results", queryset=ScenarioResult.objects.order_by("id")))
    )


def suite_evaluation_of(*, suite: ScenarioSuite, evaluation_id: Any) -> ScenarioEvaluation:
    try:
        pk = int(evaluation_id)
    except (TypeError, ValueError):
        raise NotFound("Suite evaluation not found.") from None
    found = suite_evaluations_of(suite=suite).filter(pk=pk).first()
    if found is None:
        raise NotFound("Suite evaluation not found.")
    return found
