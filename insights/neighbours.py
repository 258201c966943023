"""Neighbour disagreement: an item whose label disagrees with its nearest neighbours'
labels in embedding space (see docs/insights.md, "Label-error candidates").

On only where the dataset's default embedding model is semantic (not the random-weights
fallback, whose neighbours mean nothing) and the dataset has at most NEIGHBOUR_MAX_ITEMS
items (one nearest-neighbour query per item). For each label l of an item, the share of
its K nearest neighbours that carry l too, smoothed towards l's share of all items
(`base`), is weighed against that base rate: odds = prior odds x base / share. A label
its neighbours rarely carry, although it is common, is suspect; a rare label is not
suspect merely because its neighbours lack it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from django.db.models import Count

from curation.models import Annotation, Dataset, Item
from insights.label_errors import MIN_SCORE, Candidate

NEIGHBOURS_K = 10
NEIGHBOUR_MAX_ITEMS = 200_000
NEIGHBOUR_PRIOR = 0.01
# Pseudo-count of neighbours pulling an item's share towards the base rate.
NEIGHBOUR_SMOOTHING = 0.5


def neighbour_model(dataset: Dataset) -> tuple[Any, str]:
    """The embedding model the signal uses, or None, and what to say about it."""
    from embeddings.selectors import default_model_or_none

    model = default_model_or_none(dataset=dataset)
    if model is None:
        return None, "off: the dataset has no embeddings."
    if model.random_weights:
        return None, (
            f"off: the dataset's embeddings ({model.name}) come from random weights, so "
            "neighbours mean nothing."
        )
    # Bounded: whether a row lies past the cap, not the count of a million-item dataset.
    past = Item.objects.filter(dataset=dataset).order_by().values("id")[NEIGHBOUR_MAX_ITEMS:]
    if past.exists():
        return None, f"off: more than {NEIGHBOUR_MAX_ITEMS:,} items (one search per item)."
    return model, f"on: the {NEIGHBOURS_K} nearest items under {model.name}."


def base_rates(dataset: Dataset) -> dict[str, float]:
    """Each label's share of the dataset's items."""
    items = max(1, Item.objects.filter(dataset=dataset).count())
    rows = (
        Annotation.objects.filter(dataset=dataset)
        .values("label")
        .annotate(n=Count("item_id", distinct=True))
        .values_list("label", "n")
    )
    return {label: n / items for label, n in rows}


def _labels(item_ids: list[int]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {i: set() for i in item_ids}
    for item_id, label in (
        Annotation.objects.filter(item_id__in=item_ids).values_list("item_id", "label").distinct()
    ):
        out[item_id].add(label)
    return out


def neighbour_candidates(
    *, dataset: Dataset, model: Any, item_ids: list[int], base: dict[str, float]
) -> list[Candidate]:
    """The candidates of these items (one per item at most: its most suspect label)."""
    from embeddings.models import Embedding
    from embeddings.search import SearchFilter, knn

    vectors = dict(
        Embedding.objects.filter(model=model, item_id__in=item_ids).values_list("item_id", "vector")
    )
    found: dict[int, list[int]] = {}
    for item_id, vector in vectors.items():
        rows, _ = knn(
            dataset=dataset,
            model=model,
            vector=np.asarray(vector, dtype=np.float32),
            search_filter=SearchFilter(exclude_item_ids=[item_id]),
            top=NEIGHBOURS_K,
        )
        found[item_id] = [i for i, _ in rows]
    labels = _labels(sorted(set(vectors) | {n for ns in found.values() for n in ns}))
    out: list[Candidate] = []
    for item_id, neighbours in found.items():
        if not neighbours:
            continue
        best: tuple[float, str, float] | None = None
        for label in sorted(labels.get(item_id, ())):
            rate = base.get(label, 0.0)
            having = sum(1 for n in neighbours if label in labels.get(n, ()))
            share = (having + NEIGHBOUR_SMOOTHING * rate) / (len(neighbours) + NEIGHBOUR_SMOOTHING)
            odds = NEIGHBOUR_PRIOR / (1 - NEIGHBOUR_PRIOR) * rate / max(share, 1e-6)
            score = odds / (1 + odds)
            if best is None or score > best[0]:
                best = (score, label, share)
        if best is None or best[0] < MIN_SCORE:
            continue
        score, label, share = best
        out.append(
            Candidate(
                item_id,
                "neighbour",
                round(min(1.0, score), 4),
                None,
                None,
                {
                    "label": label,
                    "neighbours_with_label": round(share, 4),
                    "base_rate": round(base.get(label, 0.0), 4),
                    "neighbours": neighbours,
                },
            )
        )
    return out
