"""COCO's per-image matching (COCOeval.evaluateImg) and accumulation
(COCOeval.accumulate), ported to NumPy for boxes.

Why a port: COCOeval keeps a Python dict per (image, class, area range) and matches one
detection against one ground truth at a time; a million images do not fit in its memory
or its time. Here the matching runs on padded arrays of many (image, class) groups at
once, for the four area ranges and every IoU threshold together, and only what the
accumulation needs is kept per detection (score, rank in its group, TP and ignore flags
per area and threshold). Every rule is pycocotools' own, each noted where it is applied;
tests/test_evaluation.py compares the results with pycocotools on seeded random data.

This module knows nothing of labels or of the database: categories are integer codes,
images are item ids (COCOeval orders them by id, and so does this module).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# pycocotools' Params.recThrs.
REC_THRS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
# Elements of the largest padded array (groups x areas x thresholds x ground truths) a
# batch may allocate: bounds the matching's memory whatever the data.
BATCH_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class Params:
    iou_thrs: np.ndarray  # (T,)
    max_dets: tuple[int, ...]  # increasing; the last one cuts each group
    area_ranges: tuple[tuple[float, float], ...]  # (A,) [low, high]
    use_cats: bool
    operating: int = 0  # the index in iou_thrs whose matches are kept (area "all")


@dataclass
class Boxes:
    """Columnar boxes of a set of whole images, in the order COCO would index them (the
    caller's insertion order)."""

    image: np.ndarray  # int64 item id
    cat: np.ndarray  # int64 category code
    box: np.ndarray  # (n, 4) float64 x, y, width, height
    crowd: np.ndarray | None = None  # ground truth: bool
    score: np.ndarray | None = None  # detections: float64
    # The areas the area ranges test; None: the boxes' (width x height). Masks give
    # theirs (evaluation.segmentation).
    area: np.ndarray | None = None


# IoUs of a batch of groups other than boxes' (masks: evaluation.segmentation):
# (detection indices (B, D), ground-truth indices (B, G), crowd (B, G)) -> (B, D, G),
# indices into the detections and ground truths given, -1 for padding (any value there).
IouOf = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass
class Matched:
    """What matching a set of images gives. Detections are those within the largest
    maxDets of their group, in COCO's order (image, class, score descending)."""

    dt_index: np.ndarray  # (n,) index into the detections given
    rank: np.ndarray  # (n,) position in its (image, class) group
    tp: np.ndarray  # (n, A, T) bool: matched a ground truth that counts
    ignored: np.ndarray  # (n, A, T) bool: COCO's dtIgnore
    matched_gt: np.ndarray  # (n,) at the operating IoU, area "all": index into the
    # ground truths given, or -1
    iou: np.ndarray  # (n,) float64 IoU with matched_gt (0 where none)
    gt_counts: np.ndarray  # (g, A) bool: ground truth that is not ignored, per area


def _iou(d: np.ndarray, g: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """pycocotools' bbIou (maskApi.c) on padded batches: d (B, D, 4), g (B, G, 4),
    crowd (B, G) -> (B, D, G), the same float64 operations in the same order."""
    dx, dy, dw, dh = (d[:, :, None, k] for k in range(4))
    gx, gy, gw, gh = (g[:, None, :, k] for k in range(4))
    w = np.minimum(dw + dx, gw + gx) - np.maximum(dx, gx)
    h = np.minimum(dh + dy, gh + gy) - np.maximum(dy, gy)
    inter = w * h
    da = dw * dh
    union = np.where(crowd[:, None, :], da, da + gw * gh - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = inter / union
    return np.where((w > 0) & (h > 0), out, 0.0)


def _groups(
    image: np.ndarray,
    cat: np.ndarray,
    catrank: np.ndarray,
    order_key: np.ndarray,
    use_cats: bool,
    score: np.ndarray | None,
) -> np.ndarray:
    """The order COCOeval sees a side in: by image, then class (class-agnostic: the
    classes' order within the image), then score descending (a stable sort), then
    insertion order."""
    keys: list[np.ndarray] = [order_key]
    if not use_cats:
        keys.append(catrank[cat])
    if score is not None:
        keys.append(-score)
    if use_cats:
        keys.append(cat)
    keys.append(image)
    return np.lexsort(keys)


def match(
    gt: Boxes, dt: Boxes, catrank: np.ndarray, p: Params, iou_of: IouOf | None = None
) -> Matched:
    """COCOeval.evaluateImg for every (image, class) group of these images and every
    area range, at every IoU threshold; with `iou_of`, IoUs are its (masks), not bbIou."""
    assert gt.crowd is not None and dt.score is not None
    n_t, n_a = len(p.iou_thrs), len(p.area_ranges)
    # Detections: COCO's order, cut at the largest maxDets per group.
    d_order = _groups(dt.image, dt.cat, catrank, np.arange(len(dt.image)), p.use_cats, dt.score)
    d_img = dt.image[d_order]
    d_cat = dt.cat[d_order] if p.use_cats else np.zeros(len(d_order), np.int64)
    first = np.ones(len(d_order), bool)
    first[1:] = (d_img[1:] != d_img[:-1]) | (d_cat[1:] != d_cat[:-1])
    starts = np.flatnonzero(first)
    rank = np.arange(len(d_order)) - np.repeat(starts, np.diff(np.append(starts, len(d_order))))
    keep = rank < p.max_dets[-1]
    d_order, d_img, d_cat, rank = d_order[keep], d_img[keep], d_cat[keep], rank[keep]
    g_order = _groups(gt.image, gt.cat, catrank, np.arange(len(gt.image)), p.use_cats, None)
    g_img = gt.image[g_order]
    g_cat = gt.cat[g_order] if p.use_cats else np.zeros(len(g_order), np.int64)

    # The (image, class) groups of either side, and each group's run of each side.
    d_key = np.stack([d_img, d_cat], 1)
    g_key = np.stack([g_img, g_cat], 1)
    keys, inverse = np.unique(np.concatenate([d_key, g_key]), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    n_groups = len(keys)
    d_group, g_group = inverse[: len(d_key)], inverse[len(d_key) :]
    nd = np.bincount(d_group, minlength=n_groups)
    ng = np.bincount(g_group, minlength=n_groups)
    d_start = np.concatenate([[0], np.cumsum(nd)[:-1]])
    g_start = np.concatenate([[0], np.cumsum(ng)[:-1]])

    # Sorted ground truth with a padding row (index len), so gathers never go out of range.
    g_box = np.concatenate([gt.box[g_order], np.zeros((1, 4))])
    g_crowd = np.concatenate([gt.crowd[g_order], [False]])
    g_area = g_box[:, 2] * g_box[:, 3] if gt.area is None else np.append(gt.area[g_order], 0.0)
    lows = np.array([a[0] for a in p.area_ranges])
    highs = np.array([a[1] for a in p.area_ranges])
    # COCO's gt _ignore: iscrowd (pycocotools sets ignore = iscrowd for boxes) or outside
    # the area range.
    g_ignore = g_crowd[:, None] | (g_area[:, None] < lows) | (g_area[:, None] > highs)
    d_box = np.concatenate([dt.box[d_order], np.zeros((1, 4))])
    d_area = d_box[:, 2] * d_box[:, 3] if dt.area is None else np.append(dt.area[d_order], 0.0)
    # Positions in the sorted sides back to the given order (-1: the padding row).
    g_given, d_given = np.append(g_order, -1), np.append(d_order, -1)
    d_out = (d_area[:, None] < lows) | (d_area[:, None] > highs)  # (n + 1, A)
    thr = np.minimum(p.iou_thrs, 1 - 1e-10)

    n = len(d_order)
    tp = np.zeros((n, n_a, n_t), bool)
    ignored = np.zeros((n, n_a, n_t), bool)
    matched = np.full(n, -1, np.int64)
    ious_out = np.zeros(n)

    by_size = np.lexsort((ng, nd))
    i = 0
    while i < n_groups:
        # Groups sorted by detections then ground truths: grow the batch while it fits.
        end = i + 1
        step = 1
        while end < n_groups:
            nxt = min(n_groups, end + step)
            cost = (nxt - i) * max(1, nd[by_size[nxt - 1]]) * max(1, ng[by_size[i:nxt]].max())
            if cost * n_a * n_t > BATCH_ELEMENTS:
                break
            end, step = nxt, step * 2
        batch = by_size[i:end]
        i = end
        n_d, n_g = int(nd[batch].max()), int(ng[batch].max())
        if n_d == 0:
            continue  # ground truth only: nothing to match
        d_pos = d_start[batch, None] + np.arange(n_d)
        d_valid = np.arange(n_d) < nd[batch, None]
        d_pos = np.where(d_valid, d_pos, n)
        g_pos = g_start[batch, None] + np.arange(max(n_g, 1))
        g_valid = np.arange(max(n_g, 1)) < ng[batch, None]
        g_pos = np.where(g_valid, g_pos, len(g_box) - 1)
        if iou_of is None:
            ious = _iou(d_box[d_pos], g_box[g_pos], g_crowd[g_pos])  # (B, D, G)
        else:
            ious = iou_of(d_given[d_pos], g_given[g_pos], g_crowd[g_pos])
        crowd = g_crowd[g_pos][:, None, None, :]
        g_ig = g_ignore[g_pos].transpose(0, 2, 1)[:, :, None, :]  # (B, A, 1, G)
        usable = g_valid[:, None, None, :]
        taken = np.zeros((len(batch), n_a, n_t, ious.shape[2]), bool)
        b_matched = np.full((len(batch), n_a, n_t, n_d), -1, np.int64)
        b_ignored = np.zeros((len(batch), n_a, n_t, n_d), bool)
        sizes = nd[batch]  # increasing: the groups with a d-th detection are a suffix
        for d in range(n_d):
            lo = int(np.searchsorted(sizes, d, side="right"))
            m_iou = ious[lo:, d, None, None, :]  # (B', 1, 1, G)
            g_ig_d = g_ig[lo:]
            # Candidates: a ground truth not taken at this threshold (a crowd region can be
            # taken again), with IoU >= the threshold (ties keep the later one: COCO skips
            # only IoU < best).
            ok = usable[lo:] & (~taken[lo:] | crowd[lo:]) & (m_iou >= thr[None, None, :, None])
            # COCO sorts ignored ground truth last and stops at the first ignored one once
            # it holds a match that is not ignored: an ignored ground truth is matched only
            # when no other one qualifies.
            counted = ok & ~g_ig_d
            pool = np.where(counted.any(-1, keepdims=True), counted, ok & g_ig_d)
            found = pool.any(-1)
            values = np.where(pool, m_iou, -1.0)
            best = values.shape[-1] - 1 - np.argmax(values[..., ::-1], axis=-1)  # last max
            b_matched[lo:, :, :, d] = np.where(found, best, -1)
            pick = best[..., None]
            b_ignored[lo:, :, :, d] = (
                found & np.take_along_axis(np.broadcast_to(g_ig_d, values.shape), pick, -1)[..., 0]
            )
            np.put_along_axis(
                taken[lo:], pick, np.take_along_axis(taken[lo:], pick, -1) | found[..., None], -1
            )
        # An unmatched detection outside the area range is ignored too.
        out = d_out[d_pos].transpose(0, 2, 1)[:, :, None, :]  # (B, A, 1, D)
        b_ignored |= (b_matched < 0) & out
        rows = d_pos[d_valid]
        at = d_valid  # (B, D): the padded array's real detections, in d_pos order
        ignored[rows] = np.moveaxis(b_ignored, 3, 1)[at]
        tp[rows] = np.moveaxis((b_matched >= 0) & ~b_ignored, 3, 1)[at]
        chosen = b_matched[:, 0, p.operating, :]  # (B, D)
        column = np.maximum(chosen, 0)
        matched[rows] = np.where(chosen >= 0, np.take_along_axis(g_pos, column, 1), -1)[at]
        ious_out[rows] = np.where(
            chosen >= 0, np.take_along_axis(ious, column[..., None], 2)[..., 0], 0.0
        )[at]

    # Back to the ground truths' given order.
    hit = matched >= 0
    matched[hit] = g_order[matched[hit]]
    counts = np.zeros((len(gt.image), n_a), bool)
    counts[g_order] = ~g_ignore[:-1]
    return Matched(d_order, rank, tp, ignored, matched, ious_out, counts)


def pack(tp: np.ndarray, ignored: np.ndarray) -> np.ndarray:
    """(n, A, T) TP and ignore flags as (n, ceil(2 A T / 8)) bytes."""
    n, n_a, n_t = tp.shape
    return np.packbits(np.concatenate([tp, ignored], 1).reshape(n, 2 * n_a * n_t), axis=1)


def unpack(bits: np.ndarray, n_a: int, n_t: int) -> tuple[np.ndarray, np.ndarray]:
    flags = np.unpackbits(bits, axis=1, count=2 * n_a * n_t).reshape(-1, 2 * n_a, n_t)
    flags = flags.astype(bool)
    return flags[:, :n_a], flags[:, n_a:]


def flag(bits: np.ndarray, j: int) -> np.ndarray:
    """The j-th packed flag (area a, threshold t: a * T + t; ignore flags after TP flags)."""
    return (bits[:, j // 8] & (1 << (7 - j % 8))) > 0


def accumulate(
    score: np.ndarray,
    cat: np.ndarray,
    image: np.ndarray,
    rank: np.ndarray,
    bits: np.ndarray,
    positives: np.ndarray,
    p: Params,
) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval.accumulate: precision (T, R, K, A, M) and recall (T, K, A, M), -1 where
    undefined. `cat` holds indices 0..K-1 (every class has a box on some side); `bits`
    the TP and ignore flags (packed by `pack`); `positives` (K, A) the ground truths that
    count."""
    n_k = positives.shape[0]
    n_t, n_a, n_m, n_r = len(p.iou_thrs), len(p.area_ranges), len(p.max_dets), len(REC_THRS)
    precision = -np.ones((n_t, n_r, n_k, n_a, n_m))
    recall = -np.ones((n_t, n_k, n_a, n_m))
    # COCO concatenates the images' detections (by image id, each in rank order) and
    # sorts them by score with a stable sort: ties go by image, then rank.
    order = np.lexsort((rank, image, -score, cat))
    bounds = np.searchsorted(cat[order], np.arange(n_k + 1))
    for k in range(n_k):
        rows = order[bounds[k] : bounds[k + 1]]
        tp_k, ignored_k = unpack(bits[rows], n_a, n_t)  # one class at a time: bounded memory
        for m, max_det in enumerate(p.max_dets):
            within = rank[rows] < max_det
            nd = int(within.sum())
            for a in range(n_a):
                npig = int(positives[k, a])
                if npig == 0:
                    continue
                tps = tp_k[within, a, :].T
                fps = ~tps & ~ignored_k[within, a, :].T
                tp_sum = np.cumsum(tps, axis=1).astype(np.float64)
                fp_sum = np.cumsum(fps, axis=1).astype(np.float64)
                rc = tp_sum / npig
                pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
                recall[:, k, a, m] = rc[:, -1] if nd else 0
                # Precision made monotone (COCO's backward loop is a running maximum).
                pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
                q = np.zeros((n_t, n_r))
                for t in range(n_t):
                    inds = np.searchsorted(rc[t], REC_THRS, side="left")
                    hit = inds < nd
                    q[t, hit] = pr[t, inds[hit]]
                precision[:, :, k, a, m] = q
    return precision, recall


def summarize(
    precision: np.ndarray, recall: np.ndarray, p: Params, area_names: tuple[str, ...]
) -> list[float]:
    """COCOeval.summarize's 12 numbers (with its quirk: the first uses maxDets=100, not
    the last of max_dets)."""

    def one(ap: bool, iou: float | None = None, area: str = "all", max_det: int = 100) -> float:
        a = [i for i, name in enumerate(area_names) if name == area]
        m = [i for i, d in enumerate(p.max_dets) if d == max_det]
        s = precision if ap else recall
        if iou is not None:
            s = s[np.where(iou == p.iou_thrs)[0]]
        s = s[:, :, :, a, m] if ap else s[:, :, a, m]
        defined = s[s > -1]
        return float(np.mean(defined)) if defined.size else -1.0

    big = p.max_dets[2]
    return [
        one(True),
        one(True, 0.5, max_det=big),
        one(True, 0.75, max_det=big),
        one(True, area="small", max_det=big),
        one(True, area="medium", max_det=big),
        one(True, area="large", max_det=big),
        one(False, max_det=p.max_dets[0]),
        one(False, max_det=p.max_dets[1]),
        one(False, max_det=big),
        one(False, area="small", max_det=big),
        one(False, area="medium", max_det=big),
        one(False, area="large", max_det=big),
    ]
