"""Diversity by k-center greedy (farthest-point), without O(N^2) memory.

Greedy k-center (Gonzalez 1985) picks, again and again, the item farthest from every item
picked so far; its coverage radius is within twice the optimum. The textbook loop keeps
one running min-distance per item (N floats) and does one N x d pass per pick: at 1M items
x 10,000 picks that is 10,000 passes over the vectors, each memory-bound.

Here the picks come in rounds, and each round is still *exactly* the greedy's sequence:

1. take the m items with the largest running min-distance (the candidates) and T, the
   largest min-distance among the others;
2. run the greedy among the candidates alone (their m x m distances), stopping as soon as
   the best candidate's value would not beat T: until then no other item could have been
   the greedy's choice, since an item's value only shrinks as picks are added;
3. update the N running min-distances against the round's picks in one matrix product
   (chunked rows, a BLAS GEMM instead of one pass per pick).

So the answer is the exact greedy's (up to ties), and the cost is N x d x k multiply-adds
in GEMMs plus one argpartition per round. Vectors are reduced first (PCA of a seeded
sample, `reduce_fit`): the greedy runs on squared Euclidean distances of the reduced
vectors. Pure NumPy, no database: selection.engine feeds it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

ROW_CHUNK = 32_768  # rows per GEMM block: 32,768 x 256 floats = 32 MB
DEFAULT_ROUND = 256  # picks a round aims for
CENTRE_CHUNK = 1024  # centres per GEMM block


def reduce_fit(sample: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean and the top `dims` principal axes (dims x d) of a sample, signs fixed."""
    x = np.asarray(sample, dtype=np.float64)
    mean = x.mean(axis=0)
    centred = x - mean
    cov = centred.T @ centred / max(1, len(x) - 1)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1][: min(dims, x.shape[1])]
    axes = vectors[:, order].T
    # eigh's signs are arbitrary; fix them (largest |component| positive) for determinism.
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    axes = axes * np.where(signs == 0, 1.0, signs)[:, None]
    return mean.astype(np.float32), axes.astype(np.float32)


