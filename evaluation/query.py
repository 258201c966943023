"""The query language's `eval[<run>]` field: items by their outcomes in a run.

    eval[baseline].fp >= 1            items with a false positive in run "baseline"
    eval["yolo v8"].fn.pedestrian >= 2  items where it missed two pedestrians or more
    eval[baseline].tp = 0             items without a true positive
    eval[baseline].error = 0          items without a false positive or a false negative
    eval[baseline].error.localization.car >= 1   items with a car placed badly (TIDE)
    eval[classifier].wrong >= 1       (classification runs) items classified wrongly
    eval[classifier].fp.car >= 1      (classification runs) predicted car, but not car
    eval[baseline].fp.confidence > 0.8   items with an FP above 0.8 confidence (object level)
    eval[baseline].tp.car.iou < 0.6      items with a car found but placed poorly

Each count is a correlated subquery on the run's EvaluationMatch rows of the item, served
by their (run, item) index; "at least one" and "none" are EXISTS / NOT EXISTS, as for the
language's own counts (curation.query.count_condition). Every count is also a value per
item, so it sorts the grid (curation.query.sort_expression). curation never imports this
app: EvaluationConfig.ready registers the field.
"""

from __future__ import annotations

import difflib
from typing import Any

from django.db.models import (
    Count,
    Exists,
    FloatField,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Coalesce

from curation.models import Dataset
from curation.query import FieldCondition, FieldHelp, FieldRef, count_condition
from evaluation.models import ErrorType, EvaluationMatch, EvaluationRun, Outcome, Task

FIELD = "eval"
MAX_RUN_NAMES = 1000
OUTCOMES = tuple(o.value for o in Outcome)
ERROR = "error"
ERROR_TYPES = tuple(e.value for e in ErrorType)
# Classification runs' per-item words for their rows (evaluation.classification): a
# correct item has a TP row, a wrong one an FN row (of its true label).
ITEM_OUTCOMES = {"correct": "tp", "wrong": "fn"}
_OPS = ("=", "!=", "<", "<=", ">", ">=")


def _run(dataset: Dataset, key: str | None) -> EvaluationRun:
    name = key or ""
    run = EvaluationRun.objects.filter(dataset=dataset, name=name).first()
    if run is not None:
        return run
    names = list(
        EvaluationRun.objects.filter(dataset=dataset)
        .order_by("name")
        .values_list("name", flat=True)[:200]
    )
    close = difflib.get_close_matches(name, names, n=1)
    raise ValueError(
        f"No evaluation run named '{name}' in this dataset"
        + (f"; runs: {', '.join(names[:20])}." if names else "; it has no evaluation runs yet.")
        + (f" Did you mean '{close[0]}'?" if close else "")
    )


def run_names(dataset: Dataset) -> list[str]:
    """The dataset's run names, for the query bar's completion after `eval[` (by name, at
    most MAX_RUN_NAMES; the (dataset, name) unique index serves it)."""
    return list(
        EvaluationRun.objects.filter(dataset=dataset)
        .order_by("name")
        .values_list("name", flat=True)[:MAX_RUN_NAMES]
    )


def _matches(run: EvaluationRun, key: str | None, path: tuple[str, ...]) -> QuerySet[Any]:
    """The item's matches that `eval[<key>].<outcome>[.<label>]` counts, or
    `eval[<key>].error[.<type>[.<label>]]` (its FP and FN; those of one TIDE error type),
    or a classification run's `.correct` and `.wrong`."""
    if run.finished is None:
        # Its rows, if any, are a running job's partial ones (or a cancelled job's).
        raise ValueError(
            f"The evaluation run '{run.name}' has not finished: it has no outcomes yet"
        )
    rows = EvaluationMatch.objects.filter(run_id=run.pk, item_id=OuterRef("pk"))
    if path and path[0] == ERROR:
        if len(path) > 1 and path[1] not in ERROR_TYPES:
            raise ValueError(
                f"Unknown error type '{path[1]}': expected eval[{key}].error.<type> with a "
                f"type of {', '.join(ERROR_TYPES)}"
            )
        if len(path) > 3:
            raise ValueError(f"Expected eval[{key}].error.<type>.<label>")
        rows = rows.filter(outcome__in=[Outcome.FP, Outcome.FN])
        if len(path) >= 2:
            rows = rows.filter(error_type=path[1])
        return rows.filter(label=path[2]) if len(path) == 3 else rows
    if path and path[0] in ITEM_OUTCOMES:
        if run.task != Task.CLASSIFICATION:
            raise ValueError(
                f"eval[{key}].{path[0]} is for classification runs; this run's task is "
                f"{run.task}: use .tp, .fp or .fn"
            )
        path = (ITEM_OUTCOMES[path[0]], *path[1:])
    if not path or path[0] not in OUTCOMES or len(path) > 2:
        raise ValueError(
            f"Expected eval[{key}].tp, .fp or .fn, optionally with a label (eval[{key}].fp.car)"
            + (", or .correct / .wrong" if run.task == Task.CLASSIFICATION else "")
            + f", or .error, optionally with a type (eval[{key}].error.localization)"
        )
    rows = rows.filter(outcome=path[0])
    return rows.filter(label=path[1]) if len(path) == 2 else rows


# Object-level measures of a match, named by the last word of a path: `confidence` and
# `iou` are taken there (a label called so cannot end a path).
MEASURES = ("confidence", "iou")
_LOOKUPS = {"=": "exact", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}


def _measure(path: tuple[str, ...]) -> tuple[tuple[str, ...], str | None]:
    """(the path without its measure, the measure) for `eval[r].fp.car.confidence`."""
    if len(path) >= 2 and path[-1] in MEASURES:
        return path[:-1], path[-1]
    return path, None


def eval_field(condition: FieldCondition) -> Q:
    """`eval[<run>].<outcome>[.<label>] <op> <number>`: a count of the item's matches; with
    `.confidence` or `.iou` last, an object-level condition: the item has such a match
    whose confidence (IoU) compares so (`eval[r].fp.confidence > 0.8`, `eval[r].tp.iou
    < 0.6`)."""
    run = _run(condition.dataset, condition.key)
    path, measure = _measure(condition.path)
    rows = _matches(run, condition.key, path)
    value = condition.value
    if measure is not None:
        if (
            condition.op not in _OPS
            or not isinstance(value, int | float)
            or isinstance(value, bool)
        ):
            raise ValueError(
                f"eval[{condition.key}].{'.'.join(condition.path)} is a number from 0 to 1: "
                "compare it with a number, e.g. > 0.8"
            )
        if condition.op == "!=":
            return Q(
                Exists(rows.filter(**{f"{measure}__isnull": False}).exclude(**{measure: value}))
            )
        return Q(Exists(rows.filter(**{f"{measure}__{_LOOKUPS[condition.op]}": value})))
    if condition.op not in _OPS or not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(
            f"eval[{condition.key}].{'.'.join(condition.path)} is a count: compare it with a "
            "number, e.g. >= 1"
        )
    return count_condition(rows, condition.op, value)


def eval_value(ref: FieldRef) -> Any:
    """`eval[<run>]...` as a value per item (a sort key): the count; with `.confidence`,
    the item's highest confidence of such matches; with `.iou`, its lowest IoU (the worst
    placed), null when it has none."""
    path, measure = _measure(ref.path)
    rows = _matches(_run(ref.dataset, ref.key), ref.key, path)
    if measure is not None:
        worst = f"-{measure}" if measure == "confidence" else measure
        found = rows.filter(**{f"{measure}__isnull": False}).order_by(worst).values(measure)
        return Subquery(found[:1], output_field=FloatField())
    counted = rows.order_by().values("item_id").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


# What the query bar completes in the field: run names in the brackets, then tp/fp/fn,
# then a label.
COMPLETION = FieldHelp(keys=run_names, key_kind="run", words=OUTCOMES, then_labels=True)
