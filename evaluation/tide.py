"""TIDE's error breakdown (Bolya et al., "TIDE: A General Toolbox for Identifying Object
Detection Errors", ECCV 2020): why each false positive is one, which missed ground truth
nothing explains, and how much AP each kind of error costs.

The matches are the run's own (COCO's, at the operating IoU, area "all", the largest
maxDets), so the foreground threshold is the operating IoU (TIDE's default 0.5 is the
run's default); the background threshold is TIDE's 0.1. Each false positive (a detection
that matched nothing, whatever its score) is, in TIDE's order of tests:

- background: its image has no ground truth;
- localization: its best IoU with a ground truth of its class is in [bg, fg];
- classification: its best IoU with a ground truth of another class is >= fg;
- duplicate: its best IoU with an already matched ground truth of its class is >= fg;
- background: its best IoU with any ground truth is <= bg;
- both (TIDE's "Other"): anything else (a wrong class at a poor IoU).

A ground truth nothing matched is missed unless a classification or localization error
points at it while it is unmatched (fixing that error would find it).

The cost of a type (dAP) is TIDE's oracle: the AP (TIDE's: per class, 101 recall points,
classes with only detections count 0) at fg once every error of that type is fixed, minus
the AP as it is, floored at 0. Fixing a classification or localization error turns it
into a true positive (of the ground truth's class) when it is the highest-scored error
pointing at a ground truth nothing matched, and removes it otherwise; duplicate,
background and both errors are removed; missed ground truth is taken out of the
positives. Nothing is matched again: as in TIDE, the fixes change data points, not
matches.

This module knows nothing of labels or of the database (categories are integer codes).
IoUs are the boxes' unless the caller gives `pair_iou` (a segmentation run's: masks').
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from evaluation import matching

BACKGROUND_IOU = 0.1  # TIDE's default background threshold
# Error types, by code (0: not an error: a true positive, or ignored).
TYPES = ("classification", "localization", "both", "duplicate", "background", "missed")
CLS, LOC, BOTH, DUP, BKG = 1, 2, 3, 4, 5


@dataclass
class Errors:
    """One chunk's errors. Detections are matching.Matched's (its dt_index order)."""

    kind: np.ndarray  # (n,) uint8: 0, or the code of the detection's error type
    fixes: np.ndarray  # (n,) bool: fixing its error makes it a true positive
    fix_cat: np.ndarray  # (n,) int64: its class once fixed (the ground truth's for CLS)
    missed: np.ndarray  # (g,) bool: ground truth that is a TIDE miss
    covered_by_confident: np.ndarray  # (g,) bool: a confident CLS/LOC error fixes it


def _best(
    pair_det: np.ndarray, pair_gt: np.ndarray, values: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per detection, the largest value over its pairs and the ground truth giving it
    (the first in the ground truths' order on ties, as np.argmax); 0 and -1 without pairs.
    Pairs come grouped by detection, in increasing detection order (no sort needed)."""
    best = np.zeros(n)
    which = np.full(n, -1, np.int64)
    if not len(pair_det):
        return best, which
    starts = np.flatnonzero(np.r_[True, pair_det[1:] != pair_det[:-1]])
    dets = pair_det[starts]
    best[dets] = np.maximum.reduceat(values, starts)
    position = np.where(values == best[pair_det], np.arange(len(values)), len(values))
    which[dets] = pair_gt[np.minimum.reduceat(position, starts)]
    return best, which


# The IoU of each (detection, ground truth) pair, given as two index arrays into the
# chunk's detections and ground truth, when it is not their boxes' (segmentation: masks').
PairIou = Callable[[np.ndarray, np.ndarray], np.ndarray]


