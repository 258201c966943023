"""Real job workers (and a real `manage.py serve`) against the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from django.db import connection
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
HANG_GUARD = 180  # seconds: only stops a hung test, never judges speed


def make_folder(root: Path, count: int, name: str = "frames") -> Path:
    folder = root / name
    for i in range(count):
        label = ("car", "truck", "bus")[i % 3]
        sub = folder / label
        sub.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (48, 32), (i % 256, (7 * i) % 256, 90)).save(sub / f"{i:04d}.jpg")
    return folder


def wait_for(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + HANG_GUARD
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def worker_env(media: Path, import_root: Path) -> dict[str, str]:
    """Settings for a child process that works on the test database and folders."""
    env = dict(os.environ)
    if env.get("DATABASE_URL"):
        # An external server (tests/pgvector_legacy.py): the same URL, the test database.
        url = urlsplit(env["DATABASE_URL"])
        env["DATABASE_URL"] = urlunsplit(url._replace(path="/" + connection.settings_dict["NAME"]))
    return {
        **env,
        "NUCLEUS_DB_NAME": connection.settings_dict["NAME"],
        "NUCLEUS_MEDIA_ROOT": str(media),
        "NUCLEUS_IMPORT_ROOTS": str(import_root),
        "NUCLEUS_INGEST_CHUNK": "5",
        # A killed worker's job is taken up again after this long without a heartbeat.
        "NUCLEUS_STALLED_JOB_SECONDS": "3",
        "PYTHONUNBUFFERED": "1",
    }


class Workers:
    """Start and stop `manage.py worker` processes against the test database."""

    def __init__(self, media: Path, import_root: Path) -> None:
        self.env = worker_env(media, import_root)
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *queues: str) -> subprocess.Popen[bytes]:
        queue_args = [arg for queue in queues for arg in ("--queue", queue)]
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "worker", *queue_args],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(name="workers")
def workers_fixture(_media_in_tmp: Path, import_root: Path) -> Iterator[Workers]:
    w = Workers(_media_in_tmp, import_root)
    yield w
    w.stop_all()


def waiting_on_a_lock(holder: psycopg.Connection[Any]) -> bool:
    """Whether another session waits for a lock that `holder`'s session holds.

    Asked on the test's own connection (autocommit): inside the holder's transaction,
    PostgreSQL would keep showing the activity it saw first.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
            [holder.info.backend_pid],
        )
        row = cursor.fetchone()
    return bool(row and row[0])
