"""What an operator (and `manage.py serve`) needs to know is alive: the database, the job
workers, the queue, and free disk space; and the guard that keeps a full disk from taking
the service down.

A full disk is the one failure that is not survived by restarting: PostgreSQL PANICs when
it cannot write WAL, and every process after it fails. So jobs that write (ingest, export,
embeddings) refuse to start below a configured floor of free space
(NUCLEUS_MIN_FREE_DISK_MB), leaving the room to PostgreSQL, and a job that runs out anyway
is paused and queued again instead of crashing (curation.jobs).
"""

from __future__ import annotations

import errno
import os
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.storage import FileSystemStorage, default_storage
from django.db import DatabaseError, connection
from django.http import HttpRequest
from django.utils import timezone
from rest_framework import status

from curation.errors import CurationError

# PostgreSQL's SQLSTATE for "could not extend file ... No space left on device".
DISK_FULL_SQLSTATE = "53100"
_MB = 1024 * 1024


class InsufficientStorage(CurationError):
    """Free disk space is below NUCLEUS_MIN_FREE_DISK_MB: no new work that writes."""

    status_code = status.HTTP_507_INSUFFICIENT_STORAGE
    code = "insufficient_storage"


@dataclass(frozen=True)
class DiskStatus:
    free_mb: int
    floor_mb: int

    @property
    def low(self) -> bool:
        return self.free_mb < self.floor_mb


def data_paths() -> list[Path]:
    """The directories the service writes to: the data directory and local media."""
    paths = [Path(settings.DATA_DIR)]
    if isinstance(default_storage, FileSystemStorage):
        paths.append(Path(default_storage.location))
    return paths


def _free_bytes(path: Path) -> int:
    """Free bytes on the filesystem that holds `path` (or its nearest existing parent)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def disk_status() -> DiskStatus:
    """The least free space over the service's data paths, and the configured floor."""
    free = min(_free_bytes(path) for path in data_paths())
    return DiskStatus(free_mb=free // _MB, floor_mb=settings.NUCLEUS_MIN_FREE_DISK_MB)


def disk_space_require() -> None:
    """Raise InsufficientStorage when free space is below the floor."""
    disk = disk_status()
    if disk.low:
        raise InsufficientStorage(
            f"Not enough free disk space to start this job: {disk.free_mb} MB free under the "
            f"data directory, below the floor of {disk.floor_mb} MB (NUCLEUS_MIN_FREE_DISK_MB). "
            "Free space (or lower the floor) and try again."
        )


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` is a write that failed for lack of space (a file or the database)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if getattr(current, "sqlstate", None) == DISK_FULL_SQLSTATE:
            return True
        current = current.__cause__ or current.__context__
    return False


def health_report() -> tuple[bool, dict[str, Any]]:
    """Whether the service is healthy, and the summary `/healthz` returns.

    Unhealthy: the database does not answer (a broken connection is closed, so the next
    check connects afresh), no job worker sent a heartbeat within
    NUCLEUS_STALLED_JOB_SECONDS, or free disk is below the floor. No dataset data in it.
    """
    disk = disk_status()
    report: dict[str, Any] = {
        "database": {"ok": True},
        "disk": {"ok": not disk.low, **asdict(disk)},
    }
    report["workers"] = {"ok": False, "alive": None}
    report["queues"] = None
    try:
        since = timezone.now() - timedelta(seconds=settings.NUCLEUS_STALLED_JOB_SECONDS)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM procrastinate_workers WHERE last_heartbeat >= %s", [since]
            )
            alive = cursor.fetchone()[0]
            cursor.execute(
                "SELECT queue_name, status, count(*) FROM procrastinate_jobs "
                "WHERE status IN ('todo', 'doing') GROUP BY queue_name, status"
            )
            depth: dict[str, dict[str, int]] = {}
            for queue, state, count in cursor.fetchall():
                depth.setdefault(queue, {"todo": 0, "doing": 0})[state] = count
        report["workers"] = {"ok": alive > 0, "alive": alive}
        report["queues"] = depth
    except DatabaseError:
        connection.close()
        report["database"]["ok"] = False
    healthy = all(report[part]["ok"] for part in ("database", "disk", "workers"))
    report["status"] = "ok" if healthy else "unhealthy"
    return healthy, report


def disk_context(request: HttpRequest) -> dict[str, Any]:
    """Template context: `disk_low` (a DiskStatus) when space is below the floor."""
    if not request.user.is_authenticated:
        return {}
    disk = disk_status()
    return {"disk_low": disk} if disk.low else {}
