"""Thin procrastinate tasks: take an id, call a service."""

from __future__ import annotations

from procrastinate.contrib.django import app

from curation import ingest, jobs  # noqa: F401  (importing registers job runners)
from curation.export import jobs as export_jobs  # noqa: F401  (registers the export runner)


@app.task(name="nucleus.run_job", queue="default")
def run_job(job_id: int) -> None:
    jobs.job_run(job_id=job_id)
