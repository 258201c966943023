"""Comparing two runs of a dataset (two models, or one model on two versions): each
summary metric and each class's numbers side by side with their delta (b - a), and the
items one run gets right and the other wrong, each as a query of the language.

An item is "right" in a run when it has no false positive and no false negative there
(`eval[run].error = 0`); an item outside a run's scope has no matches, so it counts as
right in it. Reads only (the API and the page call compare_runs).
"""

from __future__ import annotations

from typing import Any

from curation.errors import invalid_field
from curation.models import Dataset, Item
from curation.query import compile_query
from curation.query.parser import quote_name
from evaluation.engine import STAT_NAMES
from evaluation.models import EvaluationRun
from evaluation.tide import TYPES

OPERATING = ("precision", "recall", "f1", "tp", "fp", "fn")
CLASS_METRICS = ("ap", "ap50", "ar", "precision", "recall", "f1", "tp", "fp", "fn")


def _run(dataset: Dataset, run_id: int, name: str) -> EvaluationRun:
    run = EvaluationRun.objects.filter(pk=run_id, dataset=dataset).select_related("model").first()
    if run is None:
        # A run of another dataset is unknown here, as a missing one is.
        raise invalid_field(name, f"no evaluation run {run_id} in this dataset")
    if not run.metrics:
        raise invalid_field(name, f"the run {run.name!r} has not finished: it has no metrics yet")
    return run


def _value(raw: Any) -> float | int | None:
    """A metric as compared: None where it is undefined (None, or pycocotools' -1);
    counts stay whole numbers."""
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    value = float(raw)
    return None if value == -1.0 else value


def _pair(a: Any, b: Any) -> dict[str, float | int | None]:
    va, vb = _value(a), _value(b)
    return {"a": va, "b": vb, "delta": None if va is None or vb is None else vb - va}


def items_query(right: EvaluationRun, wrong: EvaluationRun) -> str:
    """The items `right` gets right (no FP, no FN) and `wrong` gets wrong."""
    return f"eval[{quote_name(right.name)}].error = 0 AND eval[{quote_name(wrong.name)}].error >= 1"


def both_wrong_query(a: EvaluationRun, b: EvaluationRun) -> str:
    return f"eval[{quote_name(a.name)}].error >= 1 AND eval[{quote_name(b.name)}].error >= 1"


def _count(dataset: Dataset, query: str) -> int:
    return Item.objects.filter(compile_query(query, dataset=dataset)).count()


def _describe(run: EvaluationRun) -> dict[str, Any]:
    return {
        "id": run.pk,
        "name": run.name,
        "model": run.model_id,
        "model_name": run.model.name,
        "task": run.task,
        "scope": run.scope,
        "items": (run.counts or {}).get("items"),
    }


def compare_runs(*, dataset: Dataset, a_id: int, b_id: int) -> dict[str, Any]:
    """Runs `a_id` and `b_id` of the dataset compared; a 400 naming `a` or `b` when one is
    not a finished run of the dataset, or `b` when the tasks differ."""
    a = _run(dataset, a_id, "a")
    b = _run(dataset, b_id, "b")
    if a.task != b.task:
        raise invalid_field("b", f"is a {b.task} run; run a is a {a.task} run")
    ma, mb = a.metrics, b.metrics
    summary = [{"metric": k, **_pair(ma.get(k), mb.get(k))} for k in STAT_NAMES]
    op_a, op_b = ma.get("operating_point") or {}, mb.get("operating_point") or {}
    summary += [{"metric": k, **_pair(op_a.get(k), op_b.get(k))} for k in OPERATING]
    classes_a = {c["label"]: c for c in ma.get("per_class") or []}
    classes_b = {c["label"]: c for c in mb.get("per_class") or []}
    per_class = [
        {
            "label": label,
            **{
                k: _pair(classes_a.get(label, {}).get(k), classes_b.get(label, {}).get(k))
                for k in CLASS_METRICS
            },
        }
        for label in sorted(set(classes_a) | set(classes_b))
    ]
    errors_a = {t["type"]: t for t in (ma.get("errors") or {}).get("types", [])}
    errors_b = {t["type"]: t for t in (mb.get("errors") or {}).get("types", [])}
    errors = [
        {
            "type": name,
            "count": _pair(
                errors_a.get(name, {}).get("count"), errors_b.get(name, {}).get("count")
            ),
            "dap": _pair(errors_a.get(name, {}).get("dap"), errors_b.get(name, {}).get("dap")),
        }
        for name in TYPES
        if name in errors_a or name in errors_b
    ]
    lists = {
        "right_in_a_only": items_query(a, b),
        "right_in_b_only": items_query(b, a),
        "wrong_in_both": both_wrong_query(a, b),
    }
    items = {key: {"query": q, "count": _count(dataset, q)} for key, q in lists.items()}
    warnings = []
    if (a.scope or {}) != (b.scope or {}):
        warnings.append(
            "The runs' scopes differ: an item outside a run's scope has no matches there, "
            "so it counts as right in that run."
        )
    if a.options.get("operating_iou") != b.options.get("operating_iou") or a.options.get(
        "confidence_threshold"
    ) != b.options.get("confidence_threshold"):
        warnings.append(
            "The runs' operating points differ (confidence threshold or operating IoU): "
            "their TP/FP/FN and the items' outcomes are taken at different points."
        )
    return {
        "warnings": warnings,
        "a": _describe(a),
        "b": _describe(b),
        "summary": summary,
        "per_class": per_class,
        "errors": errors,
        "items": items,
    }
