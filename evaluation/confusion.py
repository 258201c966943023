"""The confusion matrix of a run: which ground-truth label each prediction was taken for.

Predictions are matched to ground truth whatever their labels (class-agnostic COCO
matching, at the run's operating IoU, confidence threshold and largest max_dets, through
evaluation.engine), so that a car predicted as a truck is a (car, truck) cell rather than
a missed car and a false truck. A prediction that matched no ground truth is in the
background row (under its label); a ground truth no prediction matched is in the
background column (under its label). Crowd regions and the predictions they absorb are
left out, as in the run.

Computed from the boxes the job loaded (no queries here); the job stores it in
metrics["confusion"].
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from typing import Any

from evaluation import engine

BACKGROUND = "background"


def confusion(
    *,
    item_ids: Sequence[int],
    ground_truth: Sequence[engine.GroundTruth],
    detections: Sequence[engine.Detection],
    options: engine.Options,
    kind: type[engine.Evaluation] = engine.Evaluation,
) -> dict[str, Any]:
    """{"labels", "matrix", "iou", "confidence"}: matrix[i][j] counts ground truth of
    labels[i] matched by predictions of labels[j]; the last row and column (index
    len(labels)) are the background: predictions that matched nothing, and ground truth
    nothing matched."""
    agnostic = dataclasses.replace(options, class_agnostic=True)
    result = engine.evaluate(
        item_ids=item_ids,
        ground_truth=ground_truth,
        detections=detections,
        options=agnostic,
        kind=kind,
    )
    predicted = {d.prediction_id: d.label for d in detections}
    cells: Counter[tuple[str, str]] = Counter()
    for m in result.matches:
        if m.outcome == "tp":
            assert m.prediction_id is not None
            cells[m.label, predicted[m.prediction_id]] += 1
        elif m.outcome == "fp":
            cells[BACKGROUND, m.label] += 1
        else:
            cells[m.label, BACKGROUND] += 1
    labels = sorted({g.label for g in ground_truth} | {d.label for d in detections})
    axis = [*labels, BACKGROUND]
    return {
        "labels": labels,
        "matrix": [[cells[row, column] for column in axis] for row in axis],
        "iou": result.metrics["operating_point"]["iou"],
        "confidence": options.confidence_threshold,
    }


def confusion_sum(parts: Sequence[dict[str, Any]], options: engine.Options) -> dict[str, Any]:
    """The confusion matrix of a run from those of its chunks of items (matching is per
    item, so the cells add up)."""
    cells: Counter[tuple[str, str]] = Counter()
    for part in parts:
        axis = [*part["labels"], BACKGROUND]
        for row, counts in zip(axis, part["matrix"], strict=True):
            for column, count in zip(axis, counts, strict=True):
                cells[row, column] += count
    labels = sorted({label for part in parts for label in part["labels"]})
    axis = [*labels, BACKGROUND]
    operating = min(options.iou_thresholds, key=lambda t: abs(t - options.operating_iou))
    return {
        "labels": labels,
        "matrix": [[cells[row, column] for column in axis] for row in axis],
        "iou": float(operating),
        "confidence": options.confidence_threshold,
    }
