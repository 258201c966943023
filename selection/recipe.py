"""A selection's recipe: the pool, the strategies and their weights, the budget, the seed.

`recipe_clean` turns API input into a Recipe, or a 400 naming the field (`budget`,
`weights.<name>`, `strategies[i].model`, ...) and what is missing; `recipe_check` then
checks the pool against what the strategies need (vectors, scores, labels) and the budget
against the eligible items. Both run before any job is queued, so a bad recipe is refused
at once, never a failed job or a slice smaller than asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from curation.errors import invalid_field
from curation.itemsets import ItemSet, item_set_resolve
from curation.models import Dataset
from embeddings.models import EmbeddingModel
from selection import selectors
from selection.strategies import REGISTRY, Strategy

MAX_BUDGET = 1_000_000
MAX_STRATEGIES = 8


@dataclass(frozen=True)
class Spec:
    """One strategy of a recipe, its options cleaned."""

    index: int
    name: str
    weight: float
    options: dict[str, Any]

    @property
    def strategy(self) -> Strategy:
        return REGISTRY[self.name]

    @property
    def path(self) -> str:
        return f"strategies[{self.index}]"


@dataclass(frozen=True)
class Recipe:
    name: str
    pool: ItemSet
    pool_input: dict[str, Any]
    specs: list[Spec]
    budget: int
    seed: int
    description: str = ""

    @property
    def weighted(self) -> list[Spec]:
        return [s for s in self.specs if s.strategy.kind != "filter" and s.weight > 0]

    def of_kind(self, kind: str) -> list[Spec]:
        return [s for s in self.weighted if s.strategy.kind == kind]

    def spec(self, name: str) -> Spec | None:
        return next((s for s in self.weighted if s.name == name), None)

    def filters(self) -> list[Spec]:
        return [s for s in self.specs if s.strategy.kind == "filter"]

    def as_json(self) -> dict[str, Any]:
        """The recipe as stored and shown (options without internal ids)."""
        return {
            "pool": self.pool_input,
            "strategies": [
                {"name": s.name, **{k: v for k, v in s.options.items() if not k.endswith("_id")}}
                for s in self.specs
            ],
            "weights": {s.name: s.weight for s in self.specs if s.strategy.kind != "filter"},
            "budget": self.budget,
            "seed": self.seed,
        }


def _int(raw: Any, path: str, low: int, high: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
        raise invalid_field(path, f"must be a whole number from {low} to {high}")
    return raw


def recipe_clean(*, dataset: Dataset, data: dict[str, Any]) -> Recipe:
    """A Recipe from API input (already shaped by the serializer); a 400 naming the field."""
    name = data.get("name") or ""
    if not isinstance(name, str) or not name.strip():
        raise invalid_field("name", "must name the new slice")
    pool_input = data.get("pool") or {}
    if not isinstance(pool_input, dict):
        raise invalid_field("pool", "must be an object: slice, version, query")
    pool = item_set_resolve(
        dataset=dataset,
        slice_id=pool_input.get("slice"),
        version=pool_input.get("version"),
        query=pool_input.get("query") or "",
        path="pool",
    )
    raw_strategies = data.get("strategies")
    if not isinstance(raw_strategies, list) or not raw_strategies:
        raise invalid_field("strategies", "give at least one strategy")
    if len(raw_strategies) > MAX_STRATEGIES:
        raise invalid_field("strategies", f"at most {MAX_STRATEGIES} strategies")
    weights = data.get("weights") or {}
    if not isinstance(weights, dict):
        raise invalid_field("weights", "must be an object of strategy name: weight")
    specs: list[Spec] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_strategies):
        path = f"strategies[{index}]"
        if not isinstance(raw, dict):
            raise invalid_field(path, "must be an object with a name")
        kind = raw.get("name")
        if kind not in REGISTRY:
            raise invalid_field(
                f"{path}.name", f"unknown strategy {kind!r}; one of {', '.join(REGISTRY)}"
            )
        if kind in seen:
            raise invalid_field(f"{path}.name", f"{kind!r} is given twice")
        seen.add(kind)
        strategy = REGISTRY[kind]
        unknown = sorted(set(raw) - {"name", *strategy.options})
        if unknown:
            raise invalid_field(f"{path}.{unknown[0]}", f"is not an option of {kind}")
        options = strategy.clean(dataset, raw, path)
        weight = weights.get(kind, 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
            raise invalid_field(f"weights.{kind}", "must be a number >= 0")
        if weight > 1e6:
            raise invalid_field(f"weights.{kind}", "must be at most 1000000")
        specs.append(Spec(index=index, name=kind, weight=float(weight), options=options))
    for key in weights:
        if key not in seen:
            raise invalid_field(f"weights.{key}", "names no strategy of this recipe")
    if not any(s.strategy.kind != "filter" and s.weight > 0 for s in specs):
        raise invalid_field(
            "weights",
            "every weight is 0 (or only filters are given): give a strategy a weight above 0",
        )
    budget = _int(data.get("budget"), "budget", 1, MAX_BUDGET)
    seed = _int(data.get("seed", 0), "seed", 0, 2**31 - 1)
    clean_pool = {k: pool_input.get(k) for k in ("slice", "version", "query") if pool_input.get(k)}
    return Recipe(
        name=name.strip(),
        pool=pool,
        pool_input=clean_pool,
        specs=specs,
        budget=budget,
        seed=seed,
        description=str(data.get("description") or ""),
    )


@dataclass
class Eligible:
    """The pool's items a recipe may pick from, and why the others are out."""

    pool_size: int
    ids: np.ndarray
    dropped: dict[str, int] = field(default_factory=dict)
    vector_models: list[EmbeddingModel] = field(default_factory=list)


