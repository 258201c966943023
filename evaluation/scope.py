"""What a run sees: the items of its scope, their ground-truth boxes and the model's box
predictions, as the engine's plain objects.

A version's ground truth is the one frozen with it; its predictions are the model's
current ones on those items (predictions are not frozen). Everything is loaded at once:
fine for the datasets of tests and demos, not for the 1M-item target (not done yet: that
needs chunked matching).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from curation.itemsets import slice_items
from curation.models import Annotation, Item, Prediction, SliceVersionItem
from curation.query import compile_query
from evaluation.engine import Detection, GroundTruth
from evaluation.models import EvaluationRun


class ScopeGone(Exception):
    """The slice or version the run was asked for was deleted before it ran."""


@dataclass
class Seen:
    item_ids: list[int]
    ground_truth: list[GroundTruth]
    detections: list[Detection]


def _box(geometry: Any) -> tuple[float, float, float, float]:
    return (
        float(geometry["x"]),
        float(geometry["y"]),
        float(geometry["width"]),
        float(geometry["height"]),
    )


def _crowd(metadata: Any) -> bool:
    """COCO's iscrowd, as COCO ingest stores it in the annotation's metadata. (An `ignore`
    flag is not read: pycocotools overwrites it with iscrowd for boxes.)"""
    return isinstance(metadata, dict) and metadata.get("iscrowd") in (1, True)


def _frozen(run: EvaluationRun) -> tuple[list[int], list[GroundTruth]]:
    item_ids: list[int] = []
    frozen: list[tuple[int, dict[str, Any]]] = []
    for item_id, shapes in (
        SliceVersionItem.objects.filter(version=run.version)
        .order_by("item_id")
        .values_list("item_id", "annotations")
    ):
        item_ids.append(item_id)
        frozen += [(item_id, a) for a in shapes or [] if a.get("kind") == "box"]
    # Frozen annotations carry their client id; the match rows keep the current row's id
    # where that annotation still exists.
    pks = dict(
        Annotation.objects.filter(
            dataset=run.dataset_id, annotation_id__in={a["id"] for _, a in frozen}
        ).values_list("annotation_id", "id")
    )
    return item_ids, [
        GroundTruth(
            item_id, pks.get(a["id"]), a["label"], _box(a["geometry"]), _crowd(a.get("metadata"))
        )
        for item_id, a in frozen
    ]


def _live(run: EvaluationRun, item_ids: list[int] | None) -> list[GroundTruth]:
    rows = Annotation.objects.filter(dataset=run.dataset_id, kind="box")
    if item_ids is not None:
        rows = rows.filter(item_id__in=item_ids)
    return [
        GroundTruth(item_id, pk, label, _box(geometry), _crowd(metadata))
        for pk, item_id, label, geometry, metadata in rows.order_by("id").values_list(
            "id", "item_id", "label", "geometry", "metadata"
        )
    ]


def _detections(run: EvaluationRun, item_ids: Iterable[int] | None) -> list[Detection]:
    mapping: dict[str, str] = dict(run.options.get("label_mapping") or {})
    rows = Prediction.objects.filter(model=run.model_id, kind="box")
    if item_ids is not None:
        rows = rows.filter(item_id__in=list(item_ids))
    return [
        Detection(item_id, pk, mapping.get(label, label), _box(geometry), float(confidence))
        for pk, item_id, label, geometry, confidence in rows.order_by("id").values_list(
            "id", "item_id", "label", "geometry", "confidence"
        )
    ]


def _matching(run: EvaluationRun, query: str, item_ids: list[int] | None) -> list[int]:
    """The items (of `item_ids`, or of the dataset) that `query` matches now."""
    rows = Item.objects.filter(compile_query(query, dataset=run.dataset))
    if item_ids is not None:
        rows = rows.filter(pk__in=item_ids)
    return sorted(rows.values_list("id", flat=True))


def scope_load(run: EvaluationRun) -> Seen:
    """Everything `run` evaluates, read now. A run's `query` (in its scope) narrows its
    items to those the query matches when the job runs (a version's frozen items too)."""
    kind = (run.scope or {}).get("kind", "dataset")
    query = (run.scope or {}).get("query") or ""
    if kind == "version":
        if run.version is None:
            raise ScopeGone("The slice version of this run was deleted before it ran.")
        item_ids, ground_truth = _frozen(run)
        if query:
            item_ids = _matching(run, query, item_ids)
            kept = set(item_ids)
            ground_truth = [g for g in ground_truth if g.item_id in kept]
        return Seen(item_ids, ground_truth, _detections(run, item_ids))
    if kind == "slice":
        if run.slice is None:
            raise ScopeGone("The slice of this run was deleted before it ran.")
        item_ids = sorted(slice_items(run.slice).values_list("id", flat=True))
        if query:
            item_ids = _matching(run, query, item_ids)
        return Seen(item_ids, _live(run, item_ids), _detections(run, item_ids))
    if query:
        item_ids = _matching(run, query, None)
        return Seen(item_ids, _live(run, item_ids), _detections(run, item_ids))
    item_ids = sorted(Item.objects.filter(dataset=run.dataset_id).values_list("id", flat=True))
    return Seen(item_ids, _live(run, None), _detections(run, None))
