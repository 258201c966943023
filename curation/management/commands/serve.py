"""Run the whole service in one terminal: bootstrap, job workers and the web server.

The command supervises its children: Ctrl-C or SIGTERM stops them all cleanly, and a child
that dies (a crashed or killed worker, a web server that exited) is started again, with a
growing delay between quick deaths, while the others keep running. A job that a dead
worker held is taken up again from its last checkpoint once its heartbeat is stale
(NUCLEUS_STALLED_JOB_SECONDS).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from curation.jobs import job_queues
from curation.management.commands.bootstrap import (
    ADMIN_USERNAME,
    credentials_path,
    pending_demo_job,
    saved_credentials,
)
from curation.models import Item, Job

MANAGE_PY = Path(settings.BASE_DIR) / "manage.py"


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the supervisor dies without stopping us (Linux only)."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


def restart_delay(failures: int, *, first: float = 1.0, most: float = 30.0) -> float:
    """Seconds to wait before the `failures`-th restart in a row: 1, 2, 4, ... up to `most`."""
    return float(min(most, first * 2 ** max(0, failures - 1)))


@dataclass
class Supervisor:
    """Start child processes, restart those that die, and stop them all together.

    A child that dies (crash, OOM kill, kill -9) is started again after a delay that
    doubles with each quick death in a row (restart_delay), so a child that cannot start
    (port taken, database gone for good) does not spin; one that stayed up for
    `stable_seconds` counts as healthy again and its next restart is quick.
    """

    commands: Sequence[tuple[str, list[str]]]
    cwd: Path | None = None
    grace_seconds: float = 15.0
    say: Callable[[str], None] = print
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    stop_signal: int | None = None
    first_delay: float = 1.0
    max_delay: float = 30.0
    stable_seconds: float = 60.0
    restarts: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    started_at: dict[str, float] = field(default_factory=dict)
    restart_at: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        for name, _ in self.commands:
            self._spawn(name)

    def _spawn(self, name: str) -> None:
        argv = dict(self.commands)[name]
        # Their own process group: a Ctrl-C in the terminal reaches only the supervisor,
        # which forwards one SIGTERM, instead of every process getting SIGINT at once.
        self.procs[name] = subprocess.Popen(  # noqa: S603 - argv built from our own paths
            argv, cwd=self.cwd, process_group=0, preexec_fn=_die_with_parent
        )
        self.started_at[name] = time.monotonic()

    def dead(self) -> tuple[str, int] | None:
        """The first child that has exited and is not yet due for a restart, with its status."""
        for name, proc in self.procs.items():
            code = proc.poll()
            if code is not None and name not in self.restart_at:
                return name, code
        return None

    def revive(self) -> None:
        """Schedule a restart of each newly dead child; start those whose delay is over."""
        while (dead := self.dead()) is not None:
            name, code = dead
            lived = time.monotonic() - self.started_at.get(name, 0.0)
            quick = lived < self.stable_seconds
            self.failures[name] = self.failures.get(name, 0) + 1 if quick else 1
            delay = restart_delay(self.failures[name], first=self.first_delay, most=self.max_delay)
            self.say(f"{name} exited with status {code}; restarting it in {delay:.0f} s")
            self.restart_at[name] = time.monotonic() + delay
        for name, when in list(self.restart_at.items()):
            if time.monotonic() >= when:
                del self.restart_at[name]
                self.restarts[name] = self.restarts.get(name, 0) + 1
                self._spawn(name)
                self.say(f"{name} restarted (restart {self.restarts[name]})")

    def kill(self, name: str) -> None:
        """SIGKILL a hung child and its own children (its process group); revive() restarts it."""
        proc = self.procs[name]
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM every child, wait for them, SIGKILL those that outlive the grace period."""
        self.restart_at.clear()
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_seconds
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"{name} did not stop within {self.grace_seconds:.0f} s; killing it")
                proc.kill()
                proc.wait()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop_signal = signum

    def run(self, *, tick: Callable[[], None] | None = None, interval: float = 0.5) -> int:
        """Supervise, restarting dead children, until SIGINT or SIGTERM; then stop all."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            if not self.procs:
                self.start()
            while self.stop_signal is None:
                self.revive()
                if tick is not None:
                    tick()
                time.sleep(interval)
            self.say(f"{signal.Signals(self.stop_signal).name} received; stopping ...")
            self.stop()
            return 0
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def _bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _accepting(host: str, port: int) -> bool:
    target = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)  # noqa: S104
    try:
        with socket.create_connection((target, port), timeout=0.5):
            return True
    except OSError:
        return False


class DemoProgress:
    """Print the demo ingest's progress now and then, until it finishes."""

    def __init__(self, say: Callable[[str], None], every_seconds: float = 5.0) -> None:
        self.say = say
        self.every = every_seconds
        self.job = pending_demo_job()
        self.last_report = 0.0
        self.last_line = ""

    def __call__(self) -> None:
        if self.job is None or time.monotonic() - self.last_report < self.every:
            return
        self.last_report = time.monotonic()
        try:
            job = Job.objects.filter(pk=self.job.pk).first()
            finished = job is not None and job.is_finished
            dataset_id = self.job.dataset_id  # an ingest job always has one
            items = (
                Item.objects.filter(dataset_id=dataset_id).count()
                if finished and dataset_id is not None
                else 0
            )
        except DatabaseError:
            return  # the next tick tries again; a database outage shows in the children
        if job is None:
            self.job = None
            return
        total = f"/{job.progress_total}" if job.progress_total else ""
        if finished:
            line = f"demo ingest {job.status}: {items} items, {job.error_count} per-item errors"
            if job.message:
                line += f" ({job.message})"
            self.job = None
        else:
            line = f"demo ingest: {job.progress_done}{total} records processed ({job.status})"
        if line != self.last_line:
            self.say(line)
            self.last_line = line


