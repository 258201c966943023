"""Thin procrastinate tasks: take an id, call a service."""

from __future__ import annotations

from procrastinate.contrib.django import app

from curation import export, ingest, jobs  # noqa: F401  (importing registers job runners)


@app.task(name="nucleus.run_job", queue="default")
def run_job(job_id: int) -> None:
    jobs.job_run(job_id=job_id)
