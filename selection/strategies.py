"""The selection strategies: each a small registered object that names what it needs,
cleans its options (a 400 naming `strategies[i].<option>` otherwise), checks that the pool
has what it needs, and, for a score strategy, gives every pool item a value.

Three kinds (docs/selection.md, "How strategies combine"):

- score: uncertainty, uniqueness, similarity, metadata, random. Each gives a value per
  item (higher = pick first); the engine normalises them to [0, 1] and adds them by weight.
- greedy: diversity (k-center greedy on the embeddings) and balance (equal counts per
  class). They decide *which* of the best-scored candidates are taken.
- filter: exclude (drop the items of a slice or tag and the items near them). No weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from curation.errors import CurationError, invalid_field
from curation.models import Dataset, Model, Slice, Tag
from embeddings.models import EmbeddingModel
from embeddings.selectors import default_model_or_none, model_named
from insights.models import ScoreRun
from insights.query import UNCERTAINTY_FIELDS
from selection import selectors

# Which way each stored field ranks: uncertainty's margin is small when unsure.
UNCERTAINTY_ASCENDING = {"margin"}
EMBEDDING_SCORES = ("uniqueness", "representativeness", "outlier")
MAX_NEIGHBORS = 1000


@dataclass(frozen=True)
class Pool:
    """What a strategy reads: the dataset, the eligible items (sorted ids), the seed."""

    dataset: Dataset
    ids: np.ndarray
    seed: int


def _str(raw: dict[str, Any], key: str, path: str, *, required: bool = False) -> str | None:
    value = raw.get(key)
    if value is None:
        if required:
            raise invalid_field(f"{path}.{key}", "is required")
        return None
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise invalid_field(f"{path}.{key}", "must be a non-blank string")
    return value


def _number(
    raw: dict[str, Any], key: str, path: str, default: float, low: float, high: float
) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise invalid_field(f"{path}.{key}", f"must be a number from {low:g} to {high:g}")
    return float(value)


def prediction_model(dataset: Dataset, raw: dict[str, Any], path: str) -> Model:
    name = _str(raw, "model", path, required=True)
    model = Model.objects.filter(dataset=dataset, name=name).first()
    if model is None:
        raise invalid_field(f"{path}.model", f"no model named {name!r} in this dataset")
    return model


def embedding_model(dataset: Dataset, raw: dict[str, Any], path: str) -> EmbeddingModel:
    """The named embedding model, or the dataset's default one."""
    name = _str(raw, "model", path)
    if name is None:
        model = default_model_or_none(dataset=dataset)
        if model is None:
            raise invalid_field(
                f"{path}.model", "this dataset has no embeddings: embed it first, or name a model"
            )
        return model
    try:
        return model_named(dataset=dataset, name=name)
    except CurationError:
        raise invalid_field(
            f"{path}.model", f"no embedding model {name!r} for this dataset"
        ) from None


def target(dataset: Dataset, raw: dict[str, Any], path: str) -> tuple[Slice | None, Tag | None]:
    """The slice or tag a strategy names (`slice` or `tag`, by name)."""
    slice_name, tag_name = _str(raw, "slice", path), _str(raw, "tag", path)
    if (slice_name is None) == (tag_name is None):
        raise invalid_field(path, "name exactly one of slice or tag")
    if slice_name is not None:
        found = Slice.objects.filter(dataset=dataset, name=slice_name).first()
        if found is None:
            raise invalid_field(f"{path}.slice", f"no slice {slice_name!r} in this dataset")
        return found, None
    tag = Tag.objects.filter(dataset=dataset, name=tag_name).first()
    if tag is None:
        raise invalid_field(f"{path}.tag", f"no tag {tag_name!r} in this dataset")
    return None, tag