class WhenReady:
    """A supervisor tick: print the banner once the web server answers, then `then`."""

    def __init__(
        self,
        host: str,
        port: int,
        banner: Callable[[], None],
        *,
        then: Callable[[], None],
        say: Callable[[str], None],
    ) -> None:
        self.host, self.port = host, port
        self.banner, self.then, self.say = banner, then, say
        self.ready = False
        self.warn_at = time.monotonic() + 60

    def __call__(self) -> None:
        if self.ready:
            self.then()
        elif _accepting(self.host, self.port):
            self.ready = True
            self.banner()
        elif time.monotonic() > self.warn_at:
            self.say(f"the web server does not answer on port {self.port} yet; still waiting ...")
            self.warn_at = time.monotonic() + 60


class HealthWatch:
    """A supervisor tick: poll the web server's /healthz, say when health changes, and
    restart a web server that has stopped answering (hung, not dead: a dead one is
    restarted by the supervisor at once)."""

    def __init__(
        self,
        supervisor: Supervisor,
        name: str,
        host: str,
        port: int,
        *,
        say: Callable[[str], None],
        every: float = 15.0,
        misses: int = 3,
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        target = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)  # noqa: S104
        self.url = f"http://{_bind_address(target, port)}/healthz"
        self.supervisor, self.name, self.say = supervisor, name, say
        self.every, self.misses, self.ready = every, misses, ready
        self.missed = 0
        self.next_check: float | None = None
        self.last: str | None = None

    def _get(self) -> tuple[int, dict[str, Any]] | None:
        try:
            with urllib.request.urlopen(self.url, timeout=10) as response:  # noqa: S310 - our own URL
                return int(response.status), json.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                return int(exc.code), json.loads(exc.read())
            except ValueError:
                return int(exc.code), {}
        except (OSError, ValueError):
            return None

    def __call__(self) -> None:
        if not self.ready():
            return
        if self.next_check is None:
            # The first look one period after the web server answers: workers that are
            # still importing have sent no heartbeat yet, and a fresh start is not news.
            self.next_check = time.monotonic() + self.every
        if time.monotonic() < self.next_check:
            return
        self.next_check = time.monotonic() + self.every
        answer = self._get()
        if answer is None:
            self.missed += 1
            if self.missed >= self.misses and self.supervisor.procs[self.name].poll() is None:
                self.say(
                    f"{self.name} has not answered {self.url} {self.missed} times in a row; "
                    "restarting it"
                )
                self.supervisor.kill(self.name)
                self.missed = 0
            return
        self.missed = 0
        _, report = answer
        failing = [
            part for part in ("database", "workers", "disk") if not report.get(part, {}).get("ok")
        ]
        state = "healthy" if not failing else "unhealthy: " + ", ".join(failing)
        if state != self.last and (self.last is not None or failing):
            self.say(f"health: {state} ({self.url})")
        self.last = state


def web_processes_default() -> int:
    """NUCLEUS_WEB_PROCESSES, or gunicorn's rule of thumb: 2 x cores + 1 (at most 17)."""
    if settings.NUCLEUS_WEB_PROCESSES:
        return int(settings.NUCLEUS_WEB_PROCESSES)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(2 * (cores or 1) + 1, 17)


