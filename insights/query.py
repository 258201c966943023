"""The query language's insights fields (registered by InsightsConfig.ready).

Embedding scores (docs/insights.md):

    uniqueness > 0.8                   the dataset's default model (or its only scored one)
    representativeness < 0.2
    outlier >= 0.9
    uniqueness["clip ViT-B-32"] > 0.8  a named model's scores

Each is an EXISTS on the item's ItemScore row of that model, served by the (model, item)
unique index; an item without a score (no vector, or the job not run) matches no
comparison.

Label-error candidates and model uncertainty:

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

Every field is also a value per item (the `*_value` functions), so it sorts the grid and
the item list (`sort=label_error&order=desc`); items without a value come last. curation
never imports this app.
"""

from __future__ import annotations

import difflib
from typing import Any

from django.db.models import Exists, FloatField, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce

from curation.models import Dataset, JobStatus, Model
from curation.query import FieldCondition, FieldRef
from embeddings.models import EmbeddingModel
from embeddings.selectors import default_model_or_none
from insights.models import (
    CandidateType,
    ItemScore,
    ItemUncertainty,
    LabelErrorCandidate,
    LabelErrorScan,
    ScoreRun,
)
from insights.uniqueness import SCORES

_LOOKUPS = {"=": "exact", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}


def scored_model(dataset: Dataset, name: str | None) -> EmbeddingModel:
    """The model whose scores a field reads: the named one, else the dataset's default
    model if it has scores, else the only scored model; ValueError says why not."""
    scored = ScoreRun.objects.filter(dataset=dataset, status=ScoreRun.Status.FINISHED)
    models = {
        m.name: m
        for m in EmbeddingModel.objects.filter(pk__in=scored.values("model_id")).order_by("name")
    }
    if name is not None:
        if name in models:
            return models[name]
        close = difflib.get_close_matches(name, list(models), n=1)
        raise ValueError(
            f"No scores of a model named '{name}' in this dataset"
            + (f"; scored models: {', '.join(models)}." if models else "; none is scored yet.")
            + (f" Did you mean '{close[0]}'?" if close else "")
        )
    if not models:
        raise ValueError(
            "No item has scores yet: compute them on the Insights page "
            "(or `nucleus insights scores --compute`)."
        )
    default = default_model_or_none(dataset=dataset)
    for model in models.values():
        if default is not None and model.pk == default.pk:
            return model
    if len(models) == 1:
        return next(iter(models.values()))
    raise ValueError(
        f"Several models have scores ({', '.join(models)}): name one, e.g. "
        f'uniqueness["{next(iter(models))}"].'
    )


def score_field(condition: FieldCondition) -> Q:
    """`<score>[<model>] <op> <number>`, a score in [0, 1]."""
    name = condition.name
    if condition.path:
        raise ValueError(f"'{name}' has no sub-fields.")
    value = condition.value
    if (
        condition.op not in (*_LOOKUPS, "!=")
        or not isinstance(value, int | float)
        or isinstance(value, bool)
    ):
        raise ValueError(f"{name} is a score from 0 to 1: compare it with a number, e.g. > 0.8")
    model = scored_model(condition.dataset, condition.key)
    rows = ItemScore.objects.filter(model_id=model.pk, item_id=OuterRef("pk"))
    if condition.op == "!=":
        return Q(Exists(rows.exclude(**{name: value})))
    return Q(Exists(rows.filter(**{f"{name}__{_LOOKUPS[condition.op]}": value})))


FIELDS = SCORES


def score_value(ref: FieldRef) -> Any:
    """`<score>[<model>]` as a value per item (a sort key of the grid and the item list:
    `sort=uniqueness&order=desc`), null for an item without a score (listed last)."""
    if ref.path:
        raise ValueError(f"'{ref.name}' has no sub-fields.")
    model = scored_model(ref.dataset, ref.key)
    rows = ItemScore.objects.filter(model_id=model.pk, item_id=OuterRef("pk"))
    return Subquery(rows.values(ref.name)[:1], output_field=FloatField())


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


def _model_of(dataset: Dataset, name: str) -> Model:
    model = Model.objects.filter(dataset=dataset, name=name).first()
    if model is not None:
        return model
    names = list(
        Model.objects.filter(dataset=dataset).order_by("name").values_list("name", flat=True)[:200]
    )
    close = difflib.get_close_matches(name, names, n=1)
    raise ValueError(
        f"No model named '{name}' in this dataset"
        + (f"; models: {', '.join(names[:20])}." if names else ".")
        + (f" Did you mean '{close[0]}'?" if close else "")
    )


def label_error_value(ref: FieldRef) -> Any:
    """`label_error[.<type>]` as a value per item (a sort key): its largest candidate score
    in the newest scan, 0 without any."""
    path = ref.path
    if len(path) > 1 or (path and path[0] not in TYPES):
        raise ValueError(
            f"Expected label_error or label_error.<type>, a type of {', '.join(TYPES)}"
        )
    scan = newest_scan(ref.dataset.pk)
    if scan is None:
        raise ValueError(
            "This dataset has no label-error candidates yet: compute them from an evaluation "
            "run (Insights page, or `nucleus insights scan`)."
        )
    rows = LabelErrorCandidate.objects.filter(scan_id=scan.pk, item_id=OuterRef("pk"))
    if path:
        rows = rows.filter(type=path[0])
    best = Subquery(rows.order_by("-score").values("score")[:1], output_field=FloatField())
    return Coalesce(best, 0.0, output_field=FloatField())


def uncertainty_value(ref: FieldRef) -> Any:
    """`uncertainty[<model>].<field>` as a value per item (a sort key); null without a row."""
    name = ref.key or ""
    model = _model_of(ref.dataset, name)
    field = ALIASES.get(ref.path[0], ref.path[0]) if len(ref.path) == 1 else ""
    if field not in UNCERTAINTY_FIELDS:
        raise ValueError(
            f"Expected uncertainty[{name}].<field>, a field of {', '.join(UNCERTAINTY_FIELDS)}"
        )
    rows = ItemUncertainty.objects.filter(model_id=model.pk, item_id=OuterRef("pk"))
    return Subquery(rows.values(field)[:1], output_field=FloatField())
