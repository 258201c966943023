"""Background jobs: the Job row users see, and the runner the worker calls.

A job kind registers a runner with ``@job_runner("kind")``. The runner receives a
``JobContext`` and commits its work in steps with ``ctx.checkpoint(...)``: the data written
by a step and the job's progress/state commit in the same transaction, so a job that is
interrupted (worker killed, machine restarted) resumes from its last checkpoint on the next
attempt, losing nothing and doing nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import OperationalError, transaction
from django.db.models import F
from django.utils import timezone

from curation.bulk import is_transient
from curation.errors import Conflict
from curation.health import disk_space_require, disk_status, is_disk_full
from curation.models import Dataset, Job, JobStatus

logger = logging.getLogger(__name__)

Runner = Callable[["JobContext"], dict[str, Any] | None]
_RUNNERS: dict[str, Runner] = {}
# The procrastinate queue of each job kind. Kinds on different queues run on different
# workers (`manage.py serve` starts workers for each queue), so a short ingest or export
# never waits behind an embedding job that takes an hour.
DEFAULT_QUEUE = "default"
_QUEUES: dict[str, str] = {}


class JobCancelled(Exception):
    pass


def job_runner(kind: str, *, queue: str = DEFAULT_QUEUE) -> Callable[[Runner], Runner]:
    """Register the runner of job `kind`; its jobs go to the worker queue `queue`."""

    def register(fn: Runner) -> Runner:
        _RUNNERS[kind] = fn
        _QUEUES[kind] = queue
        return fn

    return register


def job_queues() -> list[str]:
    """Every queue some job kind runs on, the default one first."""
    return sorted(set(_QUEUES.values()) | {DEFAULT_QUEUE}, key=lambda q: (q != DEFAULT_QUEUE, q))


def job_create(
    *,
    kind: str,
    dataset: Dataset | None,
    user: Any,
    params: dict[str, Any],
    total: int | None = None,
    enqueue: bool = True,
) -> Job:
    """Create a job and queue it for a worker, in the caller's transaction.

    The queue lives in the same PostgreSQL database, so the Job row and its queue entry
    commit (or roll back) together: no job without a queue entry, no orphan queue entry.
    With ``enqueue=False`` the job is only recorded, for a caller that runs it in process
    with job_run (``manage.py ingest`` does), so that no worker runs it at the same time.
    """
    if kind not in _RUNNERS:
        raise ValueError(f"unknown job kind {kind!r}")
    # Every job writes (media, export files, vectors, rows); below the floor the space is
    # PostgreSQL's, whose WAL must never run out (a PANIC stops everything).
    disk_space_require()
    with transaction.atomic():
        job = Job.objects.create(
            kind=kind,
            dataset=dataset,
            created_by=user if getattr(user, "is_authenticated", False) else None,
            params=params,
            progress_total=total,
        )
        if enqueue:
            _enqueue(job)
    return job


def _enqueue(job: Job, **options: Any) -> None:
    """Put `job` on its kind's worker queue (procrastinate's configure() options)."""
    from curation.tasks import run_job

    run_job.configure(queue=_QUEUES.get(job.kind, DEFAULT_QUEUE), **options).defer(job_id=job.pk)


def job_cancel(*, job: Job) -> Job:
    """Ask a job to stop; a running job stops at its next checkpoint."""
    updated = Job.objects.filter(
        pk=job.pk, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]
    ).update(status=JobStatus.CANCELLED, finished=timezone.now(), message="Cancelled by user.")
    job.refresh_from_db()
    if not updated and job.status != JobStatus.CANCELLED:
        raise Conflict(f"Job {job.pk} already {job.status}; it cannot be cancelled.")
    return job


class JobContext:
    """What a runner uses to report progress, record per-item errors and save state."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.errors_kept = settings.NUCLEUS_JOB_ERRORS_KEPT

    @property
    def params(self) -> dict[str, Any]:
        return self.job.params

    @property
    def state(self) -> dict[str, Any]:
        return self.job.state

    def set_total(self, total: int) -> None:
        Job.objects.filter(pk=self.job.pk).update(progress_total=total)
        self.job.progress_total = total

    @contextmanager
    def checkpoint(
        self,
        *,
        done: int,
        state: dict[str, Any],
        errors: list[dict[str, Any]] | None = None,
    ) -> Iterator[None]:
        """Run the block's writes and record progress in one transaction.

        Raises JobCancelled (before writing anything) if the job was cancelled.
        """
        errors = errors or []
        with transaction.atomic():
            status = (
                Job.objects.select_for_update()
                .filter(pk=self.job.pk)
                .values_list("status", flat=True)
                .first()
            )
            if status != JobStatus.RUNNING:
                raise JobCancelled()
            yield
            room = max(0, self.errors_kept - len(self.job.errors))
            kept = self.job.errors + errors[:room]
            Job.objects.filter(pk=self.job.pk).update(
                progress_done=done,
                state=state,
                errors=kept,
                error_count=F("error_count") + len(errors),
            )
        self.job.progress_done = done
        self.job.state = state
        self.job.errors = kept
        self.job.error_count += len(errors)


