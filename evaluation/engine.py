"""Detection metrics with boxes, by the COCO protocol, and each object's outcome.

The matching and the accumulation are pycocotools' COCOeval ported to NumPy
(evaluation.matching): the same rules, applied to many images at once, fed a run's items
in chunks so that memory stays bounded (see docs/evaluation.md, "Engine"). The numbers
and the matches are pycocotools' own: tests/test_evaluation.py compares them with
COCOeval run on the same boxes, and bench/evaluate.py on 5,000 images.

The per-object outcomes are COCO's matches at the operating IoU, area "all" and the
largest maxDets. The confidence threshold is applied after matching, which changes no
match: COCO matches detections greedily in descending score order, so a detection's
match never depends on lower-scored ones.

This module knows nothing of the database: it takes plain objects and returns plain
objects (evaluation.scope loads them, evaluation.services stores what comes back).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evaluation import matching, tide
from evaluation.analysis import Analysis

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
    # Instance segmentation (evaluation.segmentation): the mask's area and its COCO RLE.
    area: float | None = None
    mask: Any = None


@dataclass(frozen=True, slots=True)
class Detection:
    item_id: int
    prediction_id: int
    label: str  # after the label mapping
    box: tuple[float, float, float, float]
    score: float
    area: float | None = None  # instance segmentation: as GroundTruth's
    mask: Any = None


@dataclass(frozen=True, slots=True)
class Match:
    outcome: str  # "tp", "fp" or "fn"
    item_id: int
    label: str
    annotation_id: int | None = None
    prediction_id: int | None = None
    confidence: float | None = None
    iou: float | None = None
    error_type: str | None = None  # TIDE's, for an FP or FN (evaluation.tide)


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


def _best_f1(score: np.ndarray, is_tp: np.ndarray, positives: int) -> dict[str, Any] | None:
    """The confidence threshold with the best F1 over the evaluated detections (score,
    is TP) at the operating IoU; thresholds are the detections' own scores (the highest
    of equal F1s)."""
    if not len(score) or not positives:
        return None
    order = np.argsort(-score, kind="stable")
    score, is_tp = score[order], is_tp[order]
    tp = np.cumsum(is_tp)
    fp = np.arange(1, len(score) + 1) - tp
    # A threshold keeps every detection of equal score: only the last of a run counts.
    last = np.append(score[1:] != score[:-1], True)
    tp, fp, at = tp[last], fp[last], score[last]
    precision = tp / (tp + fp)
    recall = tp / positives
    total = precision + recall
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(total > 0, 2 * precision * recall / total, 0.0)
    best = int(np.argmax(f1))
    return {
        "confidence": float(at[best]),
        **_point(int(tp[best]), int(fp[best]), positives - int(tp[best])),
    }


def _columns(
    objects: Sequence[GroundTruth] | Sequence[Detection], codes: dict[str, int]
) -> matching.Boxes:
    for o in objects:
        codes.setdefault(o.label, len(codes))
    boxes = np.array([o.box for o in objects], dtype=np.float64).reshape(-1, 4)
    columns = matching.Boxes(
        image=np.fromiter((o.item_id for o in objects), np.int64, len(objects)),
        cat=np.fromiter((codes[o.label] for o in objects), np.int64, len(objects)),
        box=boxes,
    )
    if objects and objects[0].area is not None:
        columns.area = np.fromiter((o.area for o in objects), np.float64, len(objects))
    if objects and isinstance(objects[0], Detection):
        columns.score = np.fromiter((o.score for o in objects), np.float64, len(objects))  # type: ignore[union-attr]
    else:
        columns.crowd = np.fromiter((o.crowd for o in objects), bool, len(objects))  # type: ignore[union-attr]
    return columns


class Evaluation:
    """A run's evaluation, fed its items in chunks of whole items (each item's boxes in
    one chunk; chunks in increasing item id, as COCOeval orders its images). `add`
    returns the chunk's outcomes; `result` the metrics once every chunk is in.
    (evaluation.segmentation's subclass matches masks instead of boxes.)"""

    SHAPE, SHAPES = "box", "boxes"  # what the warnings call the objects

    def __init__(self, options: Options) -> None:
        self.options = options
        self.params = matching.Params(
            iou_thrs=np.array(options.iou_thresholds, dtype=np.float64),
            max_dets=tuple(options.max_dets),
            area_ranges=tuple(options.area_ranges[name] for name in AREA_NAMES),
            use_cats=not options.class_agnostic,
            operating=int(
                np.argmin(np.abs(np.array(options.iou_thresholds) - options.operating_iou))
            ),
        )
        self.op = self.params.operating
        self.codes: dict[str, int] = {}
        self.gt_labels: set[str] = set()
        self.dt_labels: set[str] = set()
        self.items = self.detections = self.crowd_free_gt = 0
        self.positives: dict[int, np.ndarray] = {}  # code -> (A,) ground truths that count
        self.parts: list[tuple[np.ndarray, ...]] = []  # per chunk: score, code, item, rank, bits
        self.counts: Counter[tuple[str, str]] = Counter()
        self.ignored = {"matched_crowd": 0, "below_threshold": 0, "evaluated": 0}
        # The error breakdown, score histograms and subsets (evaluation.analysis).
        self.analysis = Analysis(self.params.use_cats)

    def add(
        self,
        item_ids: Iterable[int],
        ground_truth: Sequence[GroundTruth],
        detections: Sequence[Detection],
        subsets: dict[str, set[int]] | None = None,
    ) -> list[Match]:
        """Match one chunk; `subsets` (key -> the chunk's items in it) are the run's
        per-subset breakdown (evaluation.analysis)."""
        self.items += len(set(item_ids))
        self.detections += len(detections)
        self.gt_labels.update(g.label for g in ground_truth)
        self.dt_labels.update(d.label for d in detections)
        self.crowd_free_gt += sum(1 for g in ground_truth if not g.crowd)
        gt = _columns(ground_truth, self.codes)
        dt = _columns(detections, self.codes)
        if gt.crowd is None:
            gt.crowd = np.zeros(0, bool)
        if dt.score is None:
            dt.score = np.zeros(0)
        names = sorted(self.codes)
        catrank = np.zeros(len(self.codes), np.int64)
        for rank, name in enumerate(names):
            catrank[self.codes[name]] = rank
        found = matching.match(gt, dt, catrank, self.params, self.iou_of(ground_truth, detections))
        group_cat = gt.cat if self.params.use_cats else np.zeros(len(gt.cat), np.int64)
        for code in np.unique(group_cat):
            here = found.gt_counts[group_cat == code].sum(0)
            self.positives[int(code)] = self.positives.get(int(code), 0) + here
        score = dt.score[found.dt_index]
        shape = found.tp.shape
        bits = matching.pack(found.tp, found.ignored)
        cat = dt.cat[found.dt_index] if self.params.use_cats else np.zeros(shape[0], np.int64)
        self.parts.append((score, cat, dt.image[found.dt_index], found.rank, bits))
        confident = score >= self.options.confidence_threshold
        fg = float(self.params.iou_thrs[self.op])
        errors = tide.classify(
            gt,
            dt,
            found,
            self.op,
            fg,
            confident,
            self.params.use_cats,
            pair_iou=self.pair_iou(ground_truth, detections),
        )
        matches = self._outcomes(ground_truth, detections, found, score, errors)
        self.analysis.add(gt, dt, found, self.op, score, errors, matches, subsets)
        return matches

    def iou_of(
        self, ground_truth: Sequence[GroundTruth], detections: Sequence[Detection]
    ) -> matching.IouOf | None:
        """The IoUs of this chunk's groups when they are not the boxes' (None: boxes)."""
        return None

    def pair_iou(
        self, ground_truth: Sequence[GroundTruth], detections: Sequence[Detection]
    ) -> tide.PairIou | None:
        """The IoU of (detection, ground truth) pairs for TIDE when it is not the boxes'."""
        return None

    def _outcomes(
        self,
        ground_truth: Sequence[GroundTruth],
        detections: Sequence[Detection],
        found: matching.Matched,
        score: np.ndarray,
        errors: tide.Errors,
    ) -> list[Match]:
        """Each object's outcome at the operating IoU, area "all", the largest maxDets."""
        t, threshold = self.op, self.options.confidence_threshold
        ignored = found.ignored[:, 0, t]
        confident = ~ignored & (score >= threshold)
        self.ignored["evaluated"] += len(score)
        self.ignored["matched_crowd"] += int(ignored.sum())
        self.ignored["below_threshold"] += int((~ignored & ~confident).sum())
        matches: list[Match] = []
        taken = set()
        rows = np.flatnonzero(confident)
        for dt_index, gt_index, iou, kind in zip(
            found.dt_index[rows].tolist(),
            found.matched_gt[rows].tolist(),
            found.iou[rows].tolist(),
            errors.kind[rows].tolist(),
            strict=True,
        ):
            det = detections[dt_index]
            if gt_index >= 0:
                taken.add(gt_index)
                g = ground_truth[gt_index]
                matches.append(
                    Match(
                        "tp",
                        det.item_id,
                        g.label,
                        g.annotation_id,
                        det.prediction_id,
                        det.score,
                        iou,
                    )
                )
            else:
                error = tide.TYPES[kind - 1] if kind else None
                matches.append(
                    Match(
                        "fp",
                        det.item_id,
                        det.label,
                        None,
                        det.prediction_id,
                        det.score,
                        None,
                        error,
                    )
                )
        covered = errors.covered_by_confident
        for counted in np.flatnonzero(found.gt_counts[:, 0]).tolist():
            if counted not in taken:
                g = ground_truth[counted]
                # Missed, unless a confident CLS/LOC error points at it (that FP explains it).
                error = None if covered[counted] else "missed"
                matches.append(Match("fn", g.item_id, g.label, g.annotation_id, error_type=error))
        self.counts.update((m.label, m.outcome) for m in matches)
        return matches

    def result(self) -> Result:
        """The metrics of every chunk added (Result.matches stays empty)."""
        options, p = self.options, self.params
        labels = sorted(self.codes)
        n_a, n_t = len(p.area_ranges), len(p.iou_thrs)
        if p.use_cats:
            index = np.zeros(max(len(self.codes), 1), np.int64)
            for k, label in enumerate(labels):
                index[self.codes[label]] = k
            n_k = len(labels)
        else:
            index = np.zeros(1, np.int64)
            n_k = 1 if self.codes else 0
        positives = np.zeros((n_k, n_a))
        for code, counted in self.positives.items():
            positives[index[code]] += counted
        if self.parts:
            score, cat, image, rank, bits = (
                np.concatenate(c) for c in zip(*self.parts, strict=True)
            )
        else:
            score, cat, image, rank = (
                np.zeros(0),
                np.zeros(0, np.int64),
                np.zeros(0, np.int64),
                np.zeros(0, np.int64),
            )
            bits = np.zeros((0, (2 * n_a * n_t + 7) // 8), np.uint8)
        precision, recall = matching.accumulate(
            score, index[cat] if len(cat) else cat, image, rank, bits, positives, p
        )
        self._all = (score, index[cat] if len(cat) else cat, image, rank, bits, index, n_k)
        # Flags at the operating IoU, area "all" (for the best F1).
        tp_op = matching.flag(bits, self.op)
        ignored_op = matching.flag(bits, n_a * n_t + self.op)
        self.precision, self.recall = precision, recall  # as COCOeval.eval has them
        stats = matching.summarize(precision, recall, p, AREA_NAMES)

        warnings: list[str] = []
        if not self.detections:
            warnings.append(
                f"The model has no {self.SHAPE} predictions on these items: every ground "
                "truth is a miss, and AP and AR are 0 where there is ground truth."
            )
        if not self.crowd_free_gt:
            warnings.append(
                f"There are no (non-crowd) ground-truth {self.SHAPES} on these items: "
                "pycocotools defines every AP and AR as -1 here, and every prediction is a "
                "false positive."
            )
        only_predicted = sorted(self.dt_labels - self.gt_labels)
        if only_predicted and self.gt_labels:
            warnings.append(
                "Labels only the model uses (no ground truth; their AP is -1, their "
                f"predictions false positives): {', '.join(only_predicted[:20])}"
                + (" ..." if len(only_predicted) > 20 else "")
            )
        beyond = self.detections - self.ignored["evaluated"]
        if beyond > 0:
            warnings.append(
                f"{beyond} predictions were not evaluated: more than {options.max_dets[-1]} "
                "(max_dets) on their image"
                + ("" if options.class_agnostic else " and class")
                + ", as the COCO protocol does."
            )
        counts = self.counts
        total = _point(
            sum(c for (_, o), c in counts.items() if o == "tp"),
            sum(c for (_, o), c in counts.items() if o == "fp"),
            sum(c for (_, o), c in counts.items() if o == "fn"),
        )
        evaluated = ~ignored_op
        metrics: dict[str, Any] = {
            "coco_stats": stats,
            **dict(zip(STAT_NAMES, stats, strict=True)),
            "operating_point": {
                "confidence": options.confidence_threshold,
                "iou": float(p.iou_thrs[self.op]),
                **total,
            },
            "best_f1": _best_f1(score[evaluated], tp_op[evaluated], int(positives[:, 0].sum())),
            "recall_thresholds": [float(r) for r in matching.REC_THRS],
            "per_class": self._per_class(labels, precision, recall),
            "ignored": {**self.ignored, "beyond_max_dets": beyond},
        }
        names = {code: label for label, code in self.codes.items()}
        metrics.update(
            self.analysis.result(
                names,
                float(p.iou_thrs[self.op]),
                {int(c): int(v[0]) for c, v in self.positives.items()},
                self.counts,
                self._subset_metrics,
            )
        )
        return Result(metrics=metrics, warnings=warnings)

    def _subset_metrics(self, items: np.ndarray, positives: dict[int, np.ndarray]) -> list[float]:
        """COCOeval.summarize's 12 numbers over the detections and ground truth (per
        code, per area) of `items` only: the run's matching, accumulated again."""
        score, cat, image, rank, bits, index, n_k = self._all
        p = self.params
        counted = np.zeros((n_k, len(p.area_ranges)))
        for code, value in positives.items():
            counted[index[code]] += value
        rows = np.isin(image, items)
        precision, recall = matching.accumulate(
            score[rows], cat[rows], image[rows], rank[rows], bits[rows], counted, p
        )
        return matching.summarize(precision, recall, p, AREA_NAMES)

    def _per_class(
        self, labels: list[str], precision: np.ndarray, recall: np.ndarray
    ) -> list[dict[str, Any]]:
        """AP, AP50, AR and the PR curve (at the operating IoU) per class, with the
        operating point's counts. Class-agnostic runs have counts only."""
        rows = []
        iou_50 = np.where(self.params.iou_thrs == 0.5)[0]
        for k, label in enumerate(labels):
            row: dict[str, Any] = {
                "label": label,
                "ap": None,
                "ap50": None,
                "ar": None,
                "pr_curve": None,
            }
            if self.params.use_cats:
                p = precision[:, :, k, 0, -1]
                row["ap"] = _mean_defined(p)
                row["ap50"] = _mean_defined(p[iou_50]) if iou_50.size else None
                row["ar"] = _mean_defined(recall[:, k, 0, -1])
                row["pr_curve"] = [float(v) for v in p[self.op]]
            c = self.counts
            row.update(_point(c[label, "tp"], c[label, "fp"], c[label, "fn"]))
            rows.append(row)
        return rows


# Items per chunk: bounds the memory of matching, whatever the run's size.
CHUNK_ITEMS = 5000


def evaluate(
    *,
    item_ids: Sequence[int],
    ground_truth: Sequence[GroundTruth],
    detections: Sequence[Detection],
    options: Options,
    kind: type[Evaluation] = Evaluation,
) -> Result:
    """COCO detection metrics of `detections` against `ground_truth` on `item_ids`, with
    every object's outcome (all in memory; evaluation.scope feeds a run in chunks).
    `kind`: the evaluation (segmentation.SegmentationEvaluation matches masks)."""
    ids = sorted(set(item_ids))
    evaluation = kind(options)
    matches: list[Match] = []
    gt_by = sorted(range(len(ground_truth)), key=lambda i: ground_truth[i].item_id)
    dt_by = sorted(range(len(detections)), key=lambda i: detections[i].item_id)
    g = d = 0
    for start in range(0, max(len(ids), 1), CHUNK_ITEMS):
        chunk = ids[start : start + CHUNK_ITEMS]
        last = chunk[-1] if chunk else 0
        g_end, d_end = g, d
        while g_end < len(gt_by) and ground_truth[gt_by[g_end]].item_id <= last:
            g_end += 1
        while d_end < len(dt_by) and detections[dt_by[d_end]].item_id <= last:
            d_end += 1
        matches += evaluation.add(
            chunk,
            [ground_truth[i] for i in gt_by[g:g_end]],
            [detections[i] for i in dt_by[d:d_end]],
        )
        g, d = g_end, d_end
    result = evaluation.result()
    result.matches = matches
    return result
