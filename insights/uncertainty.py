"""Model uncertainty per item: how unsure a model is about an item, from its predictions
there (see docs/insights.md, "Model uncertainty").

Per prediction, a distribution over classes: its class scores when it carries them
(`metadata.scores`, `{"car": 0.7, "truck": 0.2}` or a list of probabilities; what they
leave below 1 is the background), else its confidence alone (`[c, 1 - c]`: object or
not). From it: entropy (nats), margin (top minus second) and least confidence (1 - top).
Per item: the mean and largest entropy, the smallest margin, the largest least
confidence, and how many predictions fall below the low-confidence threshold.

The job (one per model) reads the dataset's items in chunks of CHUNK_ITEMS and writes one
ItemUncertainty row per item with predictions (COPY), each chunk with its checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction

from curation.bulk.write import copy_rows
from curation.errors import invalid_field
from curation.jobs import JobContext, job_create
from curation.models import Dataset, Item, Model, Prediction
from insights.models import ItemUncertainty

UNCERTAINTY_JOB = "uncertainty"
CHUNK_ITEMS = 5000
LOW_CONFIDENCE = 0.5


def distribution(confidence: float, scores: Any) -> list[float]:
    """A prediction's distribution over classes (and the background)."""
    values: list[float] = []
    if isinstance(scores, dict):
        values = [float(v) for v in scores.values() if isinstance(v, int | float)]
    elif isinstance(scores, list):
        values = [float(v) for v in scores if isinstance(v, int | float)]
    values = [min(1.0, max(0.0, v)) for v in values if math.isfinite(v)]
    if len(values) < 2:
        c = min(1.0, max(0.0, confidence))
        return [c, 1.0 - c]
    total = sum(values)
    if total <= 0:
        return [1.0 / len(values)] * len(values)
    if total < 1:
        return [*values, 1.0 - total]
    return [v / total for v in values]


@dataclass(frozen=True)
class PredictionUncertainty:
    entropy: float
    margin: float
    least_confidence: float


def prediction_uncertainty(confidence: float, scores: Any = None) -> PredictionUncertainty:
    p = sorted(distribution(confidence, scores), reverse=True)
    entropy = -sum(v * math.log(v) for v in p if v > 0)
    return PredictionUncertainty(entropy=entropy, margin=p[0] - p[1], least_confidence=1 - p[0])


@dataclass(frozen=True)
class ItemScores:
    item_id: int
    predictions: int
    entropy_mean: float
    entropy_max: float
    margin: float
    least_confidence: float
    low_confidence: int


def item_scores(
    item_id: int, predictions: Sequence[tuple[float, Any]], low: float = LOW_CONFIDENCE
) -> ItemScores | None:
    """One item's scores from its predictions' (confidence, class scores); None without."""
    if not predictions:
        return None
    each = [prediction_uncertainty(c, s) for c, s in predictions]
    return ItemScores(
        item_id=item_id,
        predictions=len(each),
        entropy_mean=sum(u.entropy for u in each) / len(each),
        entropy_max=max(u.entropy for u in each),
        margin=min(u.margin for u in each),
        least_confidence=max(u.least_confidence for u in each),
        low_confidence=sum(1 for c, _ in predictions if c < low),
    )


# ---------------------------------------------------------------------------- the job


@transaction.atomic
def uncertainty_start(*, dataset: Dataset, user: Any, model_id: Any, enqueue: bool = True) -> Any:
    """Queue the uncertainty job of a model of the dataset (a 400 on `model` otherwise)."""
    try:
        pk = int(model_id)
    except (TypeError, ValueError):
        raise invalid_field("model", "must be a model id") from None
    model = Model.objects.filter(dataset=dataset, pk=pk).first()
    if model is None:
        raise invalid_field("model", f"no model {model_id} in this dataset")
    return job_create(
        kind=UNCERTAINTY_JOB,
        dataset=dataset,
        user=user,
        params={"model_id": model.pk},
        enqueue=enqueue,
    )


def _insert(model_id: int, rows: Sequence[ItemScores]) -> None:
    columns = (
        "model_id",
        "item_id",
        "predictions",
        "entropy_mean",
        "entropy_max",
        "margin",
        "least_confidence",
        "low_confidence",
    )
    values = (
        (
            model_id,
            r.item_id,
            r.predictions,
            r.entropy_mean,
            r.entropy_max,
            r.margin,
            r.least_confidence,
            r.low_confidence,
        )
        for r in rows
    )
    with connection.cursor() as cursor:
        copy_rows(cursor, ItemUncertainty._meta.db_table, columns, values)


def uncertainty_execute(ctx: JobContext) -> dict[str, Any]:
    """The job: every item of the model's dataset, in chunks; resumable after the last
    item a checkpoint committed (its rows are replaced on a fresh start)."""
    model = Model.objects.filter(pk=ctx.params["model_id"]).first()
    if model is None:
        return {"model": None, "message": "The model was deleted."}
    item_ids = list(
        Item.objects.filter(dataset=model.dataset_id).order_by("id").values_list("id", flat=True)
    )
    ctx.set_total(len(item_ids))
    state = dict(ctx.state)
    if "after" not in state:
        state = {"after": 0, "rows": 0}
        with ctx.checkpoint(done=0, state=state):
            ItemUncertainty.objects.filter(model=model).delete()
    todo = [i for i in item_ids if i > int(state["after"])]
    done = len(item_ids) - len(todo)
    rows = int(state["rows"])
    for start in range(0, len(todo), CHUNK_ITEMS):
        chunk = todo[start : start + CHUNK_ITEMS]
        by_item: dict[int, list[tuple[float, Any]]] = {}
        for item_id, confidence, scores in (
            Prediction.objects.filter(model=model, item_id__in=chunk)
            .order_by("item_id", "id")
            .values_list("item_id", "confidence", "metadata__scores")
        ):
            by_item.setdefault(item_id, []).append((confidence, scores))
        found = [s for i in chunk if (s := item_scores(i, by_item.get(i, []))) is not None]
        done += len(chunk)
        rows += len(found)
        state = {"after": chunk[-1], "rows": rows}
        with ctx.checkpoint(done=done, state=state):
            _insert(model.pk, found)
    return {"model": model.pk, "items": rows}
