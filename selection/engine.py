"""The selection itself: from a checked recipe and its eligible items to the picked ids, in
pick order, with each strategy's contribution (docs/selection.md, "How strategies
combine").

1. Score strategies each give a value per item; each is normalised to [0, 1] (by rank, or
   min-max for metadata weights and random) and the weighted mean is the item's score S.
2. Without a greedy strategy the budget's best items by S are the selection (ties broken
   by a seeded hash of the item id, so the same seed picks the same items).
3. With diversity and/or balance (weights summing to Wg, the score strategies' to Ws), the
   candidates are the best C items by S, C = budget + (eligible - budget) x Wg / (Wg + Ws):
   all of them when only greedy strategies weigh, the budget's best when they weigh
   nothing. Balance splits the budget among classes as evenly as they allow (water
   filling); diversity picks within each class's candidates by k-center greedy
   (selection.kcenter) from its best-scored one; without diversity a class takes its best.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embeddings.models import EmbeddingModel
from selection import selectors
from selection.kcenter import kcenter_greedy, reduce_apply, reduce_fit
from selection.recipe import Eligible, Recipe, Spec
from selection.strategies import Balance, Pool, hash_uniform

PCA_SAMPLE = 20_000  # vectors the reduction is fitted on
NO_LABEL = "(no label)"
SHOWN_CLASSES = 50


@dataclass
class Outcome:
    ids: np.ndarray  # picked item ids, in pick order
    figures: dict[str, Any] = field(default_factory=dict)


def rank01(values: np.ndarray) -> np.ndarray:
    """Average rank scaled to [0, 1] (highest value 1); items without a value (NaN) 0."""
    out = np.zeros(len(values))
    have = ~np.isnan(values)
    v = values[have]
    if len(v) == 0:
        return out
    if len(v) == 1:
        out[have] = 1.0
        return out
    _, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    average = ends - (counts - 1) / 2.0 - 1.0  # 0-based average rank of each distinct value
    out[have] = average[inverse] / (len(v) - 1)
    return out


def minmax01(values: np.ndarray) -> np.ndarray:
    out = np.zeros(len(values))
    have = ~np.isnan(values)
    if not have.any():
        return out
    low, high = float(values[have].min()), float(values[have].max())
    if high > low:
        out[have] = (values[have] - low) / (high - low)
    return out


def water_fill(sizes: dict[str, int], budget: int) -> dict[str, int]:
    """Split `budget` among classes as evenly as their sizes allow; the last units go to
    classes in name order (deterministic)."""
    quota = dict.fromkeys(sizes, 0)
    left = min(budget, sum(sizes.values()))
    while left > 0:
        open_ = [c for c in sorted(sizes) if quota[c] < sizes[c]]
        share = max(1, left // len(open_))
        for c in open_:
            give = min(share, sizes[c] - quota[c], left)
            quota[c] += give
            left -= give
            if left == 0:
                break
    return quota


def item_classes(labels: list[list[str]]) -> list[str]:
    """Each item's class for balancing: its rarest label among these items (ties by name)."""
    counts: dict[str, int] = {}
    for labs in labels:
        for label in labs:
            counts[label] = counts.get(label, 0) + 1
    return [min(labs, key=lambda x: (counts[x], x)) if labs else NO_LABEL for labs in labels]


def reduced_vectors(
    model: EmbeddingModel, recipe: Recipe, ids: np.ndarray, dims: int
) -> tuple[np.ndarray, int]:
    """These items' vectors (ids sorted), reduced to `dims` by PCA of a seeded sample, read
    in chunks: only the reduced copy of all of them is ever held (N x dims float32)."""
    dataset = recipe.pool.dataset
    mean: np.ndarray | None = None
    axes: np.ndarray | None = None
    if model.dimension > dims:
        rng = np.random.default_rng(recipe.seed)
        sample = ids if len(ids) <= PCA_SAMPLE else np.sort(rng.choice(ids, PCA_SAMPLE, False))
        fitted = np.concatenate(
            [v for _, v in selectors.vectors_of(model=model, dataset=dataset, ids=sample)]
        )
        mean, axes = reduce_fit(fitted, dims)
    width = int(axes.shape[0]) if axes is not None else int(model.dimension)
    out = np.zeros((len(ids), width), dtype=np.float32)
    for got_ids, got in selectors.vectors_of(model=model, dataset=dataset, ids=ids):
        rows = np.searchsorted(ids, got_ids)
        out[rows] = reduce_apply(got, mean, axes) if axes is not None and mean is not None else got
    return out, width


def _interleave(groups: list[np.ndarray]) -> np.ndarray:
    """Round-robin over the groups' pick orders, so the first items show every class."""
    out: list[int] = []
    longest = max((len(g) for g in groups), default=0)
    for i in range(longest):
        out.extend(int(g[i]) for g in groups if i < len(g))
    return np.asarray(out, dtype=np.int64)