class Strategy:
    """A strategy: its name, kind, what it needs, its options."""

    name: ClassVar[str]
    kind: ClassVar[str]  # "score", "greedy" or "filter"
    needs: ClassVar[str]
    options: ClassVar[tuple[str, ...]] = ()
    # How its values become [0, 1]: by rank (robust to scale and outliers) or min-max
    # (where the values' ratios are the user's, as metadata weights are).
    normalise: ClassVar[str] = "rank"

    def clean(self, dataset: Dataset, raw: dict[str, Any], path: str) -> dict[str, Any]:
        return {}

    def check(self, dataset: Dataset, ids: np.ndarray, options: dict[str, Any], path: str) -> None:
        """A 400 when the pool lacks what this strategy needs."""

    def vector_model(self, dataset: Dataset, options: dict[str, Any]) -> EmbeddingModel | None:
        """The embedding model whose vectors the pool's items must have, if any."""
        return None

    def values(self, pool: Pool, options: dict[str, Any]) -> np.ndarray:
        raise NotImplementedError

    def excluded(self, dataset: Dataset, options: dict[str, Any]) -> np.ndarray:
        """The items a filter drops (sorted ids); none for the other kinds."""
        return np.zeros(0, dtype=np.int64)


class Uncertainty(Strategy):
    name = "uncertainty"
    kind = "score"
    needs = "a prediction model's uncertainty scores (the insights uncertainty job)"
    options = ("model", "field")

    def clean(self, dataset: Dataset, raw: dict[str, Any], path: str) -> dict[str, Any]:
        model = prediction_model(dataset, raw, path)
        field = _str(raw, "field", path) or "margin"
        if field not in UNCERTAINTY_FIELDS:
            raise invalid_field(f"{path}.field", f"must be one of {', '.join(UNCERTAINTY_FIELDS)}")
        return {"model": model.name, "model_id": model.pk, "field": field}

    def check(self, dataset: Dataset, ids: np.ndarray, options: dict[str, Any], path: str) -> None:
        model = Model.objects.get(pk=options["model_id"])
        if not selectors.has_uncertainty(model=model, ids=ids):
            raise invalid_field(
                f"{path}.model",
                f"no item of the pool has uncertainty scores of {model.name!r}: run the "
                "uncertainty job first (POST .../uncertainty, or the Insights page)",
            )

    def values(self, pool: Pool, options: dict[str, Any]) -> np.ndarray:
        model = Model.objects.get(pk=options["model_id"])
        raw = selectors.uncertainty_values(model=model, field=options["field"], ids=pool.ids)
        return -raw if options["field"] in UNCERTAINTY_ASCENDING else raw


class Uniqueness(Strategy):
    name = "uniqueness"
    kind = "score"
    needs = "an embedding model's insights scores (the insights scores job)"
    options = ("model", "field")

    def clean(self, dataset: Dataset, raw: dict[str, Any], path: str) -> dict[str, Any]:
        model = embedding_model(dataset, raw, path)
        field = _str(raw, "field", path) or "uniqueness"
        if field not in EMBEDDING_SCORES:
            raise invalid_field(f"{path}.field", f"must be one of {', '.join(EMBEDDING_SCORES)}")
        return {"model": model.name, "model_id": model.pk, "field": field}

    def check(self, dataset: Dataset, ids: np.ndarray, options: dict[str, Any], path: str) -> None:
        if not ScoreRun.objects.filter(
            dataset=dataset, model_id=options["model_id"], status=ScoreRun.Status.FINISHED
        ).exists():
            raise invalid_field(
                f"{path}.model",
                f"no finished uniqueness scores of {options['model']!r} in this dataset: "
                "compute them first (Insights page, or `nucleus insights scores --compute`)",
            )

    def values(self, pool: Pool, options: dict[str, Any]) -> np.ndarray:
        model = EmbeddingModel.objects.get(pk=options["model_id"])
        return selectors.score_values(model=model, field=options["field"], ids=pool.ids)


