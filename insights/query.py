"""The query language's insights fields (registered by InsightsConfig.ready):

    label_error > 0.8                   items whose best label-error candidate scores > 0.8
    label_error.wrong_label >= 0.5      ... of one type (wrong_label, bad_box, missing,
                                        spurious, neighbour)
    uncertainty[demo-detector].margin < 0.1      items by a model's uncertainty
    uncertainty["yolo v8"].entropy_max > 0.6

`label_error` reads the dataset's newest finished label-error scan; an item's score is the
largest of its candidates' (of the type when one is named), 0 without any. Each compare is
an EXISTS / NOT EXISTS on the candidates of the item, served by their (scan, item) index.
`uncertainty[<model>]` reads that model's ItemUncertainty row of the item; an item without
one (no prediction of the model, or not computed) matches no comparison.
"""

from __future__ import annotations

import difflib

from django.db.models import Exists, OuterRef, Q

from curation.models import JobStatus, Model
from curation.query import FieldCondition
from insights.models import CandidateType, ItemUncertainty, LabelErrorCandidate, LabelErrorScan

LABEL_ERROR = "label_error"
UNCERTAINTY = "uncertainty"
TYPES = tuple(t.value for t in CandidateType)
UNCERTAINTY_FIELDS = (
    "entropy_mean",
    "entropy_max",
    "margin",
    "least_confidence",
    "low_confidence",
    "predictions",
)
# Short names: `uncertainty[m].entropy` is the mean entropy.
ALIASES = {"entropy": "entropy_mean"}
_OPS = (">", ">=", "<", "<=")


def _number(condition: FieldCondition, what: str) -> float:
    value = condition.value
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"{what} is a number: compare it with a number, e.g. > 0.5")
    return float(value)


def newest_scan(dataset_id: int) -> LabelErrorScan | None:
    return (
        LabelErrorScan.objects.filter(dataset_id=dataset_id, job__status=JobStatus.SUCCEEDED)
        .order_by("-id")
        .first()
    )


def label_error_field(condition: FieldCondition) -> Q:
    """`label_error[.<type>] <op> <number>`: the item's largest candidate score."""
    path = condition.path
    if len(path) > 1 or (path and path[0] not in TYPES):
        raise ValueError(
            f"Expected label_error or label_error.<type>, a type of {', '.join(TYPES)}"
        )
    what = ".".join((LABEL_ERROR, *path))
    if condition.op not in _OPS:
        raise ValueError(f"{what} is a score: compare it with <, <=, > or >=")
    value = _number(condition, what)
    scan = newest_scan(condition.dataset.pk)
    if scan is None:
        raise ValueError(
            "This dataset has no label-error candidates yet: compute them from an evaluation "
            "run (Insights page, or `nucleus insights scan`)."
        )
    rows = LabelErrorCandidate.objects.filter(scan_id=scan.pk, item_id=OuterRef("pk"))
    if path:
        rows = rows.filter(type=path[0])
    # max > v  <=>  some candidate > v;   max < v  <=>  no candidate >= v (0 without any).
    if condition.op == ">":
        return Q(Exists(rows.filter(score__gt=value)))
    if condition.op == ">=":
        return Q(Exists(rows.filter(score__gte=value))) if value > 0 else Q(pk__isnull=False)
    if condition.op == "<":
        return ~Q(Exists(rows.filter(score__gte=value)))
    return ~Q(Exists(rows.filter(score__gt=value)))


def uncertainty_field(condition: FieldCondition) -> Q:
    """`uncertainty[<model>].<field> <op> <number>`."""
    name = condition.key or ""
    model = Model.objects.filter(dataset=condition.dataset, name=name).first()
    if model is None:
        names = list(
            Model.objects.filter(dataset=condition.dataset)
            .order_by("name")
            .values_list("name", flat=True)[:200]
        )
        close = difflib.get_close_matches(name, names, n=1)
        raise ValueError(
            f"No model named '{name}' in this dataset"
            + (f"; models: {', '.join(names[:20])}." if names else ".")
            + (f" Did you mean '{close[0]}'?" if close else "")
        )
    path = condition.path
    field = ALIASES.get(path[0], path[0]) if len(path) == 1 else ""
    if field not in UNCERTAINTY_FIELDS:
        raise ValueError(
            f"Expected uncertainty[{name}].<field>, a field of {', '.join(UNCERTAINTY_FIELDS)}"
        )
    what = f"uncertainty[{name}].{path[0]}"
    ops = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte", "=": "exact"}
    if condition.op not in ops:
        raise ValueError(f"{what} is a number: compare it with <, <=, >, >= or =")
    value = _number(condition, what)
    rows = ItemUncertainty.objects.filter(model_id=model.pk, item_id=OuterRef("pk")).filter(
        **{f"{field}__{ops[condition.op]}": value}
    )
    return Q(Exists(rows))
