"""The evaluation jobs' runners (thin: the work is evaluation.services.evaluation_execute
and evaluation.scenarios.suite_execute).

Registering it happens on import; EvaluationConfig.ready imports this module in every
process (web, worker, CLI), so job_create and the worker both know the kind.
"""

from __future__ import annotations

from typing import Any

from curation.jobs import JobContext, job_runner
from evaluation.scenarios import suite_execute
from evaluation.services import EVALUATE_JOB, SCENARIO_JOB, evaluation_execute


@job_runner(EVALUATE_JOB)
def run_evaluate(ctx: JobContext) -> dict[str, Any]:
    return evaluation_execute(ctx)


@job_runner(SCENARIO_JOB)
def run_scenario(ctx: JobContext) -> dict[str, Any]:
    return suite_execute(ctx)