def reduce_apply(vectors: np.ndarray, mean: np.ndarray, axes: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray((np.asarray(vectors, np.float32) - mean) @ axes.T, np.float32)


def _sq_norms(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.einsum("ij,ij->i", x, x)
    return out


def min_sq_distances_update(
    x: np.ndarray, norms: np.ndarray, mind: np.ndarray, centres: np.ndarray
) -> None:
    """mind[i] = min(mind[i], min_c |x_i - c|^2), in blocks of rows and of centres (one
    GEMM each; a block is at most ROW_CHUNK x CENTRE_CHUNK floats, 128 MB)."""
    for first in range(0, len(centres), CENTRE_CHUNK):
        part = centres[first : first + CENTRE_CHUNK]
        c_norms = _sq_norms(part)
        ct = np.ascontiguousarray(part.T)
        for start in range(0, len(x), ROW_CHUNK):
            stop = min(len(x), start + ROW_CHUNK)
            block = x[start:stop] @ ct
            block *= -2.0
            block += c_norms
            best = block.min(axis=1) + norms[start:stop]
            np.minimum(mind[start:stop], best, out=mind[start:stop])
    np.maximum(mind, 0.0, out=mind)  # rounding can make |a - a|^2 a hair negative


class _Groups:
    """A coarse partition of the rows (each to the nearest of G sampled rows), sorted so
    each group is a contiguous slice, with each group's radius: a new pick can lower a
    row's min-distance only if it lies closer than that, so by the triangle inequality a
    group whose centre is farther from the pick than its radius plus its largest
    min-distance is skipped whole. Late in the greedy, each pick touches a few groups."""

    def __init__(self, x: np.ndarray, count: int) -> None:
        n = len(x)
        centres = x[np.linspace(0, n - 1, count).astype(np.int64)].copy()
        if count > 1:
            # A few Lloyd rounds on a strided sample, so groups follow the data's clusters
            # (tight groups prune; a group straddling two clusters never does).
            sample = x[np.linspace(0, n - 1, min(n, 20 * count)).astype(np.int64)]
            for _ in range(4):
                near = (_sq_norms(centres)[None, :] - 2.0 * (sample @ centres.T)).argmin(axis=1)
                sums = np.zeros_like(centres)
                np.add.at(sums, near, sample)
                counts = np.bincount(near, minlength=count)
                filled = counts > 0
                centres[filled] = sums[filled] / counts[filled, None]
        c_norms = _sq_norms(centres)
        ct = np.ascontiguousarray(centres.T)
        assign = np.empty(n, dtype=np.int64)
        sq = np.empty(n, dtype=np.float32)
        norms = _sq_norms(x)
        for start in range(0, n, ROW_CHUNK):
            block = x[start : start + ROW_CHUNK] @ ct
            block *= -2.0
            block += c_norms
            assign[start : start + ROW_CHUNK] = block.argmin(axis=1)
            sq[start : start + ROW_CHUNK] = block.min(axis=1) + norms[start : start + ROW_CHUNK]
        self.order = np.argsort(assign, kind="stable")
        assign = assign[self.order]
        self.starts = np.searchsorted(assign, np.arange(count + 1))
        dist = np.sqrt(np.maximum(sq[self.order], 0.0))
        self.radius = np.zeros(count, dtype=np.float64)
        for g in range(count):
            a, b = self.starts[g], self.starts[g + 1]
            if b > a:
                self.radius[g] = float(dist[a:b].max())
        self.centres = centres
        self.count = count


def kcenter_greedy(
    x: np.ndarray,
    k: int,
    first: int,
    *,
    round_size: int = DEFAULT_ROUND,
    on_round: Callable[[int], None] | None = None,
    groups: int | None = None,
) -> tuple[np.ndarray, float]:
    """The exact greedy k-center's picks over rows of `x` (indices, in pick order) starting
    from row `first`, and the coverage radius (Euclidean, in x's space) they leave.

    `groups`: rows are partitioned into this many groups for pruning (default about
    sqrt(n) / 2; 1 turns it off). `on_round(picked)` is called after each round (a job
    checks for cancellation there).
    """
    n = len(x)
    k = min(k, n)
    if groups is None:
        groups = 1 if n < 20_000 else min(2048, int(np.sqrt(n) / 2))
    part = _Groups(np.ascontiguousarray(x, dtype=np.float32), max(1, min(groups, n)))
    order = part.order
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32)[order])
    where = np.empty(n, dtype=np.int64)
    where[order] = np.arange(n)
    norms = _sq_norms(x)
    mind = np.full(n, np.inf, dtype=np.float32)
    gmax = np.full(part.count, np.inf)
    picks = [int(where[first])]

    def update(picked: np.ndarray) -> None:
        centres = x[picked]
        d2 = (
            _sq_norms(part.centres)[:, None]
            + _sq_norms(centres)[None, :]
            - 2.0 * (part.centres @ centres.T)
        )
        gap = np.sqrt(np.maximum(d2, 0.0)) - part.radius[:, None]
        # Slack for float rounding: a group is skipped only when clearly out of reach.
        need = gap < np.sqrt(gmax)[:, None] + 1e-3
        for g in np.flatnonzero(need.any(axis=1)):
            a, b = int(part.starts[g]), int(part.starts[g + 1])
            if b > a:
                min_sq_distances_update(x[a:b], norms[a:b], mind[a:b], centres[need[g]])
                gmax[g] = float(mind[a:b].max())

    update(np.asarray(picks))
    mind[picks[0]] = 0.0
    factor = 4
    while len(picks) < k:
        want = min(round_size, k - len(picks))
        m = min(n, factor * want)
        if m < n:
            top = np.argpartition(-mind, m)
            cand, threshold = top[:m], float(mind[top[m]])
        else:
            cand, threshold = np.arange(n), -np.inf
        # Candidates in a fixed order (value desc, then index) so ties break the same way.
        cand = cand[np.lexsort((order[cand], -mind[cand]))]
        values = mind[cand].astype(np.float64)
        cx = x[cand]
        cn = norms[cand]
        chosen: list[int] = []
        # Candidates whose value fell below T can no longer be chosen this round; once
        # they are half the working set, it is compacted (a gather), so crowded rounds
        # get cheap steps and spread-out ones pay no gather per step.
        wi, wx, wn, wv = np.arange(len(cand)), cx, cn, values
        while len(chosen) < want and len(wv):
            jl = int(wv.argmax())
            if wv[jl] < threshold or wv[jl] <= 0.0:
                break
            chosen.append(int(wi[jl]))
            d = wn + wn[jl] - 2.0 * (wx @ wx[jl])
            np.minimum(wv, np.maximum(d, 0.0), out=wv)
            wv[jl] = -1.0
            live = wv >= threshold
            if 2 * int(live.sum()) < len(wv):
                wi, wx, wn, wv = wi[live], wx[live], wn[live], wv[live]
        if not chosen:
            # Every remaining item sits on a picked one (distance 0): take the rest in
            # index order, as the greedy's argmax would.
            rest = np.setdiff1d(np.arange(n), order[np.asarray(picks)])
            picks.extend(int(where[i]) for i in rest[: k - len(picks)])
            break
        picked = cand[chosen]
        picks.extend(int(i) for i in picked)
        update(picked)
        mind[picked] = 0.0  # exactly: rounding must not make a pick a candidate again
        # Few picks per round: the candidates crowd together; look further next time.
        factor = min(64, factor * 2) if len(chosen) < want // 2 else factor
        if on_round is not None:
            on_round(len(picks))
    radius = float(np.sqrt(mind.max())) if n else 0.0
    return order[np.asarray(picks[:k], dtype=np.int64)], radius


def kcenter_naive(x: np.ndarray, k: int, first: int) -> np.ndarray:
    """The textbook greedy (one pass per pick): the reference the tests and the bench
    compare against, on sizes where it can run."""
    x = np.asarray(x, dtype=np.float64)
    mind = np.full(len(x), np.inf)
    picks = [int(first)]
    for _ in range(min(k, len(x)) - 1):
        mind = np.minimum(mind, ((x - x[picks[-1]]) ** 2).sum(axis=1))
        picks.append(int(mind.argmax()))
    return np.asarray(picks, dtype=np.int64)


def coverage_radius(x: np.ndarray, picked: np.ndarray, metric: str = "euclidean") -> float:
    """Max over rows of x of the distance to the nearest picked row (cosine distance for
    `metric="cosine"` on unit rows), in row chunks."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    centres = x[np.asarray(picked)]
    if metric == "cosine":
        worst = -1.0
        ct = np.ascontiguousarray(centres.T)
        for start in range(0, len(x), ROW_CHUNK):
            sims = x[start : start + ROW_CHUNK] @ ct
            worst = max(worst, float(1.0 - sims.max(axis=1).min()))
        return worst
    mind = np.full(len(x), np.inf, dtype=np.float32)
    min_sq_distances_update(x, _sq_norms(x), mind, centres)
    return float(np.sqrt(mind.max()))
