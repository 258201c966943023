"""The query language's score fields: items by their embedding scores (docs/insights.md).

    uniqueness > 0.8                   the dataset's default model (or its only scored one)
    representativeness < 0.2
    outlier >= 0.9
    uniqueness["clip ViT-B-32"] > 0.8  a named model's scores

Each is an EXISTS on the item's ItemScore row of that model, served by the (model, item)
unique index; an item without a score (no vector, or the job not run) matches no
comparison. Each is also a value per item (`score_value`), so it sorts the grid and the
item list (`sort=uniqueness&order=desc`; unscored items last). curation never imports
this app: InsightsConfig.ready registers the fields.
"""

from __future__ import annotations

import difflib
from typing import Any

from django.db.models import Exists, FloatField, OuterRef, Q, Subquery

from curation.models import Dataset
from curation.query import FieldCondition, FieldRef
from embeddings.models import EmbeddingModel
from embeddings.selectors import default_model_or_none
from insights.models import ItemScore, ScoreRun
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
