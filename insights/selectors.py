"""Reads of the insights app (its views call these; they never query)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection
from django.db.models import Case, IntegerField, Value, When
from django.urls import reverse

from curation.errors import NotFound
from curation.models import Dataset, Item, JobStatus, Role, Slice, Tag
from curation.query.parser import quote_name
from curation.storage import media_url
from embeddings.selectors import default_model_or_none
from evaluation.models import EvaluationRun
from evaluation.pages import grid_url, outcome_query
from insights.models import ItemScore, LeakPair, LeakReport, ScoreRun
from insights.query import scored_model
from insights.uniqueness import SCORES


@dataclass(frozen=True)
class RunFailures:
    """The newest finished run of one model, with its false positives and negatives: the
    counts of objects, and the grid of the items that hold them."""

    run: EvaluationRun
    fp: int
    fn: int
    fp_url: str
    fn_url: str


def failures_context(dataset: Dataset, user: AbstractBaseUser | AnonymousUser) -> dict[str, Any]:
    """The newest finished evaluation run of each model, with the FP and FN counts its
    metrics recorded at the operating point (no count over the matches: a run at 1M items
    holds millions)."""
    newest = (
        EvaluationRun.objects.filter(dataset=dataset, job__status=JobStatus.SUCCEEDED)
        .exclude(metrics={})
        .order_by("model_id", "-created", "-id")
        .distinct("model_id")
        .values("pk")
    )
    runs = EvaluationRun.objects.filter(pk__in=newest).select_related("model")
    found = []
    for run in sorted(runs, key=lambda r: (r.model.name, -r.pk)):
        point = run.metrics.get("operating_point") or {}
        found.append(
            RunFailures(
                run=run,
                fp=int(point.get("fp") or 0),
                fn=int(point.get("fn") or 0),
                fp_url=grid_url(run, outcome_query(run, "fp")),
                fn_url=grid_url(run, outcome_query(run, "fn")),
            )
        )
    return {"runs": found}


# ------------------------------------------------- uniqueness, representativeness, outliers

SCORE_TITLES = {
    "uniqueness": "Most unique",
    "outlier": "Likeliest outliers",
    "representativeness": "Most representative",
}
BINS = 10
RANKED = 8


@dataclass(frozen=True)
class Bar:
    """One bin of a score's distribution, with the grid of its items."""

    low: float
    high: float
    count: int
    url: str
    height: int  # percent of the tallest bar


@dataclass(frozen=True)
class Ranked:
    item: Item
    score: float
    thumbnail: str | None
    url: str


@dataclass(frozen=True)
class Distribution:
    score: str
    title: str
    bars: list[Bar]
    top: list[Ranked]
    top_url: str


def score_query(score: str, op: str, value: float, model_name: str | None) -> str:
    """The query language's condition on a score (the model named when it is not implied)."""
    field = score if model_name is None else f"{score}[{quote_name(model_name)}]"
    return f"{field} {op} {value:g}"


def score_runs(*, dataset: Dataset) -> list[ScoreRun]:
    """The dataset's score runs (one per model: a new one replaces the old), newest first."""
    return list(ScoreRun.objects.filter(dataset=dataset).select_related("model").order_by("-id"))


def score_run_for(*, dataset: Dataset, model_name: str | None) -> ScoreRun:
    """The finished run of the named model, or of the model `uniqueness` reads by default;
    NotFound says why there is none."""
    try:
        model = scored_model(dataset, model_name)
    except ValueError as exc:
        raise NotFound(str(exc)) from exc
    run = (
        ScoreRun.objects.filter(dataset=dataset, model=model, status=ScoreRun.Status.FINISHED)
        .select_related("model")
        .order_by("-id")
        .first()
    )
    if run is None:
        raise NotFound(f"No finished scores of '{model.name}' yet.")
    return run


def _implied_name(dataset: Dataset, run: ScoreRun) -> str | None:
    """None when a bare `uniqueness` reads this run's model, else its name."""
    try:
        implied = scored_model(dataset, None)
    except ValueError:
        return run.model.name
    return None if implied.pk == run.model_id else run.model.name


def score_histogram(*, run: ScoreRun, score: str, bins: int = BINS) -> list[tuple[int, int]]:
    """(bin, count) of a score's values over `bins` equal bins of [0, 1] (1 in the last)."""
    if score not in SCORES:
        raise ValueError(score)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT least(width_bucket({score}, 0, 1, %s), %s) AS b, count(*)"
            f" FROM insights_itemscore WHERE run_id = %s AND {score} IS NOT NULL"
            " GROUP BY b ORDER BY b",
            [bins, bins, run.pk],
        )
        return [(int(b), int(n)) for b, n in cursor.fetchall()]


def scores_ranked(
    *, run: ScoreRun, sort: str, descending: bool = True, offset: int = 0, limit: int = 50
) -> list[ItemScore]:
    """A page of a run's scores in the order of one score (ties by item id)."""
    if sort not in SCORES:
        raise ValueError(sort)
    order = (f"-{sort}", "item_id") if descending else (sort, "item_id")
    return list(
        ItemScore.objects.filter(
            model_id=run.model_id, dataset_id=run.dataset_id, **{f"{sort}__isnull": False}
        )
        .select_related("item")
        .order_by(*order)[offset : offset + limit]
    )


