"""Job runners of the insights app (thin: the services do the work).

Registering them happens on import; insights.apps imports this module in every process
(web, worker, CLI), so job_create and the worker both know these kinds. Both walk a
dataset with one index query per item, as the duplicates job does: the `embed` queue.
"""

from __future__ import annotations

from typing import Any

from curation.jobs import JobContext, job_runner
from insights.leaks import LEAKS_JOB, leaks_run
from insights.uniqueness import SCORES_JOB, scores_run

QUEUE = "embed"


@job_runner(SCORES_JOB, queue=QUEUE)
def run_scores(ctx: JobContext) -> dict[str, Any]:
    return scores_run(ctx)


@job_runner(LEAKS_JOB, queue=QUEUE)
def run_leaks(ctx: JobContext) -> dict[str, Any]:
    return leaks_run(ctx)
