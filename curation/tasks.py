"""Thin procrastinate tasks: take an id, call a service."""

from __future__ import annotations

from procrastinate.contrib.django import app

# Importing export's jobs and ingest registers their job runners; CurationConfig.ready()
# imports this module in every process (web, worker, CLI), so job_create and the worker
# know them, and jobs.py, which this module builds on, defers run_job by its name.
from curation import jobs
from curation.export import jobs as export_jobs  # noqa: F401
from curation.ingest import jobs as ingest_jobs  # noqa: F401
from curation.quality import jobs as quality_jobs  # noqa: F401


@app.task(name=jobs.RUN_JOB_TASK, queue=jobs.DEFAULT_QUEUE)
def run_job(job_id: int) -> None:
    jobs.job_run(job_id=job_id)
