"""Detection metrics with boxes, by the COCO protocol, and each object's outcome.

pycocotools' COCOeval does the matching and the accumulation. It is the reference that
people compare detection numbers with, so running it (rather than a reimplementation)
makes our numbers equal to its numbers by construction, on every edge case it handles:
crowd regions, area ranges, more detections than maxDets, images without ground truth or
without detections, classes on one side only. It is pinned in pyproject.toml; at the sizes
this module is used for (whole runs in memory) it is fast enough. faster-coco-eval is the
drop-in to switch to when speed matters more, and chunked matching is what a 1M-item run
needs (neither is done here).

The per-object outcomes are read from COCOeval.evalImgs at the operating IoU, area "all"
and the largest maxDets: exactly the matches pycocotools made. The confidence threshold
is applied after matching, which changes no match: COCO matches detections greedily in
descending score order, so a detection's match never depends on lower-scored ones.

This module knows nothing of the database: it takes plain objects and returns plain
objects (evaluation.jobs loads and stores them).
"""

from __future__ import annotations

import contextlib
import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

# The names of COCOeval.stats, in its order.
STAT_NAMES = (
    "map",
    "map_50",
    "map_75",
    "map_small",
    "map_medium",
    "map_large",
    "mar_1",
    "mar_10",
    "mar_100",
    "mar_small",
    "mar_medium",
    "mar_large",
)
AREA_NAMES = ("all", "small", "medium", "large")


@dataclass(frozen=True, slots=True)
class GroundTruth:
    item_id: int
    annotation_id: int | None  # None: a frozen version's annotation since deleted
    label: str
    box: tuple[float, float, float, float]  # x, y, width, height
    crowd: bool = False


@dataclass(frozen=True, slots=True)
class Detection:
    item_id: int
    prediction_id: int
    label: str  # after the label mapping
    box: tuple[float, float, float, float]
    score: float


@dataclass(frozen=True, slots=True)
class Match:
    outcome: str  # "tp", "fp" or "fn"
    item_id: int
    label: str
    annotation_id: int | None = None
    prediction_id: int | None = None
    confidence: float | None = None
    iou: float | None = None


@dataclass(frozen=True)
class Options:
    iou_thresholds: tuple[float, ...]
    max_dets: tuple[int, int, int]
    area_ranges: dict[str, tuple[float, float]]
    class_agnostic: bool
    confidence_threshold: float
    operating_iou: float

    @classmethod
    def of(cls, options: dict[str, Any]) -> Options:
        """From a run's cleaned options (evaluation.options.options_clean)."""
        return cls(
            iou_thresholds=tuple(float(t) for t in options["iou_thresholds"]),
            max_dets=tuple(int(m) for m in options["max_dets"]),  # type: ignore[arg-type]
            area_ranges={k: (float(v[0]), float(v[1])) for k, v in options["area_ranges"].items()},
            class_agnostic=bool(options["class_agnostic"]),
            confidence_threshold=float(options["confidence_threshold"]),
            operating_iou=float(options["operating_iou"]),
        )


@dataclass
class Result:
    metrics: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    matches: list[Match] = field(default_factory=list)


def _coco(
    images: list[dict[str, Any]], categories: list[dict[str, Any]], annotations: list[Any]
) -> COCO:
    coco = COCO()
    coco.dataset = {"images": images, "categories": categories, "annotations": annotations}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _mean_defined(values: np.ndarray) -> float:
    """COCOeval.summarize's mean: over the entries > -1, or -1 when there are none."""
    defined = values[values > -1]
    return float(np.mean(defined)) if defined.size else -1.0


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def _f1(precision: float | None, recall: float | None) -> float | None:
    if precision is None or recall is None or precision + recall == 0:
        return None if precision is None or recall is None else 0.0
    return 2 * precision * recall / (precision + recall)


def _point(tp: int, fp: int, fn: int) -> dict[str, Any]:
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
    }


