"""What a segmentation or classification run sees of a chunk of its items: their sizes,
their ground-truth shapes of some kinds and the model's predictions of those kinds, as
evaluation.segmentation's plain Shape objects (evaluation.scope does the same for boxes).

A version's ground truth and item sizes are the ones frozen with it; predictions are the
model's current ones (predictions are not frozen). Chunks are evaluation.scope's: the
items in increasing id, CHUNK_ITEMS at a time, each chunk's shapes in id order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from curation.models import Annotation, Item, Prediction, SliceVersionItem
from evaluation.models import EvaluationRun
from evaluation.scope import CHUNK_ITEMS
from evaluation.segmentation import Shape


@dataclass
class ShapesSeen:
    item_ids: list[int]
    sizes: dict[int, tuple[int, int] | None]  # item -> (height, width), None: unknown
    ground_truth: list[Shape]
    predictions: list[Shape]


def _size(width: int | None, height: int | None) -> tuple[int, int] | None:
    return (int(height), int(width)) if width and height else None


def _frozen(
    run: EvaluationRun, item_ids: list[int], kinds: tuple[str, ...]
) -> tuple[dict[int, tuple[int, int] | None], list[Shape]]:
    sizes: dict[int, tuple[int, int] | None] = {}
    frozen = []
    for item_id, width, height, shapes in (
        SliceVersionItem.objects.filter(version=run.version, item_id__in=item_ids)
        .order_by("item_id")
        .values_list("item_id", "width", "height", "annotations")
    ):
        sizes[item_id] = _size(width, height)
        frozen += [(item_id, a) for a in shapes or [] if a.get("kind") in kinds]
    # The match rows keep the current row's id where the frozen annotation still exists.
    pks = dict(
        Annotation.objects.filter(
            dataset=run.dataset_id, annotation_id__in={a["id"] for _, a in frozen}
        ).values_list("annotation_id", "id")
    )
    return sizes, [
        Shape(item_id, pks.get(a["id"]), a["kind"], a["label"], a["geometry"], a.get("metadata"))
        for item_id, a in frozen
    ]


def _live(
    run: EvaluationRun, item_ids: list[int], kinds: tuple[str, ...]
) -> tuple[dict[int, tuple[int, int] | None], list[Shape]]:
    sizes = {
        pk: _size(width, height)
        for pk, width, height in Item.objects.filter(pk__in=item_ids).values_list(
            "id", "width", "height"
        )
    }
    rows = Annotation.objects.filter(dataset=run.dataset_id, kind__in=kinds, item_id__in=item_ids)
    return sizes, [
        Shape(item_id, pk, kind, label, geometry, metadata)
        for pk, item_id, kind, label, geometry, metadata in rows.order_by(
            "item_id", "id"
        ).values_list("id", "item_id", "kind", "label", "geometry", "metadata")
    ]


def _predictions(run: EvaluationRun, item_ids: list[int], kinds: tuple[str, ...]) -> list[Shape]:
    mapping: dict[str, str] = dict(run.options.get("label_mapping") or {})
    rows = Prediction.objects.filter(model=run.model_id, kind__in=kinds, item_id__in=item_ids)
    return [
        Shape(item_id, pk, kind, mapping.get(label, label), geometry, metadata, float(confidence))
        for pk, item_id, kind, label, geometry, metadata, confidence in rows.order_by(
            "item_id", "id"
        ).values_list("id", "item_id", "kind", "label", "geometry", "metadata", "confidence")
    ]


def shape_chunks(
    run: EvaluationRun, item_ids: list[int], kinds: tuple[str, ...]
) -> Iterator[ShapesSeen]:
    """`item_ids` (evaluation.scope.scope_items) in chunks, each with its shapes of
    `kinds`, read now."""
    frozen = (run.scope or {}).get("kind") == "version"
    for start in range(0, len(item_ids), CHUNK_ITEMS):
        chunk = item_ids[start : start + CHUNK_ITEMS]
        sizes, ground_truth = (_frozen if frozen else _live)(run, chunk, kinds)
        yield ShapesSeen(chunk, sizes, ground_truth, _predictions(run, chunk, kinds))
