"""The query language's `eval[<run>]` field: items by their outcomes in a run.

    eval[baseline].fp >= 1            items with a false positive in run "baseline"
    eval["yolo v8"].fn.pedestrian >= 2  items where it missed two pedestrians or more
    eval[baseline].tp = 0             items without a true positive
    eval[baseline].error = 0          items without a false positive or a false negative
    eval[baseline].error.localization.car >= 1   items with a car placed badly (TIDE)

Each count is a correlated subquery on the run's EvaluationMatch rows of the item, served
by their (run, item) index; "at least one" and "none" are EXISTS / NOT EXISTS, as for the
language's own counts (curation.query.count_condition). curation never imports this
app: EvaluationConfig.ready registers the field.
"""

from __future__ import annotations

import difflib

from django.db.models import OuterRef, Q

from curation.query import FieldCondition, count_condition
from evaluation.models import ErrorType, EvaluationMatch, EvaluationRun, Outcome

FIELD = "eval"
OUTCOMES = tuple(o.value for o in Outcome)
ERROR = "error"
ERROR_TYPES = tuple(e.value for e in ErrorType)
_OPS = ("=", "!=", "<", "<=", ">", ">=")


def _run(condition: FieldCondition) -> EvaluationRun:
    name = condition.key or ""
    run = EvaluationRun.objects.filter(dataset=condition.dataset, name=name).first()
    if run is not None:
        return run
    names = list(
        EvaluationRun.objects.filter(dataset=condition.dataset)
        .order_by("name")
        .values_list("name", flat=True)[:200]
    )
    close = difflib.get_close_matches(name, names, n=1)
    raise ValueError(
        f"No evaluation run named '{name}' in this dataset"
        + (f"; runs: {', '.join(names[:20])}." if names else "; it has no evaluation runs yet.")
        + (f" Did you mean '{close[0]}'?" if close else "")
    )


def eval_field(condition: FieldCondition) -> Q:
    """`eval[<run>].<outcome>[.<label>] <op> <number>` or
    `eval[<run>].error[.<type>[.<label>]] <op> <number>`: a count of the item's matches
    (`error`: its FP and FN; `error.<type>`: those of one TIDE error type)."""
    run = _run(condition)
    path = condition.path
    if path and path[0] == ERROR:
        if len(path) > 1 and path[1] not in ERROR_TYPES:
            raise ValueError(
                f"Unknown error type '{path[1]}': expected eval[{condition.key}].error."
                f"<type> with a type of {', '.join(ERROR_TYPES)}"
            )
        if len(path) > 3:
            raise ValueError(f"Expected eval[{condition.key}].error.<type>.<label>")
    elif not path or path[0] not in OUTCOMES or len(path) > 2:
        raise ValueError(
            f"Expected eval[{condition.key}].tp, .fp or .fn, optionally with a label "
            f"(eval[{condition.key}].fp.car), or .error, optionally with a type "
            f"(eval[{condition.key}].error.localization)"
        )
    value = condition.value
    if condition.op not in _OPS or not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(
            f"eval[{condition.key}].{'.'.join(path)} is a count: compare it with a number, "
            "e.g. >= 1"
        )
    rows = EvaluationMatch.objects.filter(run_id=run.pk, item_id=OuterRef("pk"))
    if path[0] == ERROR:
        rows = rows.filter(outcome__in=[Outcome.FP, Outcome.FN])
        if len(path) >= 2:
            rows = rows.filter(error_type=path[1])
        if len(path) == 3:
            rows = rows.filter(label=path[2])
    else:
        rows = rows.filter(outcome=path[0])
        if len(path) == 2:
            rows = rows.filter(label=path[1])
    return count_condition(rows, condition.op, value)