def _pair_iou(d: tuple[float, ...], g: tuple[float, ...]) -> float:
    """IoU of two boxes as pycocotools' bbIou computes it for a non-crowd ground truth."""
    w = min(d[0] + d[2], g[0] + g[2]) - max(d[0], g[0])
    h = min(d[1] + d[3], g[1] + g[3]) - max(d[1], g[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / (d[2] * d[3] + g[2] * g[3] - inter)


def _best_f1(scored: list[tuple[float, bool]], positives: int) -> dict[str, Any] | None:
    """The confidence threshold with the best F1 over the evaluated detections (score,
    is TP) at the operating IoU; thresholds are the detections' own scores."""
    if not scored or not positives:
        return None
    scored.sort(key=lambda s: -s[0])
    best: dict[str, Any] | None = None
    tp = fp = 0
    for index, (score, is_tp) in enumerate(scored):
        tp, fp = tp + is_tp, fp + (not is_tp)
        if index + 1 < len(scored) and scored[index + 1][0] == score:
            continue  # a threshold keeps every detection of equal score
        point = _point(tp, fp, positives - tp)
        if best is None or (point["f1"] or 0.0) > (best["f1"] or 0.0):
            best = {"confidence": score, **point}
    return best


def evaluate(
    *,
    item_ids: Sequence[int],
    ground_truth: Sequence[GroundTruth],
    detections: Sequence[Detection],
    options: Options,
) -> Result:
    """COCO detection metrics of `detections` against `ground_truth` on `item_ids`."""
    warnings: list[str] = []
    gt_labels = {g.label for g in ground_truth}
    dt_labels = {d.label for d in detections}
    labels = sorted(gt_labels | dt_labels)
    category = {label: index for index, label in enumerate(labels, 1)}
    if not detections:
        warnings.append(
            "The model has no box predictions on these items: every ground truth is a miss, "
            "and AP and AR are 0 where there is ground truth."
        )
    if not [g for g in ground_truth if not g.crowd]:
        warnings.append(
            "There are no (non-crowd) ground-truth boxes on these items: pycocotools defines "
            "every AP and AR as -1 here, and every prediction is a false positive."
        )
    only_predicted = sorted(dt_labels - gt_labels)
    if only_predicted and gt_labels:
        warnings.append(
            "Labels only the model uses (no ground truth; their AP is -1, their "
            f"predictions false positives): {', '.join(only_predicted[:20])}"
            + (" ..." if len(only_predicted) > 20 else "")
        )

    images = [{"id": int(i)} for i in sorted(set(item_ids))]
    categories = [{"id": category[label], "name": label} for label in labels]
    # Ids from 1: pycocotools records "no match" as 0.
    gt = _coco(
        images,
        categories,
        [
            {
                "id": index,
                "image_id": g.item_id,
                "category_id": category[g.label],
                "bbox": list(g.box),
                "area": g.box[2] * g.box[3],
                "iscrowd": int(g.crowd),
            }
            for index, g in enumerate(ground_truth, 1)
        ],
    )
    # What COCO.loadRes makes of a bbox result (area w*h, iscrowd 0), built directly:
    # loadRes fails on an empty list, and a run without predictions is a run.
    dt = _coco(
        images,
        categories,
        [
            {
                "id": index,
                "image_id": d.item_id,
                "category_id": category[d.label],
                "bbox": list(d.box),
                "area": d.box[2] * d.box[3],
                "score": d.score,
                "iscrowd": 0,
            }
            for index, d in enumerate(detections, 1)
        ],
    )
    coco_eval = COCOeval(gt, dt, "bbox")
    params = coco_eval.params
    params.iouThrs = np.array(options.iou_thresholds, dtype=np.float64)
    params.maxDets = list(options.max_dets)
    params.areaRng = [list(options.area_ranges[name]) for name in AREA_NAMES]
    params.areaRngLbl = list(AREA_NAMES)
    params.useCats = 0 if options.class_agnostic else 1
    with contextlib.redirect_stdout(io.StringIO()):
        coco_eval.evaluate()
        if coco_eval.evalImgs and any(e is not None for e in coco_eval.evalImgs):
            coco_eval.accumulate()
            coco_eval.summarize()
            stats = [float(s) for s in coco_eval.stats]
            accumulated = True
        else:
            # Nothing to accumulate (no boxes on either side): pycocotools cannot summarize;
            # -1 is what it gives every metric without ground truth.
            stats = [-1.0] * len(STAT_NAMES)
            accumulated = False

    op_index = int(np.argmin(np.abs(params.iouThrs - options.operating_iou)))
    matches, scored, positives, ignored = _outcomes(
        coco_eval, ground_truth, detections, options, op_index
    )
    beyond = len(detections) - ignored.pop("evaluated")
    if beyond > 0:
        warnings.append(
            f"{beyond} predictions were not evaluated: more than {options.max_dets[-1]} "
            "(max_dets) on their image"
            + ("" if options.class_agnostic else " and class")
            + ", as the COCO protocol does."
        )
    counts = Counter((m.label, m.outcome) for m in matches)
    total = _point(
        sum(c for (_, o), c in counts.items() if o == "tp"),
        sum(c for (_, o), c in counts.items() if o == "fp"),
        sum(c for (_, o), c in counts.items() if o == "fn"),
    )
    metrics: dict[str, Any] = {
        "coco_stats": stats,
        **dict(zip(STAT_NAMES, stats, strict=True)),
        "operating_point": {
            "confidence": options.confidence_threshold,
            "iou": float(params.iouThrs[op_index]),
            **total,
        },
        "best_f1": _best_f1(scored, positives),
        "recall_thresholds": [float(r) for r in params.recThrs],
        "per_class": _per_class(coco_eval, labels, counts, options, op_index, accumulated),
        "ignored": {**ignored, "beyond_max_dets": beyond},
    }
    return Result(metrics=metrics, warnings=warnings, matches=matches)


def _outcomes(
    coco_eval: COCOeval,
    ground_truth: Sequence[GroundTruth],
    detections: Sequence[Detection],
    options: Options,
    t: int,
) -> tuple[list[Match], list[tuple[float, bool]], int, dict[str, int]]:
    """Each object's outcome at IoU index `t`, area "all", the largest maxDets: the
    matches, every evaluated detection as (score, is TP), the ground truths that count,
    and how many predictions were evaluated or ignored (matched to a crowd region or
    outside area "all"; below the confidence threshold)."""
    threshold = options.confidence_threshold
    matches: list[Match] = []
    scored: list[tuple[float, bool]] = []
    positives = 0
    ignored = {"matched_crowd": 0, "below_threshold": 0, "evaluated": 0}
    all_area = 0  # AREA_NAMES[0]
    per_area = len(coco_eval.params.imgIds)
    areas = len(coco_eval.params.areaRng)
    for k in range(len(coco_eval.params.catIds) if coco_eval.params.useCats else 1):
        start = (k * areas + all_area) * per_area
        for e in coco_eval.evalImgs[start : start + per_area]:
            if e is None:
                continue
            matched_by: dict[int, int] = {}
            ignored["evaluated"] += len(e["dtIds"])
            for d, dt_id in enumerate(e["dtIds"]):
                det = detections[dt_id - 1]
                if e["dtIgnore"][t][d]:
                    ignored["matched_crowd"] += 1
                    continue
                gt_id = int(e["dtMatches"][t][d])
                scored.append((det.score, gt_id > 0))
                if det.score < threshold:
                    ignored["below_threshold"] += 1
                    continue
                if gt_id:
                    matched_by[gt_id] = dt_id
                    g = ground_truth[gt_id - 1]
                    matches.append(
                        Match(
                            "tp",
                            det.item_id,
                            g.label,
                            g.annotation_id,
                            det.prediction_id,
                            det.score,
                            _pair_iou(det.box, g.box),
                        )
                    )
                else:
                    matches.append(
                        Match("fp", det.item_id, det.label, None, det.prediction_id, det.score)
                    )
            for g_index, gt_id in enumerate(e["gtIds"]):
                if e["gtIgnore"][g_index]:
                    continue
                positives += 1
                if gt_id not in matched_by:
                    g = ground_truth[gt_id - 1]
                    matches.append(Match("fn", g.item_id, g.label, g.annotation_id))
    return matches, scored, positives, ignored


def _per_class(
    coco_eval: COCOeval,
    labels: list[str],
    counts: Counter[tuple[str, str]],
    options: Options,
    t: int,
    accumulated: bool,
) -> list[dict[str, Any]]:
    """AP, AP50, AR and the PR curve (at the operating IoU) per class from COCOeval.eval,
    with the operating point's counts. Class-agnostic runs have counts only."""
    rows = []
    iou_50 = np.where(coco_eval.params.iouThrs == 0.5)[0]
    for k, label in enumerate(labels):
        row: dict[str, Any] = {
            "label": label,
            "ap": None,
            "ap50": None,
            "ar": None,
            "pr_curve": None,
        }
        if accumulated and not options.class_agnostic:
            precision = coco_eval.eval["precision"][:, :, k, 0, -1]
            recall = coco_eval.eval["recall"][:, k, 0, -1]
            row["ap"] = _mean_defined(precision)
            row["ap50"] = _mean_defined(precision[iou_50]) if iou_50.size else None
            row["ar"] = _mean_defined(recall)
            row["pr_curve"] = [float(p) for p in precision[t]]
        row.update(_point(counts[label, "tp"], counts[label, "fp"], counts[label, "fn"]))
        rows.append(row)
    return rows