class Similarity(Strategy):
    name = "similarity"
    kind = "score"
    needs = "embeddings of the pool and of the positives (a slice or a tag)"
    options = ("model", "slice", "tag")

    def clean(self, dataset: Dataset, raw: dict[str, Any], path: str) -> dict[str, Any]:
        model = embedding_model(dataset, raw, path)
        found_slice, tag = target(dataset, raw, path)
        out: dict[str, Any] = {"model": model.name, "model_id": model.pk}
        if found_slice is not None:
            out.update(slice=found_slice.name, slice_id=found_slice.pk)
        else:
            assert tag is not None
            out.update(tag=tag.name, tag_id=tag.pk)
        return out

    def vector_model(self, dataset: Dataset, options: dict[str, Any]) -> EmbeddingModel | None:
        return EmbeddingModel.objects.get(pk=options["model_id"])

    def positives(self, dataset: Dataset, options: dict[str, Any], path: str) -> np.ndarray:
        model = EmbeddingModel.objects.get(pk=options["model_id"])
        ids = selectors.target_item_ids(
            dataset=dataset,
            slice=Slice.objects.filter(pk=int(options.get("slice_id") or 0)).first(),
            tag=Tag.objects.filter(pk=int(options.get("tag_id") or 0)).first(),
        )
        mean = selectors.mean_vector(model=model, dataset=dataset, ids=ids)
        if mean is None:
            which = "slice" if "slice" in options else "tag"
            raise invalid_field(
                f"{path}.{which}",
                f"{options.get(which)!r} has no item with a vector of {model.name!r}",
            )
        return mean

    def check(self, dataset: Dataset, ids: np.ndarray, options: dict[str, Any], path: str) -> None:
        self.positives(dataset, options, path)

    def values(self, pool: Pool, options: dict[str, Any]) -> np.ndarray:
        model = EmbeddingModel.objects.get(pk=options["model_id"])
        mean = self.positives(pool.dataset, options, "strategies")
        out = np.full(len(pool.ids), np.nan)
        for got_ids, got in selectors.vectors_of(model=model, dataset=pool.dataset, ids=pool.ids):
            out[np.searchsorted(pool.ids, got_ids)] = got @ mean
        return out


class Metadata(Strategy):
    name = "metadata"
    kind = "score"
    needs = "a metadata key"
    options = ("key", "values", "default")
    normalise = "minmax"

    def clean(self, dataset: Dataset, raw: dict[str, Any], path: str) -> dict[str, Any]:
        key = _str(raw, "key", path, required=True)
        assert key is not None
        if not all(key.split(".")):
            raise invalid_field(f"{path}.key", "must be a metadata key (dotted for nested keys)")
        values = raw.get("values")
        if not isinstance(values, dict) or not values:
            raise invalid_field(f"{path}.values", "must be an object of value: weight")
        for value, weight in values.items():
            if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
                raise invalid_field(f"{path}.values.{value}", "must be a number >= 0")
        default = _number(raw, "default", path, 0.0, 0.0, 1e9)
        return {
            "key": key,
            "values": {str(k): float(v) for k, v in values.items()},
            "default": default,
        }

    def values(self, pool: Pool, options: dict[str, Any]) -> np.ndarray:
        weights: dict[str, float] = options["values"]
        found = selectors.metadata_values(ids=pool.ids, key=options["key"])
        default = float(options["default"])
        return np.asarray([weights.get(v, default) if v is not None else default for v in found])


