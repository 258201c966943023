"""Label-error candidates: the scores (pure; no database). See docs/insights.md,
"Label-error candidates".

For one item, from its ground-truth boxes, its model's box predictions and the pairs the
evaluation run matched (true positives), find:

- wrong_label: a ground truth on which a prediction of another class sits
  (IoU >= WRONG_LABEL_IOU), while no prediction of its own class supports it;
- bad_box: a ground truth whose own class's prediction overlaps it, but worse than the
  model's fits of such objects almost ever are;
- missing: a prediction that overlaps no ground truth of its class, and none of another
  class enough to be about it (an occluding or occluded object);
- spurious: a ground truth that no prediction supports, in a class the model finds
  reliably (so that a miss there is unlikely).

Each score is a posterior probability in [0, 1]: a prior (`*_PRIOR`) times a likelihood
ratio measured on the data itself (`Calibration`, from a sample of the run's items): how
the model confuses classes at each confidence (`wrong_label`), how its fits of objects of
each size spread (`misplaced`), how its hits and misses spread over confidence
(`missing`, `p_real`), how often it finds an object of each class and size (`recall`).

A prediction is evidence only about the ground truth it overlaps most (or the one the
run matched it to), so one confident box never accuses two neighbours.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evaluation.engine import Detection, GroundTruth

WRONG_LABEL_IOU = 0.5
# A prediction overlapping every ground truth of its class less than this (and every other
# less than WRONG_LABEL_IOU) is about an unlabelled object.
MISSING_IOU = 0.2
# Below this a same-class prediction is not about that ground truth at all.
BAD_BOX_MIN_IOU = 0.1
# A misplaced box's IoU with the object's prediction is taken to lie below this.
BAD_BOX_MAX_IOU = 0.6
# The lowest fit `good_fit` reports (a model whose hits fit this badly says nothing).
GOOD_FIT_FLOOR = 0.3
# Prior probabilities that a ground-truth box is spurious (no object there), or has a
# wrong label.
SPURIOUS_PRIOR = 0.01
WRONG_LABEL_PRIOR = 0.01
BAD_BOX_PRIOR = 0.01
MISSING_PRIOR = 0.01
FIT_BINS = 20
CONFIDENCE_BINS = 10
# Candidates scoring less are not kept (an item without any scores 0): a model's every
# miss would otherwise be a spurious candidate of 0.001.
MIN_SCORE = 0.005
# Pseudo-counts pulling a bin's rate towards its prior (the overall bin, then the
# confidence itself): a bin with few predictions says little.
SMOOTHING = 5.0
# A label's recall is used only when the sample has this many of its ground truths.
MIN_RECALL_SUPPORT = 20


@dataclass(frozen=True)
class Candidate:
    item_id: int
    type: str
    score: float
    annotation_id: int | None
    prediction_id: int | None
    evidence: dict[str, Any]


def iou_matrix(
    a: list[tuple[float, float, float, float]], b: list[tuple[float, float, float, float]]
) -> list[list[float]]:
    """IoU of every box of `a` with every box of `b` (x, y, width, height), as lists: an
    item holds a few boxes, where plain floats beat NumPy's per-call and per-element cost."""
    out = []
    for x, y, w, h in a:
        x1, y1, area = x + w, y + h, w * h
        row = []
        for u, v, p, q in b:
            iw = min(x1, u + p) - max(x, u)
            ih = min(y1, v + q) - max(y, v)
            if iw <= 0 or ih <= 0:
                row.append(0.0)
                continue
            inter = iw * ih
            union = area + p * q - inter
            row.append(inter / union if union > 0 else 0.0)
        out.append(row)
    return out


# Object sizes (square root of the box's area, pixels): the model's recall and fit depend on
# them, so both are measured per size.
SIZE_EDGES = (16.0, 32.0, 64.0, 128.0)


def size_bucket(box: tuple[float, float, float, float]) -> int:
    area = box[2] * box[3]
    return sum(1 for edge in SIZE_EDGES if area >= edge * edge)