# A job paused for lack of disk space is tried again this often; it pauses again at once
# (without writing) while space stays below the floor.
DISK_RETRY_SECONDS = 60


def _job_pause_for_disk(job: Job, reason: str) -> None:
    """Put a running job back in the queue for later: resumable, not failed."""
    message = (
        f"Paused: {reason}. It resumes from its last checkpoint by itself once free space "
        "is above NUCLEUS_MIN_FREE_DISK_MB again; cancel it to give up."
    )
    with transaction.atomic():
        if Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
            status=JobStatus.QUEUED, message=message
        ):
            _enqueue(job, schedule_in={"seconds": DISK_RETRY_SECONDS})
    logger.warning("%s paused: %s", job, reason)


def _run_resuming(runner: Runner, job: Job, attempts: int = 4) -> dict[str, Any]:
    """Run `runner`; after a deadlock or serialisation failure, resume it.

    Such an error rolls back only the checkpoint in progress, and a runner resumes from
    the last committed one, so running it again loses nothing and repeats nothing.
    """
    for attempt in range(1, attempts + 1):
        try:
            return runner(JobContext(job)) or {}
        except OperationalError as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            logger.warning("%s hit %s; resuming from its last checkpoint", job, exc)
            job.refresh_from_db()
    raise AssertionError("unreachable")


def job_run(*, job_id: int) -> Job | None:
    """Run (or resume) a job. Called by the worker; safe to call again after a crash."""
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.is_finished:
            return job
        job.status = JobStatus.RUNNING
        job.attempts += 1
        job.started = job.started or timezone.now()
        job.message = ""  # a pause's reason, from an earlier attempt
        job.save(update_fields=["status", "attempts", "started", "message"])
    if job.attempts > 1:
        logger.info("resuming %s from %s done", job, job.progress_done)
    runner = _RUNNERS.get(job.kind)
    disk = disk_status()
    try:
        if disk.low:
            _job_pause_for_disk(job, f"{disk.free_mb} MB of disk free, below {disk.floor_mb} MB")
            job.refresh_from_db()
            return job
        if runner is None:
            raise RuntimeError(f"no runner for job kind {job.kind!r}")
        result = _run_resuming(runner, job)
    except JobCancelled:
        logger.info("%s cancelled", job)
        job.refresh_from_db()
        return job
    except Exception as exc:
        if is_disk_full(exc):
            # What the step in progress wrote was rolled back with its checkpoint; the
            # next attempt starts from the last one that committed.
            _job_pause_for_disk(job, f"the disk is full ({exc})")
            job.refresh_from_db()
            return job
        logger.exception("%s failed", job)
        Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
            status=JobStatus.FAILED, finished=timezone.now(), message=f"{type(exc).__name__}: {exc}"
        )
        job.refresh_from_db()
        return job
    Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
        status=JobStatus.SUCCEEDED, finished=timezone.now(), result=result
    )
    job.refresh_from_db()
    return job