def _grid(dataset: Dataset, query: str) -> str:
    return reverse("ui:grid", args=[dataset.pk]) + "?" + urlencode({"query": query})


def scores_context(dataset: Dataset, user: AbstractBaseUser | AnonymousUser) -> dict[str, Any]:
    """The run the page shows (the default model's), each score's distribution with a
    link per bar, and the top items of each score."""
    runs = score_runs(dataset=dataset)
    role = getattr(dataset, "user_role", None)
    context: dict[str, Any] = {
        "runs": runs,
        "can_curate": role in (Role.CURATOR, Role.ADMIN),
        "model": default_model_or_none(dataset=dataset),
        "run": None,
        "distributions": [],
    }
    try:
        run = score_run_for(dataset=dataset, model_name=None)
    except NotFound as exc:
        context["why_none"] = exc.message
        return context
    name = _implied_name(dataset, run)
    distributions = []
    for score in ("uniqueness", "outlier", "representativeness"):
        counts = dict(score_histogram(run=run, score=score))
        tallest = max(counts.values(), default=0) or 1
        bars = []
        for b in range(1, BINS + 1):
            low, high = (b - 1) / BINS, b / BINS
            query = score_query(score, ">=", low, name)
            query += " and " + score_query(score, "<=" if b == BINS else "<", high, name)
            count = counts.get(b, 0)
            bars.append(Bar(low, high, count, _grid(dataset, query), round(100 * count / tallest)))
        top = [
            Ranked(
                item=s.item,
                score=float(getattr(s, score)),
                thumbnail=media_url(s.item, "thumbnail") or media_url(s.item, "original"),
                url=reverse("ui:item", args=[dataset.pk, s.item_id]),
            )
            for s in scores_ranked(run=run, sort=score, limit=RANKED)
        ]
        threshold = 0.8
        distributions.append(
            Distribution(
                score=score,
                title=SCORE_TITLES[score],
                bars=bars,
                top=top,
                top_url=_grid(dataset, score_query(score, ">=", threshold, name)),
            )
        )
    context.update(run=run, distributions=distributions)
    return context


# ------------------------------------------------------------------ leaks between splits

PAIRS_SHOWN = 50


@dataclass(frozen=True)
class PairRow:
    pair: LeakPair
    a_thumbnail: str | None
    b_thumbnail: str | None
    a_url: str
    b_url: str
    distance: str


def _distance_text(pair: LeakPair) -> str:
    if pair.evidence in (LeakPair.Evidence.SAME_ITEM, LeakPair.Evidence.EXACT):
        return "0"
    if pair.evidence == LeakPair.Evidence.PHASH:
        return f"{pair.distance:.0f} of 256 bits"
    return f"cosine {pair.distance:.4f}"


def leak_sides(*, dataset: Dataset) -> list[str]:
    """What the leak form offers: each slice and each tag, as `slice:<name>`/`tag:<name>`."""
    slices = Slice.objects.filter(dataset=dataset).order_by("name").values_list("name", flat=True)
    tags = Tag.objects.filter(dataset=dataset).order_by("name").values_list("name", flat=True)
    return [f"slice:{n}" for n in slices[:200]] + [f"tag:{n}" for n in tags[:200]]


def leak_pairs(*, report: LeakReport, offset: int = 0, limit: int = PAIRS_SHOWN) -> list[LeakPair]:
    """A page of a report's pairs, the strongest evidence first."""
    rank = Case(
        *(When(evidence=e, then=Value(i)) for i, e in enumerate(LeakPair.Evidence.values)),
        output_field=IntegerField(),
    )
    return list(
        LeakPair.objects.filter(report=report)
        .select_related("item_a", "item_b")
        .annotate(rank=rank)
        .order_by("rank", "distance", "item_a_id", "item_b_id")[offset : offset + limit]
    )


def leak_reports(*, dataset: Dataset) -> list[LeakReport]:
    return list(
        LeakReport.objects.filter(dataset=dataset, status=LeakReport.Status.FINISHED).order_by(
            "-id"
        )[:20]
    )


def leaks_context(dataset: Dataset, user: AbstractBaseUser | AnonymousUser) -> dict[str, Any]:
    """The form's choices, the newest report (or the one the page names) and its pairs."""
    role = getattr(dataset, "user_role", None)
    reports = leak_reports(dataset=dataset)
    report = reports[0] if reports else None
    rows = []
    if report is not None:
        for pair in leak_pairs(report=report):
            a, b = pair.item_a, pair.item_b
            rows.append(
                PairRow(
                    pair=pair,
                    a_thumbnail=media_url(a, "thumbnail") or media_url(a, "original"),
                    b_thumbnail=media_url(b, "thumbnail") or media_url(b, "original"),
                    a_url=reverse("ui:item", args=[dataset.pk, a.pk]),
                    b_url=reverse("ui:item", args=[dataset.pk, b.pk]),
                    distance=_distance_text(pair),
                )
            )
    return {
        "sides": leak_sides(dataset=dataset),
        "report": report,
        "reports": reports,
        "rows": rows,
        "remove_choices": (
            [("a", report.a_kind, report.a_name), ("b", report.b_kind, report.b_name)]
            if report is not None
            else []
        ),
        "can_curate": role in (Role.CURATOR, Role.ADMIN),
        "semantic": any(
            m is not None and not m.random_weights for m in [default_model_or_none(dataset=dataset)]
        ),
    }
