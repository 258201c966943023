"""The insights scores as facets of the grid (curation.score_facets), registered by
InsightsConfig.ready: each a histogram of the view's items whose buckets narrow the grid
by the score's query field (insights/query.py).

- Uniqueness, representativeness, outlier: one field per embedding model with finished
  scores, `uniqueness["<model>"]`, buckets of 0.1;
- model uncertainty, one field per model with computed uncertainty: mean and largest
  entropy (nats, buckets from the values' range), margin and least confidence (buckets of
  0.1), low-confidence predictions (a count);
- label-error candidate score, once the dataset has a finished scan: the best candidate of
  any type (`label_error`), and of each type (`label_error.wrong_label`, ...).
"""

from __future__ import annotations

from collections.abc import Callable

from django.db.models import Exists, OuterRef

from curation.models import Dataset, Model
from curation.query.parser import quote_name
from curation.score_facets import (
    UNIT_EDGES,
    ScoreFacet,
    ScoreVariant,
    per_dataset,
    register_score_facet,
)
from embeddings.models import EmbeddingModel
from insights.models import CandidateType, ItemUncertainty, ScoreRun
from insights.query import LABEL_ERROR, UNCERTAINTY, newest_scan

_MOST_MODELS = 20  # fields listed per facet at most (one per model)

_SCORE_MEANINGS = {
    "uniqueness": "how far the item is from its nearest neighbours, as a rank: 1 the most unique",
    "representativeness": "closeness to a cluster centre, as a rank: 1 the most typical",
    "outlier": "local outlier factor, as a rank: 1 the most isolated for its neighbourhood",
}

_UNCERTAINTY = (
    # (field, title, fixed edges or None, meaning)
    ("entropy_mean", "Uncertainty: mean entropy", None, "mean entropy of its predictions (nats)"),
    ("entropy_max", "Uncertainty: max entropy", None, "largest entropy of its predictions (nats)"),
    ("margin", "Uncertainty: margin", "unit", "smallest top-minus-second margin: low is unsure"),
    (
        "least_confidence",
        "Uncertainty: least confidence",
        "unit",
        "largest 1 - top score among its predictions: high is unsure",
    ),
    ("low_confidence", "Uncertainty: low-confidence count", None, "predictions under 0.5"),
)


@per_dataset
def scored_models(dataset: Dataset) -> list[str]:
    """Names of the embedding models with finished scores in the dataset."""
    finished = ScoreRun.objects.filter(dataset=dataset, status=ScoreRun.Status.FINISHED)
    return list(
        EmbeddingModel.objects.filter(pk__in=finished.values("model_id"))
        .order_by("name")
        .values_list("name", flat=True)[:_MOST_MODELS]
    )


@per_dataset
def uncertain_models(dataset: Dataset) -> list[str]:
    """Names of the dataset's models with computed uncertainty."""
    rows = ItemUncertainty.objects.filter(model_id=OuterRef("pk"))
    return list(
        Model.objects.filter(dataset=dataset)
        .filter(Exists(rows))
        .order_by("name")
        .values_list("name", flat=True)[:_MOST_MODELS]
    )


def _score_variants(score: str) -> Callable[[Dataset], list[ScoreVariant]]:
    def variants(dataset: Dataset) -> list[ScoreVariant]:
        return [ScoreVariant(f"{score}[{quote_name(m)}]", m) for m in scored_models(dataset)]

    return variants


def _uncertainty_variants(field: str) -> Callable[[Dataset], list[ScoreVariant]]:
    def variants(dataset: Dataset) -> list[ScoreVariant]:
        return [
            ScoreVariant(f"{UNCERTAINTY}[{quote_name(m)}].{field}", m)
            for m in uncertain_models(dataset)
        ]

    return variants


def label_error_variants(dataset: Dataset) -> list[ScoreVariant]:
    if newest_scan(dataset.pk) is None:
        return []
    return [ScoreVariant(LABEL_ERROR, "any type")] + [
        ScoreVariant(f"{LABEL_ERROR}.{t.value}", str(t.label)) for t in CandidateType
    ]


def register_score_facets() -> None:
    for score, meaning in _SCORE_MEANINGS.items():
        register_score_facet(
            ScoreFacet(
                key=score,
                title=score.capitalize(),
                variants=_score_variants(score),
                meaning=meaning,
            )
        )
    for field, title, edges, meaning in _UNCERTAINTY:
        register_score_facet(
            ScoreFacet(
                key=f"{UNCERTAINTY}.{field}",
                title=title,
                variants=_uncertainty_variants(field),
                edges=UNIT_EDGES if edges == "unit" else None,
                meaning=meaning,
            )
        )
    register_score_facet(
        ScoreFacet(
            key=LABEL_ERROR,
            title="Label-error candidate score",
            variants=label_error_variants,
            meaning="the item's best label-error candidate in the newest scan (0 without any)",
        )
    )