def select(
    *, recipe: Recipe, eligible: Eligible, tick: Callable[[str], None] | None = None
) -> Outcome:
    """Pick `recipe.budget` of the eligible items (positions into eligible.ids, then ids)."""
    started = time.perf_counter()
    timings: dict[str, float] = {}
    ids = eligible.ids
    n = len(ids)
    budget = min(recipe.budget, n)
    pool = Pool(dataset=recipe.pool.dataset, ids=ids, seed=recipe.seed)
    contributions: dict[str, dict[str, Any]] = {}
    score = np.zeros(n)
    normalised: dict[str, np.ndarray] = {}
    score_weight = 0.0
    for spec in recipe.of_kind("score"):
        t = time.perf_counter()
        raw = np.asarray(spec.strategy.values(pool, spec.options), dtype=np.float64)
        norm = rank01(raw) if spec.strategy.normalise == "rank" else minmax01(raw)
        normalised[spec.name] = norm
        score += spec.weight * norm
        score_weight += spec.weight
        timings[spec.name] = round(time.perf_counter() - t, 3)
        if tick is not None:
            tick(spec.name)
    if score_weight:
        score /= score_weight
    tie = hash_uniform(ids, recipe.seed)
    order = np.lexsort((tie, -score))  # best first
    greedy = recipe.of_kind("greedy")
    greedy_weight = sum(s.weight for s in greedy)
    if not greedy:
        picks = order[:budget]
    else:
        total = greedy_weight + score_weight
        c = n if not score_weight else budget + round((n - budget) * greedy_weight / total)
        picks = _greedy(recipe, ids, order[:c], budget, contributions, timings, tick)
        contributions.setdefault("candidates", {"count": c})
    for spec in recipe.of_kind("score"):
        contributions[spec.name] = {
            "kind": "score",
            "weight": spec.weight,
            "selected_mean": round(float(normalised[spec.name][picks].mean()), 4),
            "pool_mean": round(float(normalised[spec.name].mean()), 4),
        }
    for spec in recipe.filters():
        key = f"excluded by {spec.options.get('slice') or spec.options.get('tag')}"
        contributions[spec.name] = {"kind": "filter", "excluded": eligible.dropped.get(key, 0)}
    timings["total"] = round(time.perf_counter() - started, 3)
    figures = {
        "pool": eligible.pool_size,
        "eligible": n,
        "dropped": eligible.dropped,
        "budget": recipe.budget,
        "strategies": contributions,
        "seconds": timings,
    }
    return Outcome(ids=ids[picks], figures=figures)


def _greedy(
    recipe: Recipe,
    ids: np.ndarray,
    candidates: np.ndarray,
    budget: int,
    contributions: dict[str, dict[str, Any]],
    timings: dict[str, float],
    tick: Callable[[str], None] | None,
) -> np.ndarray:
    """Balance's quotas over the candidates, then diversity (or the best) within each."""
    balance: Spec | None = recipe.spec("balance")
    diversity: Spec | None = recipe.spec("diversity")
    if balance is not None:
        t = time.perf_counter()
        in_order = np.sort(candidates)  # positions into ids (sorted), so ids sorted too
        pool = Pool(dataset=recipe.pool.dataset, ids=ids[in_order], seed=recipe.seed)
        strategy = balance.strategy
        assert isinstance(strategy, Balance)
        sorted_classes = np.asarray(item_classes(strategy.labels(pool, balance.options)))
        classes = sorted_classes[np.searchsorted(in_order, candidates)]
        names = sorted(set(classes.tolist()))
        sizes = {c: int((classes == c).sum()) for c in names}
        quotas = water_fill(sizes, budget)
        groups = [(c, candidates[classes == c]) for c in names]
        timings["balance"] = round(time.perf_counter() - t, 3)
    else:
        groups = [("", candidates)]
        quotas = {"": budget}
    reduced: np.ndarray | None = None
    position: np.ndarray | None = None
    if diversity is not None:
        t = time.perf_counter()
        model = EmbeddingModel.objects.get(pk=diversity.options["model_id"])
        sorted_positions = np.sort(candidates)  # positions into ids, ids sorted: ids too
        reduced, _ = reduced_vectors(
            model, recipe, ids[sorted_positions], int(diversity.options["dims"])
        )
        position = sorted_positions
        timings["vectors"] = round(time.perf_counter() - t, 3)
        if tick is not None:
            tick("vectors")
    picked_groups: list[np.ndarray] = []
    radius = 0.0
    t = time.perf_counter()
    for name, members in groups:
        quota = quotas[name]
        if quota == 0:
            continue
        if reduced is None or position is None:
            picked_groups.append(members[:quota])
            continue
        rounds = (lambda _done: tick("diversity")) if tick is not None else None
        rows = np.searchsorted(position, members)  # members' rows of `reduced`, best first
        if len(groups) == 1:
            # Every candidate: the reduced copy as it is (no second N x dims copy), from
            # the best-scored one.
            chosen, r = kcenter_greedy(reduced, quota, int(rows[0]), on_round=rounds)
            picked_groups.append(position[chosen])
        else:
            chosen, r = kcenter_greedy(reduced[rows], quota, 0, on_round=rounds)
            picked_groups.append(members[chosen])
        radius = max(radius, r)
    if diversity is not None:
        timings["diversity"] = round(time.perf_counter() - t, 3)
        contributions["diversity"] = {
            "kind": "greedy",
            "weight": diversity.weight,
            "dims": int(reduced.shape[1]) if reduced is not None else 0,
            "candidates": len(candidates),
            "radius": round(radius, 4),
        }
    if balance is not None:
        picked_per = {name: int(min(quotas[name], len(m))) for name, m in groups}
        shown = sorted(groups, key=lambda g: -len(g[1]))[:SHOWN_CLASSES]
        contributions["balance"] = {
            "kind": "greedy",
            "weight": balance.weight,
            "classes": {
                name: {"selected": picked_per[name], "available": len(m)} for name, m in shown
            },
        }
    return _interleave(picked_groups)