def classify(
    gt: matching.Boxes,
    dt: matching.Boxes,
    found: matching.Matched,
    operating: int,
    fg: float,
    confident: np.ndarray,
    use_cats: bool,
    bg: float = BACKGROUND_IOU,
    pair_iou: PairIou | None = None,
) -> Errors:
    """TIDE's error of each detection that `found` evaluated, and the missed ground truth.
    `confident`: (n,) the detections at or above the run's confidence threshold."""
    assert gt.crowd is not None and dt.score is not None
    n, n_gt = len(found.dt_index), len(gt.image)
    tp = found.tp[:, 0, operating]
    ignored = found.ignored[:, 0, operating]
    used = np.zeros(n_gt, bool)
    used[found.matched_gt[tp]] = True
    counted = ~gt.crowd  # crowd regions are TIDE's ignore regions: never an error target
    kind = np.zeros(n, np.uint8)
    fixes = np.zeros(n, bool)
    d_cat = dt.cat[found.dt_index]
    fix_cat = d_cat.copy()
    missed = counted & ~used
    covered = np.zeros(n_gt, bool)
    wrong = np.flatnonzero(~tp & ~ignored)
    if not len(wrong):
        return Errors(kind, fixes, fix_cat, missed, covered)

    # Every (false positive, counted ground truth of its image) pair.
    g_idx = np.flatnonzero(counted)
    g_idx = g_idx[np.argsort(gt.image[g_idx], kind="stable")]
    g_img = gt.image[g_idx]
    d_idx = found.dt_index[wrong]
    d_img = dt.image[d_idx]
    lo = np.searchsorted(g_img, d_img, "left")
    hi = np.searchsorted(g_img, d_img, "right")
    per = hi - lo
    pair_det = np.repeat(np.arange(len(wrong)), per)
    offsets = np.arange(int(per.sum())) - np.repeat(np.cumsum(per) - per, per)
    pair_gt = g_idx[np.repeat(lo, per) + offsets]
    if pair_iou is not None:
        iou = pair_iou(d_idx[pair_det], pair_gt)
    else:
        iou = matching._iou(
            dt.box[d_idx[pair_det]][:, None, :],
            gt.box[pair_gt][:, None, :],
            np.zeros((len(pair_gt), 1), bool),
        )[:, 0, 0]
    same = dt.cat[d_idx[pair_det]] == gt.cat[pair_gt] if use_cats else np.ones(len(pair_gt), bool)
    w = len(wrong)
    m_same, g_same = _best(pair_det, pair_gt, iou * same, w)
    m_other, g_other = _best(pair_det, pair_gt, iou * ~same, w)
    m_used, _ = _best(pair_det, pair_gt, iou * (same & used[pair_gt]), w)
    m_any, _ = _best(pair_det, pair_gt, iou, w)

    # TIDE's tests, in its order: the first that holds names the error.
    k = np.full(w, BOTH, np.uint8)
    k[m_any <= bg] = BKG
    k[m_used >= fg] = DUP
    k[m_other >= fg] = CLS
    k[(m_same >= bg) & (m_same <= fg)] = LOC
    k[per == 0] = BKG
    kind[wrong] = k

    # A CLS or LOC error pointing at a ground truth nothing matched can be fixed into a
    # true positive; of several pointing at one, the highest-scored (the first in TIDE's
    # score order, ties by insertion order) is, the others are removed.
    target = np.where(k == CLS, g_other, np.where(k == LOC, g_same, -1))
    can = target >= 0
    can[can] = ~used[target[can]]
    rows = np.flatnonzero(can)
    if len(rows):
        score = dt.score[d_idx[rows]]
        order = np.lexsort((d_idx[rows], -score, target[rows]))
        first = np.ones(len(order), bool)
        first[1:] = target[rows][order[1:]] != target[rows][order[:-1]]
        winners = rows[order[first]]
        fixes[wrong[winners]] = True
        cls_win = winners[k[winners] == CLS]
        fix_cat[wrong[cls_win]] = gt.cat[target[cls_win]]
        missed[target[rows]] = False
        covered[target[rows[confident[wrong[rows]]]]] = True
    return Errors(kind, fixes, fix_cat, missed, covered)


def tide_ap(score: np.ndarray, cat: np.ndarray, tp: np.ndarray, positives: dict[int, int]) -> float:
    """TIDE's mAP (ClassedAPDataObject.get_mAP): per class with data points or positives,
    AP over 101 recall points of the monotone precision (0 without positives); the mean.
    Ties in score keep the order given."""
    classes = sorted(set(np.unique(cat).tolist()) | {c for c, v in positives.items() if v})
    if not classes:
        return 0.0
    order = np.lexsort((-score, cat))
    cat_sorted = cat[order]
    tp_sorted = tp[order]
    aps = []
    for c in classes:
        lo, hi = np.searchsorted(cat_sorted, [c, c + 1])
        n_pos = positives.get(c, 0)
        if n_pos <= 0:
            aps.append(0.0)
            continue
        t = tp_sorted[lo:hi]
        tps = np.cumsum(t)
        fps = np.cumsum(~t)
        precision = tps / np.maximum(tps + fps, 1)
        recall = tps / n_pos
        precision = np.maximum.accumulate(precision[::-1])[::-1]
        inds = np.searchsorted(recall, matching.REC_THRS, side="left")
        hit = inds < len(t)
        q = np.zeros(len(matching.REC_THRS))
        q[hit] = precision[inds[hit]]
        aps.append(float(q.mean()))
    return float(np.mean(aps))


@dataclass
class Points:
    """Every evaluated, not ignored detection of a run, as TIDE's AP data points."""

    score: np.ndarray
    cat: np.ndarray
    kind: np.ndarray  # 0: a true positive, else the error type's code
    fixes: np.ndarray
    fix_cat: np.ndarray


def breakdown(
    points: Points, positives: dict[int, int], missed: dict[int, int]
) -> tuple[float, dict[str, float]]:
    """TIDE's AP and each error type's dAP (the AP with that type fixed, minus the AP,
    floored at 0 as TIDE does)."""
    tp = points.kind == 0
    base = tide_ap(points.score, points.cat, tp, positives)
    dap: dict[str, float] = {}
    for code, name in enumerate(TYPES[:-1], start=1):
        mine = points.kind == code
        keep = ~mine | points.fixes
        cat = np.where(mine, points.fix_cat, points.cat)
        fixed = tide_ap(points.score[keep], cat[keep], (tp | mine)[keep], positives)
        dap[name] = max(fixed - base, 0.0)
    fewer = {c: v - missed.get(c, 0) for c, v in positives.items()}
    dap["missed"] = max(tide_ap(points.score, points.cat, tp, fewer) - base, 0.0)
    return base, dap
