"""The runners of the label-error and uncertainty jobs (thin: the work is
insights.label_error_scan.label_error_execute and insights.uncertainty.uncertainty_execute).

Registering happens on import; InsightsConfig.ready imports this module in every process.
"""

from __future__ import annotations

from typing import Any

from curation.jobs import JobContext, job_runner
from insights.label_error_scan import LABEL_ERRORS_JOB, label_error_execute
from insights.uncertainty import UNCERTAINTY_JOB, uncertainty_execute


@job_runner(LABEL_ERRORS_JOB)
def run_label_errors(ctx: JobContext) -> dict[str, Any]:
    return label_error_execute(ctx)


@job_runner(UNCERTAINTY_JOB)
def run_uncertainty(ctx: JobContext) -> dict[str, Any]:
    return uncertainty_execute(ctx)
