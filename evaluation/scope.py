"""What a run sees: the items of its scope, their ground-truth boxes and the model's box
predictions, as the engine's plain objects.

A version's ground truth is the one frozen with it; its predictions are the model's
current ones on those items (predictions are not frozen). The items are read in chunks of
CHUNK_ITEMS, in increasing id (COCOeval's image order), each chunk with its boxes in id
order (COCO's insertion order): memory holds one chunk's boxes, whatever the run's size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import FloatField
from django.db.models.fields.json import KT
from django.db.models.functions import Cast

from curation.itemsets import ItemSet, slice_items
from curation.models import Annotation, Item, Prediction, SliceVersionItem
from curation.query import compile_query
from evaluation.engine import Detection, GroundTruth
from evaluation.models import EvaluationRun

# Items per chunk: a few tens of thousands of boxes, a few queries of 5,000 ids each.
CHUNK_ITEMS = 5000


class ScopeGone(Exception):
    """The slice or version the run was asked for was deleted before it ran."""


@dataclass
class Seen:
    item_ids: list[int]
    ground_truth: list[GroundTruth]
    detections: list[Detection]


def scope_of(found: ItemSet) -> dict[str, Any]:
    """What a run (or a scenario test) sees, as it is recorded: the dataset, a slice (its
    id and name then) or a frozen version of it, narrowed by a query when one is given."""
    scope: dict[str, Any] = {"kind": "dataset"}
    if found.slice is not None:
        scope = {"kind": "slice", "slice": found.slice.pk, "slice_name": found.slice.name}
        if found.version is not None:
            scope = {**scope, "kind": "version", "version": found.version.number}
    if found.query:
        scope = {**scope, "query": found.query}
    return scope


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


def _frozen(run: EvaluationRun, item_ids: list[int]) -> list[GroundTruth]:
    frozen: list[tuple[int, dict[str, Any]]] = []
    for item_id, shapes in (
        SliceVersionItem.objects.filter(version=run.version, item_id__in=item_ids)
        .order_by("item_id")
        .values_list("item_id", "annotations")
    ):
        frozen += [(item_id, a) for a in shapes or [] if a.get("kind") == "box"]
    # Frozen annotations carry their client id; the match rows keep the current row's id
    # where that annotation still exists.
    pks = dict(
        Annotation.objects.filter(
            dataset=run.dataset_id, annotation_id__in={a["id"] for _, a in frozen}
        ).values_list("annotation_id", "id")
    )
    return [
        GroundTruth(
            item_id, pks.get(a["id"]), a["label"], _box(a["geometry"]), _crowd(a.get("metadata"))
        )
        for item_id, a in frozen
    ]


# A box's coordinates read as float8 by the database ((geometry->>'x')::float8: the
# decimal stored, correctly rounded, as json.loads rounds it), not as a JSON object per row.
_BOX = {
    f: Cast(KT(f"geometry__{k}"), FloatField())
    for f, k in (("bx", "x"), ("by", "y"), ("bw", "width"), ("bh", "height"))
}


def _live(run: EvaluationRun, item_ids: list[int]) -> list[GroundTruth]:
    rows = Annotation.objects.filter(dataset=run.dataset_id, kind="box", item_id__in=item_ids)
    return [
        GroundTruth(item_id, pk, label, (x, y, w, h), crowd in (1, True))
        for pk, item_id, label, x, y, w, h, crowd in rows.annotate(**_BOX)
        .order_by("item_id", "id")
        .values_list("id", "item_id", "label", *_BOX, "metadata__iscrowd")
    ]


def _detections(run: EvaluationRun, item_ids: Iterable[int]) -> list[Detection]:
    mapping: dict[str, str] = dict(run.options.get("label_mapping") or {})
    rows = Prediction.objects.filter(model=run.model_id, kind="box", item_id__in=list(item_ids))
    return [
        Detection(item_id, pk, mapping.get(label, label), (x, y, w, h), float(confidence))
        for pk, item_id, label, x, y, w, h, confidence in rows.annotate(**_BOX)
        .order_by("item_id", "id")
        .values_list("id", "item_id", "label", *_BOX, "confidence")
    ]


def _matching(run: EvaluationRun, query: str, item_ids: list[int] | None) -> list[int]:
    """The items (of `item_ids`, or of the dataset) that `query` matches now."""
    rows = Item.objects.filter(compile_query(query, dataset=run.dataset))
    if item_ids is not None:
        rows = rows.filter(pk__in=item_ids)
    return sorted(rows.values_list("id", flat=True))


def scope_items(run: EvaluationRun) -> list[int]:
    """The ids of the items `run` evaluates, increasing; ScopeGone if its slice or version
    was deleted. A run's `query` (in its scope) narrows its items to those the query
    matches when the job runs (a version's frozen items too)."""
    kind = (run.scope or {}).get("kind", "dataset")
    query = (run.scope or {}).get("query") or ""
    if kind == "version":
        if run.version is None:
            raise ScopeGone("The slice version of this run was deleted before it ran.")
        item_ids = list(
            SliceVersionItem.objects.filter(version=run.version)
            .order_by("item_id")
            .values_list("item_id", flat=True)
        )
        return _matching(run, query, item_ids) if query else item_ids
    if kind == "slice":
        if run.slice is None:
            raise ScopeGone("The slice of this run was deleted before it ran.")
        item_ids = sorted(slice_items(run.slice).values_list("id", flat=True))
        return _matching(run, query, item_ids) if query else item_ids
    if query:
        return _matching(run, query, None)
    return list(
        Item.objects.filter(dataset=run.dataset_id).order_by("id").values_list("id", flat=True)
    )


def scope_chunks(run: EvaluationRun, item_ids: list[int]) -> Iterator[Seen]:
    """`item_ids` (scope_items) in chunks of CHUNK_ITEMS, each with its boxes, read now."""
    frozen = (run.scope or {}).get("kind") == "version"
    for start in range(0, len(item_ids), CHUNK_ITEMS):
        chunk = item_ids[start : start + CHUNK_ITEMS]
        ground_truth = _frozen(run, chunk) if frozen else _live(run, chunk)
        yield Seen(chunk, ground_truth, _detections(run, chunk))
