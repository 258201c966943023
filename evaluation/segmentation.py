"""Instance segmentation by the COCO protocol (COCOeval with iouType "segm"): the
detection engine (evaluation.engine, evaluation.matching) with mask IoUs and mask areas.

An instance is what one COCO annotation is: the shapes of an item (kind `polygon` or
`segmentation`) that share a `coco_id` in their metadata, as the COCO import writes the
parts of one annotation (and as the COCO export puts them back together); a shape
without one is an instance by itself. The same rule holds for predictions.

Masks are made exactly as pycocotools makes them, by pycocotools itself: polygons
rasterised by `mask.frPyObjects` on the image's height and width and the parts merged
(`COCO.annToRLE`), uncompressed RLE compressed by `frPyObjects`, compressed RLE as it is.
IoUs are `mask.iou` (a crowd region's: intersection / the detection's area), areas
`mask.area`, so that the numbers are COCOeval's to the last bit. (pycocotools is a runtime
dependency for this: its C rasteriser is the reference, and writing another would only
add a way to differ from it.)

This module knows nothing of the database: evaluation.shapes reads the shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from evaluation import engine, matching, tide

KINDS = ("polygon", "segmentation")


@dataclass(frozen=True, slots=True)
class Shape:
    """A stored polygon or mask of an item, ground truth or prediction."""

    item_id: int
    pk: int | None  # None: a frozen version's annotation since deleted
    kind: str
    label: str
    geometry: dict[str, Any]
    metadata: Any
    confidence: float | None = None  # predictions only


@dataclass
class Instances:
    """An item set's instances as the engine takes them, and what could not be made."""

    ground_truth: list[engine.GroundTruth] = field(default_factory=list)
    detections: list[engine.Detection] = field(default_factory=list)
    # Instances left out: polygons of an item whose size is unknown, masks whose size is
    # not their image's, compressed masks whose string does not decode to the image.
    left_out: int = 0


def _key(shape: Shape) -> tuple[Any, ...]:
    metadata = shape.metadata if isinstance(shape.metadata, dict) else {}
    coco_id = metadata.get("coco_id")
    if coco_id is not None and not isinstance(coco_id, dict | list):
        return (shape.item_id, "coco", str(coco_id))
    return (shape.item_id, "shape", shape.pk if shape.pk is not None else id(shape))


def _crowd(metadata: Any) -> bool:
    return isinstance(metadata, dict) and metadata.get("iscrowd") in (1, True)


def _compressed_ok(counts: str, size: tuple[int, int]) -> bool:
    """Whether a compressed RLE string decodes (as maskApi.c's rleFrString reads it) to
    run lengths that cover the image exactly. pycocotools trusts the string: a malformed
    one gives garbage areas, and merging it can loop for ever."""
    data = counts.encode()
    runs: list[int] = []
    p = 0
    while p < len(data):
        x = k = 0
        more = True
        while more:
            if p >= len(data) or k > 6:  # cut short, or longer than any 32-bit run
                return False
            c = data[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        if x < 0:
            return False
        runs.append(x)
    return sum(runs) == size[0] * size[1]


def _rle(parts: Sequence[Shape], size: tuple[int, int] | None) -> dict[str, Any] | None:
    """The instance's mask as COCO.annToRLE makes it; None when it cannot be made on an
    image of `size` (height, width; None: unknown) or a mask is malformed."""
    rles: list[Any] = []
    polygons = [
        [float(c) for point in s.geometry["vertices"] for c in point[:2]]
        for s in parts
        if s.kind == "polygon"
    ]
    masks = [s.geometry["rle"] for s in parts if s.kind == "segmentation"]
    for rle in masks:
        rle_size = (int(rle["size"][0]), int(rle["size"][1]))
        if size is not None and rle_size != size:
            return None
        size = rle_size
        if isinstance(rle["counts"], list):
            rles.append(mask_utils.frPyObjects(rle, *rle_size))
        elif _compressed_ok(rle["counts"], rle_size):
            rles.append({"size": list(rle_size), "counts": rle["counts"]})
        else:
            return None
    if polygons:
        if size is None:
            return None
        rles += mask_utils.frPyObjects(polygons, *size)
    if len(rles) == 1:
        return dict(rles[0])
    return dict(mask_utils.merge(rles))


def instances(
    sizes: dict[int, tuple[int, int] | None],
    ground_truth: Sequence[Shape],
    predictions: Sequence[Shape],
) -> Instances:
    """The instances of these items' shapes (in the order of their first shape, as COCO
    indexes annotations). `sizes`: each item's (height, width), None when unknown (then
    only masks can be used, on their own size)."""
    found = Instances()
    for side, shapes in ((0, ground_truth), (1, predictions)):
        groups: dict[tuple[Any, ...], list[Shape]] = {}
        for shape in shapes:
            groups.setdefault(_key(shape), []).append(shape)
        for parts in groups.values():
            first = parts[0]
            rle = _rle(parts, sizes.get(first.item_id))
            if rle is None:
                found.left_out += 1
                continue
            area = float(mask_utils.area(rle))
            box = tuple(float(v) for v in mask_utils.toBbox(rle))
            if side == 0:
                found.ground_truth.append(
                    engine.GroundTruth(
                        first.item_id,
                        first.pk,
                        first.label,
                        box,  # type: ignore[arg-type]
                        any(_crowd(s.metadata) for s in parts),
                        area,
                        rle,
                    )
                )
            else:
                assert first.pk is not None and first.confidence is not None
                found.detections.append(
                    engine.Detection(
                        first.item_id,
                        first.pk,
                        first.label,
                        box,  # type: ignore[arg-type]
                        first.confidence,
                        area,
                        rle,
                    )
                )
    return found


class SegmentationEvaluation(engine.Evaluation):
    """engine.Evaluation on masks: IoUs by pycocotools' mask.iou, areas the masks'."""

    SHAPE, SHAPES = "polygon or mask", "polygons or masks"

    def iou_of(
        self,
        ground_truth: Sequence[engine.GroundTruth],
        detections: Sequence[engine.Detection],
    ) -> matching.IouOf:
        def ious(d_index: np.ndarray, g_index: np.ndarray, crowd: np.ndarray) -> np.ndarray:
            out = np.zeros((*d_index.shape, g_index.shape[1]))
            # One mask.iou per (image, class) group, as COCOeval.computeIoU calls it.
            for b in range(len(d_index)):
                d = d_index[b][d_index[b] >= 0]
                g = g_index[b][g_index[b] >= 0]
                if len(d) and len(g):
                    out[b, : len(d), : len(g)] = mask_utils.iou(
                        [detections[i].mask for i in d],
                        [ground_truth[i].mask for i in g],
                        [int(ground_truth[i].crowd) for i in g],
                    )
            return out

        return ious

    def pair_iou(
        self,
        ground_truth: Sequence[engine.GroundTruth],
        detections: Sequence[engine.Detection],
    ) -> tide.PairIou:
        """TIDE's IoUs on masks, as the matching's: one mask.iou per detection with the
        ground truth it is paired with (no crowd rule: TIDE never targets crowd)."""

        def ious(d_index: np.ndarray, g_index: np.ndarray) -> np.ndarray:
            out = np.zeros(len(d_index))
            for d in np.unique(d_index):
                at = np.flatnonzero(d_index == d)
                g = g_index[at]
                out[at] = mask_utils.iou(
                    [detections[int(d)].mask], [ground_truth[int(i)].mask for i in g], [0] * len(g)
                )[0]
            return out

        return ious