def recipe_check(*, recipe: Recipe) -> Eligible:
    """The eligible items of the pool; a 400 when the pool lacks what a strategy needs or
    holds fewer eligible items than the budget."""
    dataset = recipe.pool.dataset
    ids = selectors.pool_ids(pool=recipe.pool)
    pool_size = len(ids)
    if recipe.budget > pool_size:
        raise invalid_field(
            "budget", f"is {recipe.budget}, but the pool has only {pool_size} items"
        )
    out = Eligible(pool_size=pool_size, ids=ids)
    for spec in recipe.specs:
        model = spec.strategy.vector_model(dataset, spec.options)
        if model is None or any(m.pk == model.pk for m in out.vector_models):
            continue
        have = selectors.embedded_mask(model=model, dataset=dataset, ids=out.ids)
        if not have.any():
            raise invalid_field(
                f"{spec.path}.model",
                f"no item of the pool has a vector of {model.name!r}: embed the dataset first",
            )
        out.dropped[f"no vector of {model.name}"] = int((~have).sum())
        out.ids = out.ids[have]
        out.vector_models.append(model)
    for spec in recipe.specs:
        spec.strategy.check(dataset, out.ids, spec.options, spec.path)
    for spec in recipe.filters():
        excluded = spec.strategy.excluded(dataset, spec.options)
        keep = ~np.isin(out.ids, excluded)
        out.dropped[f"excluded by {spec.options.get('slice') or spec.options.get('tag')}"] = int(
            (~keep).sum()
        )
        out.ids = out.ids[keep]
    if recipe.budget > len(out.ids):
        why = "; ".join(f"{n} {reason}" for reason, n in out.dropped.items() if n)
        raise invalid_field(
            "budget",
            f"is {recipe.budget}, but only {len(out.ids)} of the pool's {pool_size} items "
            f"can be picked ({why})",
        )
    return out


def recipe_describe(recipe: Recipe) -> str:
    """One paragraph for the slice's description: how it was made."""
    parts = []
    for spec in recipe.specs:
        shown = {k: v for k, v in spec.options.items() if not k.endswith("_id")}
        opts = ", ".join(f"{k}={v}" for k, v in shown.items())
        weight = "filter" if spec.strategy.kind == "filter" else f"weight {spec.weight:g}"
        parts.append(f"{spec.name} ({weight}{'; ' + opts if opts else ''})")
    pool = recipe.pool_input or {}
    where = ", ".join(f"{k} {v}" for k, v in pool.items()) or "the whole dataset"
    text = (
        f"Selected by {'; '.join(parts)} from {where}; budget {recipe.budget}, seed {recipe.seed}."
    )
    return (recipe.description + "\n\n" + text).strip() if recipe.description else text
