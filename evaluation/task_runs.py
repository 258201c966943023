"""The job's passes over a segmentation or a classification run (the detection pass is
evaluation.services'): read the scope in chunks (evaluation.shapes), evaluate each
(evaluation.segmentation, evaluation.classification), hand each chunk's outcomes to
`write` before reading the next, and return the metrics with what the run saw."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from evaluation import classification, engine, segmentation
from evaluation.confusion import confusion, confusion_sum
from evaluation.models import EvaluationRun
from evaluation.shapes import shape_chunks
from evaluation.subsets import Subsets

Write = Callable[[Sequence[engine.Match]], None]


def segmentation_pass(
    run: EvaluationRun, item_ids: list[int], write: Write
) -> tuple[engine.Result, dict[str, int]]:
    """COCOeval("segm") over the run's polygons and masks, with the confusion matrix."""
    options = engine.Options.of(run.options)
    evaluation = segmentation.SegmentationEvaluation(options)
    parts: list[dict[str, Any]] = []
    counts = {"items": len(item_ids), "ground_truth": 0, "predictions": 0, "matches": 0}
    left_out = 0
    subsets = Subsets.of(run, item_ids)
    for seen in shape_chunks(run, item_ids, segmentation.KINDS):
        found = segmentation.instances(seen.sizes, seen.ground_truth, seen.predictions)
        left_out += found.left_out
        members = subsets.chunk(seen.item_ids) if subsets is not None else None
        matches = evaluation.add(seen.item_ids, found.ground_truth, found.detections, members)
        parts.append(
            confusion(
                item_ids=seen.item_ids,
                ground_truth=found.ground_truth,
                detections=found.detections,
                options=options,
                kind=segmentation.SegmentationEvaluation,
            )
        )
        counts["ground_truth"] += len(found.ground_truth)
        counts["predictions"] += len(found.detections)
        counts["matches"] += len(matches)
        write(matches)
    result = evaluation.result()
    result.metrics["confusion"] = confusion_sum(parts, options)
    if subsets is not None:
        result.metrics["subsets"] = subsets.rows(result.metrics["subsets"])
        result.warnings += subsets.warnings()
    if left_out:
        result.warnings.append(
            f"{left_out} instances were left out: polygons on items whose size is unknown "
            "(a polygon is rasterised on its image), masks whose size is not their image's, "
            "or compressed masks whose counts do not decode to their size."
        )
    return result, counts


def _scores(metadata: Any, mapping: dict[str, str]) -> dict[str, float] | None:
    """A category prediction's class scores (`metadata.scores`, {label: number}), labels
    mapped (two labels mapped to one keep the higher score); None when absent or not
    numbers."""
    raw = metadata.get("scores") if isinstance(metadata, dict) else None
    if not isinstance(raw, dict) or not raw:
        return None
    scores: dict[str, float] = {}
    for label, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if not math.isfinite(value):
            return None
        target = mapping.get(str(label), str(label))
        scores[target] = max(float(value), scores.get(target, -math.inf))
    return scores


def classification_pass(
    run: EvaluationRun, item_ids: list[int], write: Write
) -> tuple[engine.Result, dict[str, int]]:
    """Accuracy, per-class precision/recall/F1, the confusion matrix and top-k over the
    run's category annotations and predictions."""
    mapping: dict[str, str] = dict(run.options.get("label_mapping") or {})
    evaluation = classification.Classification(run.options.get("top_k") or ())
    counts = {"items": len(item_ids), "ground_truth": 0, "predictions": 0, "matches": 0}
    for seen in shape_chunks(run, item_ids, ("category",)):
        truths = [classification.Truth(s.item_id, s.pk, s.label) for s in seen.ground_truth]
        guesses = [
            classification.Guess(
                s.item_id, s.pk, s.label, s.confidence, _scores(s.metadata, mapping)
            )
            for s in seen.predictions
            if s.pk is not None and s.confidence is not None
        ]
        matches = evaluation.add(seen.item_ids, truths, guesses)
        counts["ground_truth"] += len(truths)
        counts["predictions"] += len(guesses)
        counts["matches"] += len(matches)
        write(matches)
    return evaluation.result(), counts
