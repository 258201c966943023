"""Reads of the insights app (its views call these; they never query)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from curation.models import Dataset, JobStatus
from evaluation.models import EvaluationRun
from evaluation.pages import grid_url, outcome_query


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
