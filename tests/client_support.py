"""Fixtures shared by the client and CLI tests: a live server, tokens, an in-process worker."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection

from curation.jobs import job_run
from curation.models import Job, JobStatus
from curation.services import token_create
from nucleus.client import NucleusClient


@pytest.fixture(name="server")
def server_fixture(live_server: object) -> str:
    return str(live_server.url)  # type: ignore[attr-defined]


@pytest.fixture(name="token_of")
def token_of_fixture(db: None) -> Callable[[User], str]:
    """A fresh API token secret of a user."""

    def make(user: User) -> str:
        return token_create(user=user, name="client test")[1]

    return make


@pytest.fixture(name="client_of")
def client_of_fixture(
    server: str, token_of: Callable[[User], str]
) -> Iterator[Callable[..., NucleusClient]]:
    """A NucleusClient talking to the live server as `user` (no waiting between retries)."""
    made: list[NucleusClient] = []

    def make(user: User | None, **options: Any) -> NucleusClient:
        options = {"backoff": 0, "token": None if user is None else token_of(user), **options}
        made.append(NucleusClient(server, **options))
        return made[-1]

    yield make
    # A kept-alive HTTP connection holds a server thread and its database connection open;
    # the thread closes it once the socket closes. Wait for that (bounded), so the test
    # database can be dropped at the end of the session.
    for client in made:
        client.close()
    with connection.cursor() as cursor:
        for _ in range(50):
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0] == 0:
                break
            time.sleep(0.1)


class InProcessWorker:
    """Run queued jobs with the real job runner in a thread, standing in for `manage.py worker`."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> InProcessWorker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _loop(self) -> None:
        try:
            while not self._stop.wait(0.05):
                queued = Job.objects.filter(status=JobStatus.QUEUED).values_list("pk", flat=True)
                for job_id in list(queued):
                    job_run(job_id=job_id)
        finally:
            connection.close()


@pytest.fixture(name="worker")
def worker_fixture(transactional_db: None) -> Iterator[InProcessWorker]:
    running = InProcessWorker().start()
    yield running
    running.stop()
