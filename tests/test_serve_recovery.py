"""`manage.py serve` outlives its parts: a worker killed with SIGKILL during an ingest is
restarted, the web server keeps answering, and the job finishes with nothing lost or done
twice."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil
import pytest
from django.db import connection

from curation.ingest import ingest_enqueue
from curation.models import Annotation, Item, Job, JobStatus
from tests.worker_support import ROOT, make_folder, wait_for, worker_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """A `manage.py serve` process on the test database, its log in a file."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log

    def children(self, *words: str) -> list[psutil.Process]:
        """Its child processes whose command line has every one of `words`."""
        return [
            child
            for child in psutil.Process(self.proc.pid).children()
            if all(word in child.cmdline() for word in words)
        ]

    def get(self, path: str) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=30) as r:
            return int(r.status)


@pytest.fixture
def served(_media_in_tmp: Path, import_root: Path, tmp_path: Path) -> Iterator[Served]:
    db = connection.settings_dict
    connection.ensure_connection()
    port = free_port()
    env = {
        **worker_env(_media_in_tmp, import_root),
        # The test database through its socket, and a data directory of the test's own (for
        # the admin's credentials file), instead of the checkout's var/.
        "DATABASE_URL": f"postgres://postgres@{quote(db['HOST'], safe='')}/{db['NAME']}",
        "NUCLEUS_DATA_DIR": str(tmp_path / "var"),
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "serve", "--no-demo", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    s = Served(proc, port, log)
    try:
        up = "nucleus is running"
        wait_for(lambda: up in log.read_text() or proc.poll() is not None, "serve to start")
        assert proc.poll() is None, log.read_text()
        yield s
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def test_a_killed_worker_is_restarted_and_its_ingest_finishes(
    served: Served, dataset: Any, alice: Any, import_root: Path
) -> None:
    count = 240
    folder = make_folder(import_root, count)
    web = served.children("gunicorn")
    assert len(web) == 1
    job = ingest_enqueue(
        dataset=dataset,
        user=alice,
        source={"type": "folder", "path": str(folder), "labels_from_folders": True},
    )
    wait_for(lambda: Job.objects.get(pk=job.pk).progress_done >= 20, "the first checkpoints")
    [worker] = served.children("worker", "default")
    worker.kill()
    worker.wait()

    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING
    assert 0 < job.progress_done < count, "the worker must be killed mid-ingest"
    wait_for(
        lambda: "(default) exited with status -9; restarting it" in served.log.read_text(),
        "serve to notice the dead worker",
    )
    assert served.get("/login/") == 200
    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, "the resumed job to finish")

    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.message
    assert job.attempts == 2
    assert job.progress_done == count
    items = Item.objects.filter(dataset=dataset)
    assert items.count() == count
    assert items.values("reference_id").distinct().count() == count
    assert Annotation.objects.filter(dataset=dataset).count() == count
    # The web server answered throughout and was never restarted; serve itself is up.
    assert served.children("gunicorn") == web
    assert served.proc.poll() is None
    assert "(default) restarted (restart 1)" in served.log.read_text()
