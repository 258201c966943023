"""The selection job's runner (thin: selection.services does the work).

Registered on import; selection.apps imports this module in every process. It reads a
pool's vectors in chunks, like the insights scores job: the `embed` queue.
"""

from __future__ import annotations

from typing import Any

from curation.jobs import JobContext, job_runner
from selection.services import SELECTION_JOB, selection_run


@job_runner(SELECTION_JOB, queue="embed")
def run_selection(ctx: JobContext) -> dict[str, Any]:
    return selection_run(ctx)