def _bin(confidence: float) -> int:
    return min(CONFIDENCE_BINS - 1, max(0, int(confidence * CONFIDENCE_BINS)))


@dataclass
class Calibration:
    """What the scores are measured against, estimated from a sample of items.

    `hits[label][b]`, `seen[label][b]`: predictions of `label` in confidence bin b, and how
    many of them hit an object (greedy matching per class at the operating IoU, every
    confidence). `gt_found[label]`, `gt_seen[label]`: ground truths found by a prediction
    at or above the run's confidence threshold. `tp_ious`: IoUs of those hits.
    """

    iou_threshold: float = 0.5
    confidence_threshold: float = 0.5
    hits: dict[str, list[int]] = field(default_factory=dict)
    seen: dict[str, list[int]] = field(default_factory=dict)
    gt_found: dict[str, int] = field(default_factory=dict)
    gt_seen: dict[str, int] = field(default_factory=dict)
    tp_ious: dict[int, list[float]] = field(default_factory=dict)
    # Class-agnostic matching: "gt label>prediction label" -> predictions per confidence
    # bin, and how many ground truths of each label some prediction matched.
    pairs: dict[str, list[int]] = field(default_factory=dict)
    paired: dict[str, int] = field(default_factory=dict)
    # Per size: how well the best confident same-class prediction fits each ground truth
    # (IoU histogram, FIT_BINS bins over [0, 1), from BAD_BOX_MIN_IOU).
    fits: dict[int, list[int]] = field(default_factory=dict)
    items: int = 0
    _fit: dict[int, float] | None = None
    # Sums over every label, per confidence bin (computed once: scoring asks millions of times).
    _sums: dict[str, list[float]] = field(default_factory=dict)

    def add(self, ground_truth: list[GroundTruth], detections: list[Detection]) -> None:
        """Count one item's predictions and ground truths."""
        self.items += 1
        gts = [g for g in ground_truth if not g.crowd]
        order = sorted(range(len(detections)), key=lambda k: -detections[k].score)
        ious = iou_matrix([detections[k].box for k in order], [g.box for g in gts])
        taken: set[int] = set()
        for row, k in enumerate(order):
            d = detections[k]
            best, best_iou = -1, self.iou_threshold
            for j, g in enumerate(gts):
                if j not in taken and g.label == d.label and ious[row][j] >= best_iou:
                    best, best_iou = j, float(ious[row][j])
            b = _bin(d.score)
            self.seen.setdefault(d.label, [0] * CONFIDENCE_BINS)[b] += 1
            hits = self.hits.setdefault(d.label, [0] * CONFIDENCE_BINS)
            if best >= 0:
                taken.add(best)
                hits[b] += 1
                if d.score >= self.confidence_threshold:
                    size = size_bucket(gts[best].box)
                    self.tp_ious.setdefault(size, []).append(best_iou)
                    for key in _recall_keys(gts[best]):
                        self.gt_found[key] = self.gt_found.get(key, 0) + 1
        for g in gts:
            for key in _recall_keys(g):
                self.gt_seen[key] = self.gt_seen.get(key, 0) + 1
        for j, g in enumerate(gts):
            fit = max(
                (
                    float(ious[row][j])
                    for row, k in enumerate(order)
                    if detections[k].label == g.label
                    and detections[k].score >= self.confidence_threshold
                ),
                default=0.0,
            )
            if fit >= BAD_BOX_MIN_IOU:
                hist = self.fits.setdefault(size_bucket(g.box), [0] * FIT_BINS)
                hist[min(FIT_BINS - 1, int(fit * FIT_BINS))] += 1
        taken.clear()
        for row, k in enumerate(order):
            d = detections[k]
            best, best_iou = -1, self.iou_threshold
            for j in range(len(gts)):
                if j not in taken and ious[row][j] >= best_iou:
                    best, best_iou = j, float(ious[row][j])
            if best >= 0:
                taken.add(best)
                key = f"{gts[best].label}>{d.label}"
                self.pairs.setdefault(key, [0] * CONFIDENCE_BINS)[_bin(d.score)] += 1
                self.paired[gts[best].label] = self.paired.get(gts[best].label, 0) + 1
        self._fit = None
        self._sums = {}

    def p_real(self, label: str, confidence: float) -> float:
        """Probability that a prediction of `label` at `confidence` is a real object of
        that class: the sample's hit rate in its confidence bin, smoothed towards all
        labels' rate in the bin, itself smoothed towards the confidence."""
        b = _bin(confidence)
        hits_all, seen_all = self._sum("hits")[b], self._sum("seen")[b]
        overall = (hits_all + SMOOTHING * confidence) / (seen_all + SMOOTHING)
        hits = self.hits.get(label, [0] * CONFIDENCE_BINS)[b]
        seen = self.seen.get(label, [0] * CONFIDENCE_BINS)[b]
        return (hits + SMOOTHING * overall) / (seen + SMOOTHING)

    def _sum(self, what: str) -> list[float]:
        if what not in self._sums:
            if what == "paired":
                found = [float(sum(self.paired.values()))]
            else:
                rows = {
                    "hits": list(self.hits.values()),
                    "seen": list(self.seen.values()),
                    "agree": [v for k, v in self.pairs.items() if _same(k)],
                    "confuse": [v for k, v in self.pairs.items() if not _same(k)],
                }[what]
                found = [float(sum(r[b] for r in rows)) for b in range(CONFIDENCE_BINS)]
            self._sums[what] = found
        return self._sums[what]

    def _pair_rate(self, truth: str, said: str, confidence: float) -> float:
        """How often the model says `said` in this confidence bin on a `truth`, smoothed
        towards all classes' rate of agreeing (truth == said) or of confusing (per other
        class), so that a class with few objects is not judged by one of them."""
        b = _bin(confidence)
        total = self._sum("paired")[0]
        agree, confuse = self._sum("agree")[b], self._sum("confuse")[b]
        others = max(1, len(self.paired) - 1)
        base = (agree if truth == said else confuse / others) / total if total else 0.0
        base = max(base, 1e-4)
        count = self.pairs.get(f"{truth}>{said}", [0] * CONFIDENCE_BINS)[b]
        return (count + SMOOTHING * base) / (self.paired.get(truth, 0) + SMOOTHING)

    def wrong_label(self, label: str, said: str, confidence: float) -> float:
        """Probability that a ground truth labelled `label` is really `said`, given that a
        prediction of `said` at `confidence` sits on it: the prior WRONG_LABEL_PRIOR times
        the likelihood ratio of such a prediction on a real `said` (how often the model says
        `said` at that confidence on a `said`) against on a real `label` (how often it
        confuses the two at that confidence), both measured on the sample."""
        ratio = self._pair_rate(said, said, confidence) / self._pair_rate(label, said, confidence)
        odds = WRONG_LABEL_PRIOR / (1 - WRONG_LABEL_PRIOR) * ratio
        return odds / (1 + odds)

    def missing(self, label: str, confidence: float) -> float:
        """Probability that a prediction overlapping no ground truth is an unlabelled
        object: prior odds MISSING_PRIOR times how much likelier its confidence is among the
        model's hits than among its misses (sample counts of its label's bin, smoothed
        towards all labels')."""
        b = _bin(confidence)
        hits_all, seen_all = self._sum("hits")[b], self._sum("seen")[b]
        ratio_all = (hits_all + 0.5) / (seen_all - hits_all + 0.5)
        hits = self.hits.get(label, [0] * CONFIDENCE_BINS)[b]
        misses = self.seen.get(label, [0] * CONFIDENCE_BINS)[b] - hits
        ratio = (hits + SMOOTHING * ratio_all / (1 + ratio_all)) / (
            misses + SMOOTHING / (1 + ratio_all)
        )
        odds = MISSING_PRIOR / (1 - MISSING_PRIOR) * ratio
        return odds / (1 + odds)

    def misplaced(self, iou: float, size: int) -> float:
        """Probability that a box is badly placed when its class's confident prediction
        fits it at `iou`: prior odds BAD_BOX_PRIOR times the likelihood ratio of that fit
        for a misplaced box (IoU spread evenly over [BAD_BOX_MIN_IOU, BAD_BOX_MAX_IOU]) against
        for a well placed one (the density of the sample's fits of objects of this size)."""
        if not BAD_BOX_MIN_IOU <= iou < BAD_BOX_MAX_IOU:
            return 0.0
        hist = self.fits.get(size) or [sum(v) for v in zip(*self.fits.values(), strict=False)]
        total = sum(hist)
        b = min(FIT_BINS - 1, int(iou * FIT_BINS))
        # Smoothed towards a prior that makes good fits likelier than poor ones (density
        # growing with the square of the IoU), one pseudo-count strong.
        prior = (b + 0.5) ** 2 / sum((k + 0.5) ** 2 for k in range(FIT_BINS))
        # The histogram smoothed over neighbouring bins (weights 1 2 3 2 1): a fit a
        # little worse than the model's usual ones is not rare.
        near = (
            sum(
                w * hist[b + d]
                for d, w in zip(range(-2, 3), (1, 2, 3, 2, 1), strict=True)
                if 0 <= b + d < FIT_BINS
            )
            / 9
        )
        fine = (near + prior) / (total + 1.0) * FIT_BINS
        bad = 1.0 / (BAD_BOX_MAX_IOU - BAD_BOX_MIN_IOU)
        odds = BAD_BOX_PRIOR / (1 - BAD_BOX_PRIOR) * bad / fine
        return odds / (1 + odds)

    def recall(self, g: GroundTruth) -> float | None:
        """How often the model finds a ground truth like `g`: of its label and size when
        the sample has enough of them, else of its label."""
        for key in _recall_keys(g):
            seen = self.gt_seen.get(key, 0)
            if seen >= MIN_RECALL_SUPPORT:
                return self.gt_found.get(key, 0) / seen
        return None

    def good_fit(self, size: int) -> float:
        """The IoU that 95% of the model's hits on objects of this size reach."""
        if self._fit is None:
            everything = [v for values in self.tp_ious.values() for v in values]
            fits: dict[int, float] = {}
            for b in range(len(SIZE_EDGES) + 1):
                values = self.tp_ious.get(b) or everything
                fit = float(np.quantile(values, 0.05)) if values else 0.6
                fits[b] = max(fit, GOOD_FIT_FLOOR)
            self._fit = fits
        return self._fit[size]

    def to_state(self) -> dict[str, Any]:
        """What a resumed job needs to score the same way (the IoUs reduced to their fit)."""
        return {
            "iou_threshold": self.iou_threshold,
            "confidence_threshold": self.confidence_threshold,
            "hits": self.hits,
            "seen": self.seen,
            "gt_found": self.gt_found,
            "gt_seen": self.gt_seen,
            "items": self.items,
            "pairs": self.pairs,
            "paired": self.paired,
            "fits": {str(b): v for b, v in self.fits.items()},
            "good_fit": {str(b): self.good_fit(b) for b in range(len(SIZE_EDGES) + 1)},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Calibration:
        return cls(
            iou_threshold=float(state["iou_threshold"]),
            confidence_threshold=float(state["confidence_threshold"]),
            hits={k: list(v) for k, v in state["hits"].items()},
            seen={k: list(v) for k, v in state["seen"].items()},
            gt_found=dict(state["gt_found"]),
            gt_seen=dict(state["gt_seen"]),
            items=int(state["items"]),
            pairs={k: list(v) for k, v in state["pairs"].items()},
            paired=dict(state["paired"]),
            fits={int(b): list(v) for b, v in state["fits"].items()},
            _fit={int(b): float(v) for b, v in state["good_fit"].items()},
        )

    def summary(self) -> dict[str, Any]:
        labels = sorted(self.seen)
        return {
            "items": self.items,
            "iou_threshold": self.iou_threshold,
            "confidence_threshold": self.confidence_threshold,
            "size_edges": list(SIZE_EDGES),
            "good_fit_iou": [round(self.good_fit(b), 4) for b in range(len(SIZE_EDGES) + 1)],
            "recall": {
                k: round(self.gt_found.get(k, 0) / n, 4)
                for k, n in sorted(self.gt_seen.items())
                if n >= MIN_RECALL_SUPPORT
            },
            "p_real": {
                label: [
                    round(self.p_real(label, (b + 0.5) / CONFIDENCE_BINS), 4)
                    for b in range(CONFIDENCE_BINS)
                ]
                for label in labels
            },
        }


def _same(pair: str) -> bool:
    truth, _, said = pair.partition(">")
    return truth == said


def _recall_keys(g: GroundTruth) -> tuple[str, str]:
    return (f"{g.label}|{size_bucket(g.box)}", g.label)


def _r(value: float) -> float:
    return round(float(value), 4)


def _unexplained(
    gts: list[GroundTruth],
    detections: list[Detection],
    matched: dict[int, int],
    ious: list[list[float]],
) -> list[int]:
    """The predictions no ground truth explains: unmatched, overlapping every ground truth
    of their class less than MISSING_IOU and every other one less than WRONG_LABEL_IOU
    (objects occlude each other: a car in front of a truck overlaps the truck's box by a
    third, and is no claim about its label)."""
    return [
        k
        for k, d in enumerate(detections)
        if d.prediction_id not in matched
        and not any(
            row[k] >= (MISSING_IOU if g.label == d.label else WRONG_LABEL_IOU)
            for g, row in zip(gts, ious, strict=True)
        )
    ]


def unexplained(
    ground_truth: list[GroundTruth], detections: list[Detection], matched: dict[int, int]
) -> list[Detection]:
    """The predictions that could be about an unlabelled object (`missing` candidates)."""
    gts = [g for g in ground_truth if not g.crowd]
    ious = iou_matrix([g.box for g in gts], [d.box for d in detections])
    return [detections[k] for k in _unexplained(gts, detections, matched, ious)]


def item_candidates(
    item_id: int,
    ground_truth: list[GroundTruth],
    detections: list[Detection],
    matched: dict[int, int],
    calibration: Calibration,
    looks: dict[int, float] | None = None,
) -> list[Candidate]:
    """The candidates of one item. `matched` maps a prediction id to the annotation id the
    evaluation run matched it to (its true positives); `looks`, where the look signal is
    on, a prediction id to the likelihood ratio that its box holds an object
    (insights.label_look: objectness), for the predictions `unexplained` lists."""
    gts = [g for g in ground_truth if not g.crowd]
    ious = iou_matrix([g.box for g in gts], [d.box for d in detections])
    p_real = [calibration.p_real(d.label, d.score) for d in detections]
    # Whose evidence each prediction is: the ground truth the run matched it to, else the
    # one it overlaps most.
    owner: list[int] = []
    index = {g.annotation_id: j for j, g in enumerate(gts) if g.annotation_id is not None}
    for k, d in enumerate(detections):
        if d.prediction_id in matched and matched[d.prediction_id] in index:
            owner.append(index[matched[d.prediction_id]])
        elif gts and max(column := [row[k] for row in ious]) >= BAD_BOX_MIN_IOU:
            owner.append(column.index(max(column)))
        else:
            owner.append(-1)
    out: list[Candidate] = []
    for j, g in enumerate(gts):
        mine = [k for k in range(len(detections)) if owner[k] == j]
        same = [k for k in mine if detections[k].label == g.label]
        support = max((p_real[k] for k in same if ious[j][k] >= WRONG_LABEL_IOU), default=0.0)
        other = [
            k for k in mine if detections[k].label != g.label and ious[j][k] >= WRONG_LABEL_IOU
        ]
        if other:
            said = {
                k: calibration.wrong_label(g.label, detections[k].label, detections[k].score)
                for k in other
            }
            k = max(other, key=lambda k: said[k])
            score = said[k] * (1 - support)
            if score > 0:
                out.append(
                    _candidate(
                        item_id,
                        "wrong_label",
                        score,
                        g,
                        detections[k],
                        ious[j][k],
                        p_real[k],
                        support=support,
                        posterior=said[k],
                    )
                )
        size = size_bucket(g.box)
        placed = [
            (calibration.misplaced(float(ious[j][k]), size) * p_real[k], k)
            for k in same
            if ious[j][k] >= BAD_BOX_MIN_IOU
        ]
        if placed:
            score, k = max(placed)
            if score > 0 and not any(ious[j][q] >= calibration.good_fit(size) for q in same):
                out.append(
                    _candidate(item_id, "bad_box", score, g, detections[k], ious[j][k], p_real[k])
                )
        recall = calibration.recall(g)
        if recall is not None:
            # Every prediction about it (it overlaps this box most) lowers the score.
            any_support = max((p_real[k] for k in mine), default=0.0)
            prior = SPURIOUS_PRIOR
            posterior = prior / (prior + (1 - prior) * (1 - recall)) if recall < 1 else 1.0
            score = posterior * (1 - any_support)
            if score > 0 and not any(
                detections[k].score >= calibration.confidence_threshold for k in mine
            ):
                out.append(
                    Candidate(
                        item_id,
                        "spurious",
                        _r(min(1.0, score)),
                        g.annotation_id,
                        None,
                        {"label": g.label, "recall": _r(recall), "support": _r(any_support)},
                    )
                )
    missing: list[tuple[float, int]] = []
    for k in _unexplained(gts, detections, matched, ious):
        d = detections[k]
        score = calibration.missing(d.label, d.score)
        ratio = (looks or {}).get(d.prediction_id)
        if ratio is not None:
            # The look's likelihood ratio is independent evidence (insights.label_look).
            odds = score / max(1e-12, 1 - score) * ratio
            score = odds / (1 + odds)
        missing.append((score, k))
    kept: list[int] = []
    for score, k in sorted(missing, reverse=True):
        # One unlabelled object, several boxes on it: only the most probable counts.
        if (
            kept
            and max(iou_matrix([detections[k].box], [detections[q].box for q in kept])[0]) >= 0.5
        ):
            continue
        kept.append(k)
        d = detections[k]
        evidence = {
            "prediction": d.prediction_id,
            "label": d.label,
            "confidence": _r(d.score),
            "p_real": _r(p_real[k]),
            "box": [_r(v) for v in d.box],
        }
        if looks is not None and d.prediction_id in looks:
            evidence["look_ratio"] = _r(looks[d.prediction_id])
            evidence["detector_score"] = _r(calibration.missing(d.label, d.score))
        out.append(
            Candidate(item_id, "missing", _r(min(1.0, score)), None, d.prediction_id, evidence)
        )
    return [c for c in out if c.score >= MIN_SCORE]


def _candidate(
    item_id: int,
    kind: str,
    score: float,
    g: GroundTruth,
    d: Detection,
    iou: float,
    p_real: float,
    **extra: float,
) -> Candidate:
    evidence: dict[str, Any] = {
        "label": g.label,
        "prediction": d.prediction_id,
        "prediction_label": d.label,
        "confidence": _r(d.score),
        "iou": _r(iou),
        "p_real": _r(p_real),
        **{k: _r(v) for k, v in extra.items()},
    }
    return Candidate(
        item_id, kind, _r(min(1.0, max(0.0, score))), g.annotation_id, d.prediction_id, evidence
    )


def calibrate(
    seen: Iterable[tuple[list[GroundTruth], list[Detection]]],
    *,
    iou_threshold: float,
    confidence_threshold: float,
) -> Calibration:
    calibration = Calibration(
        iou_threshold=iou_threshold, confidence_threshold=confidence_threshold
    )
    for ground_truth, detections in seen:
        calibration.add(ground_truth, detections)
    return calibration