def hash_uniform(ids: np.ndarray, seed: int) -> np.ndarray:
    """A uniform number in [0, 1) per item id, fixed by (seed, id): the same item keeps its
    number whatever else is in the pool (splitmix64)."""
    with np.errstate(over="ignore"):  # wrapping arithmetic is the point
        z = ids.astype(np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


class Random(Strategy):
    name = "random"
    kind = "score"
    needs = "nothing"
    normalise = "minmax"

    def values(self, pool: Pool, options: dict[str, Any]) -> np.ndarray:
        return hash_uniform(pool.ids, pool.seed + 1)


class Diversity(Strategy):
    name = "diversity"
    kind = "greedy"
    needs = "embeddings of the pool's items"
    options = ("model", "dims")

    def clean(self, dataset: Dataset, raw: dict[str, Any], path: str) -> dict[str, Any]:
        model = embedding_model(dataset, raw, path)
        dims = raw.get("dims", 64)
        if isinstance(dims, bool) or not isinstance(dims, int) or not 2 <= dims <= 512:
            raise invalid_field(f"{path}.dims", "must be a whole number from 2 to 512")
        return {"model": model.name, "model_id": model.pk, "dims": dims}

    def vector_model(self, dataset: Dataset, options: dict[str, Any]) -> EmbeddingModel | None:
        return EmbeddingModel.objects.get(pk=options["model_id"])


class Balance(Strategy):
    name = "balance"
    kind = "greedy"
    needs = "ground truth (annotations) or a model's predictions"
    options = ("source", "model")

    def clean(self, dataset: Dataset, raw: dict[str, Any], path: str) -> dict[str, Any]:
        source = raw.get("source", "annotations")
        if source not in ("annotations", "predictions"):
            raise invalid_field(f"{path}.source", "must be annotations or predictions")
        if source == "annotations":
            return {"source": source}
        model = prediction_model(dataset, raw, path)
        return {"source": source, "model": model.name, "model_id": model.pk}

    def check(self, dataset: Dataset, ids: np.ndarray, options: dict[str, Any], path: str) -> None:
        model = Model.objects.get(pk=options["model_id"]) if "model_id" in options else None
        if not selectors.has_labels(ids=ids, model=model):
            if model is None:
                raise invalid_field(f"{path}.source", "no item of the pool has annotations")
            raise invalid_field(
                f"{path}.model", f"no item of the pool has predictions of {model.name!r}"
            )

    def labels(self, pool: Pool, options: dict[str, Any]) -> list[list[str]]:
        model = Model.objects.get(pk=options["model_id"]) if "model_id" in options else None
        return selectors.labels_of(ids=pool.ids, model=model)


class Exclude(Strategy):
    name = "exclude"
    kind = "filter"
    needs = "a slice or tag (already labelled), and embeddings for `radius`"
    options = ("slice", "tag", "model", "radius", "neighbors")

    def clean(self, dataset: Dataset, raw: dict[str, Any], path: str) -> dict[str, Any]:
        found_slice, tag = target(dataset, raw, path)
        out: dict[str, Any] = (
            {"slice": found_slice.name, "slice_id": found_slice.pk}
            if found_slice is not None
            else {"tag": tag.name if tag else "", "tag_id": tag.pk if tag else 0}
        )
        radius = _number(raw, "radius", path, 0.0, 0.0, 2.0)
        out["radius"] = radius
        if radius > 0:
            model = embedding_model(dataset, raw, path)
            neighbors = raw.get("neighbors", 50)
            if (
                isinstance(neighbors, bool)
                or not isinstance(neighbors, int)
                or not 1 <= neighbors <= MAX_NEIGHBORS
            ):
                raise invalid_field(
                    f"{path}.neighbors", f"must be a whole number from 1 to {MAX_NEIGHBORS}"
                )
            out.update(model=model.name, model_id=model.pk, neighbors=neighbors)
        return out

    def excluded(self, dataset: Dataset, options: dict[str, Any]) -> np.ndarray:
        """The items this filter drops: the target's own, and those near them."""
        own = selectors.target_item_ids(
            dataset=dataset,
            slice=Slice.objects.filter(pk=int(options.get("slice_id") or 0)).first(),
            tag=Tag.objects.filter(pk=int(options.get("tag_id") or 0)).first(),
        )
        if not options["radius"] or not len(own):
            return own
        near = selectors.items_near(
            model=EmbeddingModel.objects.get(pk=options["model_id"]),
            dataset=dataset,
            of=own,
            radius=options["radius"],
            neighbors=options["neighbors"],
        )
        return np.union1d(own, near)


REGISTRY: dict[str, Strategy] = {
    s.name: s
    for s in (
        Uncertainty(),
        Uniqueness(),
        Similarity(),
        Metadata(),
        Random(),
        Diversity(),
        Balance(),
        Exclude(),
    )
}


def strategy_register(strategy: Strategy) -> None:
    """Add a strategy (from an AppConfig.ready()); the name must be new."""
    if strategy.name in REGISTRY:
        raise ValueError(f"strategy {strategy.name!r} is registered already")
    REGISTRY[strategy.name] = strategy
