"""Background jobs: the Job row users see, and the runner the worker calls.

A job kind registers a runner with ``@job_runner("kind")``. The runner receives a
``JobContext`` and commits its work in steps with ``ctx.checkpoint(...)``: the data written
by a step and the job's progress/state commit in the same transaction, so a job that is
interrupted (worker killed, machine restarted) resumes from its last checkpoint on the next
attempt, losing nothing and doing nothing twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone
from procrastinate.contrib.django import app

from curation.db import is_transient
from curation.errors import Conflict
from curation.health import disk_space_require, disk_status, is_disk_full
from curation.models import Dataset, Job, JobStatus
from curation.signals import job_succeeded

logger = logging.getLogger(__name__)

Runner = Callable[["JobContext"], dict[str, Any] | None]
_RUNNERS: dict[str, Runner] = {}
# The procrastinate queue of each job kind. Kinds on different queues run on different
# workers (`manage.py serve` starts workers for each queue), so a short ingest or export
# never waits behind an embedding job that takes an hour.
DEFAULT_QUEUE = "default"
_QUEUES: dict[str, str] = {}
# The procrastinate task that runs a Job (curation.tasks.run_job).
RUN_JOB_TASK = "nucleus.run_job"


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
    # By name: curation.tasks (registered from CurationConfig.ready()) builds on this module.
    # allow_unknown=False: an unregistered task fails here, not silently in the worker.
    app.configure_task(
        RUN_JOB_TASK, allow_unknown=False, queue=_QUEUES.get(job.kind, DEFAULT_QUEUE), **options
    ).defer(job_id=job.pk)


def job_cancel(*, job: Job) -> Job:
    """Ask a job to stop; a running job stops at its next checkpoint."""
    updated = (
        Job.objects.active()
        .filter(pk=job.pk)
        .update(status=JobStatus.CANCELLED, finished=timezone.now(), message="Cancelled by user.")
    )
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
        # A JSONField is Any to the stubs; the job's params and state are always objects.
        return cast(dict[str, Any], self.job.params)

    @property
    def state(self) -> dict[str, Any]:
        return cast(dict[str, Any], self.job.state)

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


class JobTakenOver(Exception):
    """Another runner holds the job now: this one lost its session, and the job's lock."""


# Namespace of the session advisory lock a runner holds on its job (pg_advisory_lock's
# first key; the job id is the second).
_JOB_LOCK_SPACE = 0x6A6F62


def _job_lock(job_id: int, *, wait: bool) -> bool:
    """Hold the job's advisory lock for this database session; False if another has it.

    A job is retried when its worker stops sending heartbeats, which also happens to a
    worker that lost the database for a while and is still running the job. The lock keeps
    the two from running it at once: the retry waits until the first runner finishes or
    dies (its session ends and PostgreSQL drops the lock).
    """
    sql = "SELECT pg_advisory_lock(%s, %s), true" if wait else "SELECT pg_try_advisory_lock(%s, %s)"
    with connection.cursor() as cursor:
        cursor.execute(sql, [_JOB_LOCK_SPACE, job_id])
        return bool(cursor.fetchone()[-1])


def _job_unlock(job_id: int) -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_JOB_LOCK_SPACE, job_id])
    except (OperationalError, InterfaceError):
        pass  # the session is gone, and its locks with it


def _connection_lost(exc: BaseException) -> bool:
    """Whether `exc` means the database session is gone (server restart, network cut)."""
    if not isinstance(exc, OperationalError | InterfaceError) or is_transient(exc):
        return False
    if connection.connection is None:
        return True
    try:
        return not connection.is_usable()
    except Exception:
        return True


def database_reconnect(*, what: str) -> None:
    """Drop the dead session and connect again, waiting while the server restarts.

    Gives up (raises OperationalError) after NUCLEUS_DB_RECONNECT_SECONDS.
    """
    deadline = time.monotonic() + settings.NUCLEUS_DB_RECONNECT_SECONDS
    delay = 0.2
    while True:
        try:
            connection.close()
        except (OperationalError, InterfaceError):
            connection.connection = None
        try:
            connection.ensure_connection()
            logger.info("%s reconnected to the database", what)
            return
        except OperationalError as exc:
            if time.monotonic() + delay > deadline:
                raise
            logger.warning(
                "%s: database unreachable (%s); trying again in %.1f s", what, exc, delay
            )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def _resume_after(exc: BaseException, job: Job) -> bool:
    """After a transient error or a lost database session, get ready to resume `job`.

    Returns False for any other error. Raises JobTakenOver when, while this runner had no
    session, another took the job's lock (a retry of the job by another worker).
    """
    if isinstance(exc, OperationalError) and is_transient(exc):
        logger.warning("%s hit %s; resuming from its last checkpoint", job, exc)
        return True
    if not _connection_lost(exc):
        return False
    logger.warning("%s lost its database session (%s); reconnecting", job, exc)
    database_reconnect(what=str(job))
    if not _job_lock(job.pk, wait=False):
        raise JobTakenOver()
    logger.warning("%s resumes from its last checkpoint", job)
    return True


def _run_resuming(runner: Runner, job: Job, attempts: int = 4) -> dict[str, Any]:
    """Run `runner`; after a deadlock, a serialisation failure or a database restart,
    resume it.

    Such an error rolls back only the checkpoint in progress, and a runner resumes from
    the last committed one, so running it again loses nothing and repeats nothing.
    """
    for attempt in range(1, attempts + 1):
        try:
            return runner(JobContext(job)) or {}
        except (OperationalError, InterfaceError) as exc:
            if attempt == attempts or not _resume_after(exc, job):
                raise
            job.refresh_from_db()
    raise AssertionError("unreachable")


def _job_finish(job: Job, **fields: Any) -> None:
    """Record how a running job ended, reconnecting once if the session was lost."""
    try:
        Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(**fields)
    except (OperationalError, InterfaceError) as exc:
        if not _resume_after(exc, job):
            raise
        Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(**fields)


def job_run(*, job_id: int) -> Job | None:
    """Run (or resume) a job. Called by the worker; safe to call again after a crash."""
    _job_lock(job_id, wait=True)
    try:
        return _job_run_locked(job_id)
    except JobTakenOver:
        logger.warning("job %s is run by another worker now; leaving it to that one", job_id)
        return Job.objects.filter(pk=job_id).first()
    finally:
        _job_unlock(job_id)


def _job_run_locked(job_id: int) -> Job | None:
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
    except JobTakenOver:
        raise
    except Exception as exc:
        if is_disk_full(exc):
            # What the step in progress wrote was rolled back with its checkpoint; the
            # next attempt starts from the last one that committed.
            _job_pause_for_disk(job, f"the disk is full ({exc})")
            job.refresh_from_db()
            return job
        logger.exception("%s failed", job)
        _job_finish(
            job,
            status=JobStatus.FAILED,
            finished=timezone.now(),
            message=f"{type(exc).__name__}: {exc}",
        )
        job.refresh_from_db()
        return job
    _job_finish(job, status=JobStatus.SUCCEEDED, finished=timezone.now(), result=result)
    job.refresh_from_db()
    if job.status == JobStatus.SUCCEEDED:
        for receiver, answer in job_succeeded.send_robust(sender=Job, job=job):
            if isinstance(answer, Exception):
                logger.error("after %s: %s failed", job, receiver, exc_info=answer)
    return job