def web_server_argv(host: str, port: int, *, processes: int, threads: int) -> list[str]:
    """The web server's command line (gunicorn, gthread workers); bench/ingest.py starts
    the same one."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "nucleus.wsgi:application",
        "--bind",
        _bind_address(host, port),
        "--workers",
        str(processes),
        "--threads",
        str(threads),
        "--worker-class",
        "gthread",
        # Bulk uploads of 10,000 rows and big manifests take a while.
        "--timeout",
        "300",
        "--graceful-timeout",
        "10",
        "--log-level",
        "warning",
    ]


class Command(BaseCommand):
    help = (
        "Bootstrap the database, then run the job workers and the web server until Ctrl-C. "
        "This is what `make run` does."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--workers",
            type=int,
            default=1,
            help="Job worker processes per queue (default 1; queues: default, embed).",
        )
        parser.add_argument(
            "--web-processes",
            type=int,
            default=None,
            help="Gunicorn processes (default NUCLEUS_WEB_PROCESSES, or 2 x cores + 1).",
        )
        parser.add_argument(
            "--threads",
            type=int,
            default=None,
            help="Threads per web process (default NUCLEUS_WEB_THREADS, 2).",
        )
        parser.add_argument("--no-demo", action="store_true", help="Never create the demo dataset.")
        parser.add_argument(
            "--demo-count", type=int, default=2000, help="Images in the demo (default 2000)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        host, port = options["host"], options["port"]
        if options["web_processes"] is None:
            options["web_processes"] = web_processes_default()
        if options["threads"] is None:
            options["threads"] = settings.NUCLEUS_WEB_THREADS
        for name in ("workers", "web_processes", "threads"):
            if options[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} must be at least 1")
        if not _port_free(host, port):
            raise CommandError(
                f"Port {port} on {host} is in use (another nucleus?). Stop it, or pick another "
                f"port: make run PORT={port + 1}"
            )
        shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
        base = f"http://{_bind_address(shown_host, port)}"
        # What the children put in links made outside a request (export files, job
        # results): this address, unless SITE_URL names another (a proxy in front).
        os.environ.setdefault("SITE_URL", base)
        call_command(
            "bootstrap",
            no_demo=options["no_demo"],
            demo_count=options["demo_count"],
            base_url=base,
            stdout=self.stdout,
            stderr=self.stderr,
        )
        progress = DemoProgress(self._say)

        python = sys.executable
        # Workers for each queue: a short ingest or export starts at once on its own
        # worker while an embedding job keeps another busy for an hour.
        queues = job_queues()
        commands = [
            (
                f"job worker {i + 1} ({queue})",
                [python, str(MANAGE_PY), "worker", "--queue", queue],
            )
            for queue in queues
            for i in range(options["workers"])
        ]
        commands.append(
            (
                "web server",
                web_server_argv(
                    host, port, processes=options["web_processes"], threads=options["threads"]
                ),
            )
        )
        supervisor = Supervisor(commands, cwd=Path(settings.BASE_DIR), say=self._say)
        banner = partial(
            self._banner,
            base,
            options["workers"],
            queues,
            progress.job is not None,
            f"{options['web_processes']} processes x {options['threads']} threads",
        )
        ready = WhenReady(host, port, banner, then=progress, say=self._say)
        health = HealthWatch(
            supervisor, "web server", host, port, say=self._say, ready=lambda: ready.ready
        )

        def tick() -> None:
            ready()
            health()

        supervisor.run(tick=tick)
        self._say("stopped.")

    def _say(self, message: str) -> None:
        self.stdout.write(message)
        self.stdout.flush()

    def _banner(
        self, base: str, workers: int, queues: list[str], ingesting: bool, web: str
    ) -> None:
        password = (
            f"the password printed on first start, kept in {credentials_path()}"
            if "password" in saved_credentials()
            else "its password (manage.py changepassword admin sets a new one)"
        )
        lines = [
            "",
            self.style.SUCCESS(f"nucleus is running at {base}/"),
            f"  curation UI {base}/   log in as {ADMIN_USERNAME!r} with {password}",
            f"  admin       {base}/admin/   (same login)",
            f"  API docs    {base}/api/docs/   (token: same file, or create one at {base}/tokens/)",
            f"  web server  {web} (--web-processes N, --threads N)",
            f"  job workers {workers} per queue ({', '.join(queues)}; more: --workers N, or "
            "`manage.py worker` on other machines)",
        ]
        if ingesting:
            lines.append(
                "  The demo dataset is being ingested; progress is printed below and shown "
                "by the jobs API and the admin."
            )
        lines.append("Press Ctrl-C to stop.")
        self._say("\n".join(lines))
