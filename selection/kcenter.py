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
    """mind[i] = min(mind[i], min_c |x_i - c|^2), in row chunks (one GEMM each)."""
    c_norms = _sq_norms(centres)
    ct = np.ascontiguousarray(centres.T)
    for start in range(0, len(x), ROW_CHUNK):
        stop = min(len(x), start + ROW_CHUNK)
        block = x[start:stop] @ ct
        block *= -2.0
        block += c_norms
        np.minimum(mind[start:stop], block.min(axis=1) + norms[start:stop], out=mind[start:stop])
    np.maximum(mind, 0.0, out=mind)  # rounding can make |a - a|^2 a hair negative


def kcenter_greedy(
    x: np.ndarray,
    k: int,
    first: int,
    *,
    round_size: int = DEFAULT_ROUND,
    on_round: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, float]:
    """The exact greedy k-center's picks over rows of `x` (indices, in pick order) starting
    from row `first`, and the coverage radius (Euclidean, in x's space) they leave.

    `on_round(picked)` is called after each round (a job checks for cancellation there).
    """
    n = len(x)
    k = min(k, n)
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = _sq_norms(x)
    mind = np.full(n, np.inf, dtype=np.float32)
    picks = [int(first)]
    min_sq_distances_update(x, norms, mind, x[[first]])
    factor = 4
    while len(picks) < k:
        want = min(round_size, k - len(picks))
        m = min(n, factor * want)
        if m < n:
            part = np.argpartition(-mind, m)
            cand, threshold = part[:m], float(mind[part[m]])
        else:
            cand, threshold = np.arange(n), -np.inf
        # Candidates in a fixed order (value desc, then index) so ties break the same way.
        cand = cand[np.lexsort((cand, -mind[cand]))]
        values = mind[cand].astype(np.float64)
        cx = x[cand]
        cn = norms[cand]
        chosen: list[int] = []
        while len(chosen) < want:
            j = int(values.argmax())
            if values[j] < threshold or values[j] <= 0.0:
                break
            chosen.append(j)
            d = cn + cn[j] - 2.0 * (cx @ cx[j])
            np.minimum(values, np.maximum(d, 0.0), out=values)
            values[j] = -1.0
        if not chosen:
            # Every remaining item sits on a picked one (distance 0): take the rest in
            # index order, as the greedy's argmax would.
            rest = np.setdiff1d(np.arange(n), np.asarray(picks), assume_unique=False)
            picks.extend(int(i) for i in rest[: k - len(picks)])
            break
        picked = cand[chosen]
        picks.extend(int(i) for i in picked)
        min_sq_distances_update(x, norms, mind, x[picked])
        # Few picks per round: the candidates crowd together; look further next time.
        factor = min(64, factor * 2) if len(chosen) < want // 2 else factor
        if on_round is not None:
            on_round(len(picks))
    radius = float(np.sqrt(mind.max())) if n else 0.0
    return np.asarray(picks[:k], dtype=np.int64), radius


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
