"""Reads of autotags (embeddings/autotag.py): the list, one autotag's rounds and examples,
pages of its scores, the top unlabelled and borderline items of a round, the histogram.

Every read of scores goes through the (round, score, item) index: the top of a round is a
backward index scan, the borderline items two short scans from 0.5, the histogram one
index-only pass over the round.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from django.db.models import Count, Exists, OuterRef, QuerySet
from django.urls import reverse

from curation.errors import NotFound
from curation.models import Dataset, Item
from curation.storage import media_url
from embeddings.autotag import threshold_query
from embeddings.models import (
    Autotag,
    AutotagExample,
    AutotagRound,
    AutotagScore,
    Embedding,
    EmbeddingModel,
)

SHOWN = 24


def autotags_of(*, dataset: Dataset) -> list[Autotag]:
    return list(
        Autotag.objects.filter(dataset=dataset)
        .select_related("model", "scored_round")
        .order_by("name")
    )


def autotag_of(*, dataset: Dataset, autotag_id: int) -> Autotag:
    found = (
        Autotag.objects.filter(dataset=dataset, pk=autotag_id)
        .select_related("model", "scored_round", "dataset")
        .first()
    )
    if found is None:
        raise NotFound("No such autotag in this dataset.")
    return found


def rounds_of(*, autotag: Autotag) -> list[AutotagRound]:
    return list(autotag.rounds.select_related("job").order_by("-number"))


def latest_round(*, autotag: Autotag) -> AutotagRound | None:
    return autotag.rounds.select_related("job").order_by("-number").first()


def example_counts(*, autotag: Autotag) -> tuple[int, int]:
    """How many positive and negative examples the autotag has."""
    rows = dict(
        AutotagExample.objects.filter(autotag=autotag)
        .order_by()
        .values("positive")
        .annotate(n=Count("pk"))
        .values_list("positive", "n")
    )
    return int(rows.get(True, 0)), int(rows.get(False, 0))


@dataclass(frozen=True)
class AutotagDetail:
    autotag: Autotag
    positives: int
    negatives: int
    rounds: list[AutotagRound]


def autotag_detail(*, autotag: Autotag) -> AutotagDetail:
    positives, negatives = example_counts(autotag=autotag)
    return AutotagDetail(autotag, positives, negatives, rounds_of(autotag=autotag))


def examples_of(*, autotag: Autotag, limit: int = 200) -> list[AutotagExample]:
    return list(autotag.examples.select_related("item").order_by("-id")[:limit])


@dataclass(frozen=True)
class Scored:
    """One item's score in the current round, and how the curator labelled it (None: not)."""

    item: Item
    score: float
    label: bool | None
    thumbnail: str | None
    url: str


def _scores(autotag: Autotag) -> QuerySet[AutotagScore]:
    if autotag.scored_round_id is None:
        return AutotagScore.objects.none()
    return AutotagScore.objects.filter(round_id=autotag.scored_round_id).select_related("item")


def _scored(autotag: Autotag, rows: list[AutotagScore]) -> list[Scored]:
    labels = dict(
        AutotagExample.objects.filter(
            autotag=autotag, item_id__in=[r.item_id for r in rows]
        ).values_list("item_id", "positive")
    )
    return [
        Scored(
            item=r.item,
            score=r.score,
            label=labels.get(r.item_id),
            thumbnail=media_url(r.item, "thumbnail") or media_url(r.item, "original"),
            url=reverse("ui:item", args=[autotag.dataset_id, r.item_id]),
        )
        for r in rows
    ]


def scores_page(
    *,
    autotag: Autotag,
    descending: bool = True,
    offset: int = 0,
    limit: int = 100,
    low: float | None = None,
    high: float | None = None,
) -> list[Scored]:
    """A page of the current round's scores, best first (or worst), within [low, high]."""
    rows = _scores(autotag)
    if low is not None:
        rows = rows.filter(score__gte=low)
    if high is not None:
        rows = rows.filter(score__lte=high)
    order = ("-score", "-item_id") if descending else ("score", "item_id")
    return _scored(autotag, list(rows.order_by(*order)[offset : offset + limit]))


def _unlabelled(autotag: Autotag) -> QuerySet[AutotagScore]:
    labelled = AutotagExample.objects.filter(autotag=autotag, item_id=OuterRef("item_id"))
    return _scores(autotag).filter(~Exists(labelled))


def top_unlabelled(*, autotag: Autotag, limit: int = SHOWN) -> list[Scored]:
    """The best-scored items the curator has not labelled: what to confirm or reject."""
    rows = _unlabelled(autotag).order_by("-score", "-item_id")[:limit]
    return _scored(autotag, list(rows))


def borderline(
    *, autotag: Autotag, limit: int = SHOWN, exclude: Sequence[int] = ()
) -> list[Scored]:
    """The unlabelled items scored nearest 0.5, where a label teaches the model most (but
    not those of `exclude`, the top list the page shows too): the nearest above and
    below from two short index scans, merged."""
    rows = _unlabelled(autotag).exclude(item_id__in=list(exclude))
    above = list(rows.filter(score__gte=0.5).order_by("score", "item_id")[:limit])
    below = list(rows.filter(score__lt=0.5).order_by("-score", "-item_id")[:limit])
    merged = sorted(above + below, key=lambda r: (abs(r.score - 0.5), r.item_id))[:limit]
    return _scored(autotag, sorted(merged, key=lambda r: (-r.score, r.item_id)))


@dataclass(frozen=True)
class Bar:
    """One bin of the score histogram, with the grid of its items."""

    low: float
    high: float
    count: int
    url: str
    height: int  # percent of the tallest bar


def grid_url(dataset_id: int, query: str, sort: str | None = None) -> str:
    params = {"query": query}
    if sort:
        params |= {"sort": sort, "order": "desc"}
    return reverse("ui:grid", args=[dataset_id]) + "?" + urlencode(params)


def histogram(*, autotag: Autotag) -> list[Bar]:
    """The current round's scores in ten equal bins of [0, 1] (counted by the scoring
    job), each bar a grid link on its range, sorted by the score."""
    scored = autotag.scored_round
    if scored is None or not scored.histogram:
        return []
    counts = list(scored.histogram)
    bins = len(counts)
    tallest = max(counts) or 1
    field = threshold_query(autotag, 0.0).split(" >= ")[0]
    bars = []
    for b, count in enumerate(counts, start=1):
        low, high = (b - 1) / bins, b / bins
        query = f"{field} >= {low:g} and {field} {'<=' if b == bins else '<'} {high:g}"
        url = grid_url(autotag.dataset_id, query, field)
        bars.append(Bar(low, high, count, url, round(100 * count / tallest)))
    return bars


def models_with_vectors(*, dataset: Dataset) -> list[EmbeddingModel]:
    """The models that have vectors in this dataset (what an autotag can be trained on)."""
    has = Embedding.objects.filter(dataset_id=dataset.pk, model_id=OuterRef("pk"))
    return list(EmbeddingModel.objects.filter(Exists(has)).order_by("name"))
