"""What the `nucleus` command's parts share: usage errors, tables and JSON out, waiting
for a job with a progress bar, and printing it. nucleus/cli.py is the command; commands of
one concept that grew large live beside it (nucleus/cli_insights.py)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from nucleus.client import Job, NucleusAPIError, NucleusClient


class UsageError(Exception):
    """A command line that makes no sense: argparse prints it with the usage, exit 2."""


def add_dataset(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help="dataset name or id")


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def table(rows: Sequence[Sequence[Any]], out: TextIO | None = None) -> None:
    """Print tab-separated rows, the first being the header."""
    out = out or sys.stdout
    for row in rows:
        print("\t".join("" if v is None else str(v) for v in row), file=out)


def dump(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def job_anywhere(client: NucleusClient, job_id: int) -> Job:
    """Find a job by id in whichever of your datasets it belongs to."""
    for dataset in client.datasets():
        try:
            return client.job(dataset, job_id)
        except NucleusAPIError as exc:
            if exc.status != 404:
                raise
    raise NucleusAPIError(404, "not_found", f"No job {job_id} in any dataset you can see.")


def follow(client: NucleusClient, job: Job) -> Job:
    """Wait for a job with a progress bar on stderr; return it finished."""
    from tqdm import tqdm

    with tqdm(
        total=job.total, desc=f"{job.kind} job {job.id}", unit="item", file=sys.stderr
    ) as bar:

        def show(current: Job) -> None:
            if current.total is not None and bar.total != current.total:
                bar.total = current.total
            bar.update(current.done - bar.n)
            bar.set_postfix(status=current.status, errors=current.error_count)

        return client.job_wait(job.dataset_id, job, progress=show)


def progress_text(job: Job) -> str:
    return f"{job.done}/{job.total}" if job.total is not None else str(job.done)


def print_job(job: Job) -> None:
    print(
        f"job {job.id} ({job.kind}): {job.status}, {progress_text(job)} done, "
        f"{job.error_count} errors"
    )
    if job.message:
        print(f"  {job.message}")
    for error in job.errors[:20]:
        where = error.get("reference_id") or error.get("path") or ""
        print(f"  {where}: {error.get('message')}" if where else f"  {error.get('message')}")
    if job.error_count > 20:
        print(f"  ... {job.error_count - 20} more errors")


def number(value: Any) -> str:
    return "" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)
