"""Reads of the evaluation app (the API's views call these; they never query)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import BooleanField, Count, Exists, Max, OuterRef, Prefetch, Q, QuerySet
from django.db.models.expressions import RawSQL

from curation.errors import NotFound
from curation.models import Dataset, Item
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
    """A run's matches, narrowed to one outcome, one label and one error type when given;
    none until the run has finished (a running run's rows are partial, a cancelled one's
    going)."""
    if run.finished is None:
        return EvaluationMatch.objects.none()
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


# ------------------------------------------------------------ the grid's outcome views


def finished_runs(*, dataset: Dataset) -> list[tuple[int, str, int, dict[str, Any]]]:
    """(id, name, model id, options) of the dataset's finished runs, newest first."""
    return list(
        EvaluationRun.objects.filter(dataset=dataset, finished__isnull=False)
        .order_by("-finished", "-id")
        .values_list("pk", "name", "model_id", "options")
    )


def object_outcomes(
    *, run_id: int, item_ids: Sequence[int]
) -> list[tuple[int | None, int | None, str]]:
    """(annotation id, prediction id, outcome) of these items' matches in the run (the
    (run, item) index: one probe per item)."""
    return list(
        EvaluationMatch.objects.filter(run_id=run_id, item_id__in=list(item_ids))
        .order_by()
        .values_list("annotation_id", "prediction_id", "outcome")
    )


def _past(column: str, descending: bool, value: float, item_id: int) -> RawSQL:
    """Rows after the cursor (value, item id) in the order, as a row comparison, which
    the index scan starts from: a deep page reads no row before it, even among many
    equal values. The ORM cannot say one; the values are bound."""
    params, boolean = (value, item_id), BooleanField()
    # (The outer query reads only evaluation_evaluationmatch: the names are its columns.)
    if column == "confidence" and descending:
        return RawSQL("(confidence, item_id) < (%s, %s)", params, output_field=boolean)
    if column == "confidence":
        return RawSQL("(confidence, item_id) > (%s, %s)", params, output_field=boolean)
    if column == "iou" and descending:
        return RawSQL("(iou, item_id) < (%s, %s)", params, output_field=boolean)
    if column == "iou":
        return RawSQL("(iou, item_id) > (%s, %s)", params, output_field=boolean)
    raise ValueError(f"no order by {column!r}")


def items_by_match(
    *,
    run_id: int,
    outcome: str,
    column: str,
    descending: bool,
    items: QuerySet[Item] | None,
    after: tuple[float, int] | None,
    limit: int,
) -> tuple[list[tuple[int, float]], bool]:
    """Items by their best match of `outcome` in the run (the highest `column` when
    `descending`, else the lowest), keyset-paged on (value, item id): one row per item,
    its best, and (with `items`) only items of that set.

    It walks an index in order (evalmatch_run_outcome_conf, evalmatch_run_tp_iou) and
    stops after `limit` + 1 items: each row read is checked to be its item's best by a
    probe of the (run, item) index, and to be in `items` by a probe of the item's key.
    """
    rows = EvaluationMatch.objects.filter(
        run_id=run_id, outcome=outcome, **{f"{column}__isnull": False}
    )
    beats = "gt" if descending else "lt"
    better = EvaluationMatch.objects.filter(
        run_id=run_id, item_id=OuterRef("item_id"), outcome=outcome
    ).filter(
        Q(**{f"{column}__{beats}": OuterRef(column)})
        | Q(**{column: OuterRef(column), "id__lt": OuterRef("id")})
    )
    rows = rows.filter(~Exists(better))
    if items is not None:
        rows = rows.filter(Exists(items.order_by().filter(pk=OuterRef("item_id"))))
    if after is not None:
        value, item_id = after
        rows = rows.filter(_past(column, descending, float(value), int(item_id)))
    order = (f"-{column}", "-item_id") if descending else (column, "item_id")
    found = list(rows.order_by(*order).values_list("item_id", column)[: limit + 1])
    return [(int(i), float(v)) for i, v in found[:limit]], len(found) > limit


# ------------------------------------------------------------------ the suites' pages

SUITE_HISTORY = 20  # suite evaluations a suite's page shows, newest first


def suites_listed(*, dataset: Dataset) -> QuerySet[ScenarioSuite]:
    """The dataset's suites by name, each with `test_count` and `last_evaluated`."""
    return (
        ScenarioSuite.objects.filter(dataset=dataset)
        .annotate(
            test_count=Count("tests", distinct=True),
            last_evaluated=Max("evaluations__created"),
        )
        .order_by("name")
    )


def suite_history(*, suite: ScenarioSuite, most: int = SUITE_HISTORY) -> list[ScenarioEvaluation]:
    """The suite's latest evaluations, newest first, with their results."""
    return list(suite_evaluations_of(suite=suite).order_by("-created", "-id")[:most])


def baseline_choices(*, dataset: Dataset) -> list[tuple[int, str]]:
    """(id, name) of the dataset's finished runs, for a test's baseline."""
    return [(pk, name) for pk, name, _, _ in finished_runs(dataset=dataset)]
