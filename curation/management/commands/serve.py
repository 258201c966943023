"""Run the whole service in one terminal: bootstrap, job workers and the web server.

The command supervises its children: Ctrl-C or SIGTERM stops them all cleanly, and if one
of them dies the others are stopped and the command exits non-zero, so a process manager
(systemd, a container runtime) sees the failure and can restart the lot.
"""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import sys
import time
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


@dataclass
class Supervisor:
    """Start child processes, watch them, and stop them all together."""

    commands: Sequence[tuple[str, list[str]]]
    cwd: Path | None = None
    grace_seconds: float = 15.0
    say: Callable[[str], None] = print
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    stop_signal: int | None = None

    def start(self) -> None:
        for name, argv in self.commands:
            # Their own process group: a Ctrl-C in the terminal reaches only the supervisor,
            # which forwards one SIGTERM, instead of every process getting SIGINT at once.
            self.procs[name] = subprocess.Popen(  # noqa: S603 - argv built from our own paths
                argv, cwd=self.cwd, process_group=0, preexec_fn=_die_with_parent
            )

    def dead(self) -> tuple[str, int] | None:
        """The first child that has exited, with its exit status."""
        for name, proc in self.procs.items():
            code = proc.poll()
            if code is not None:
                return name, code
        return None

    def stop(self) -> None:
        """SIGTERM every child, wait for them, SIGKILL those that outlive the grace period."""
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
        """Supervise until a signal (returns 0) or until a child dies (returns 1)."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            if not self.procs:
                self.start()
            while self.stop_signal is None:
                dead = self.dead()
                if dead is not None:
                    name, code = dead
                    self.say(f"{name} exited with status {code}; stopping the others")
                    self.stop()
                    return 1
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


class Command(BaseCommand):
    help = (
        "Bootstrap the database, then run the job workers and the web server until Ctrl-C. "
        "This is what `make run` does."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--workers", type=int, default=1, help="Job worker processes (default 1)."
        )
        parser.add_argument(
            "--web-processes", type=int, default=1, help="Gunicorn processes (default 1)."
        )
        parser.add_argument(
            "--threads", type=int, default=4, help="Threads per web process (default 4)."
        )
        parser.add_argument("--no-demo", action="store_true", help="Never create the demo dataset.")
        parser.add_argument(
            "--demo-count", type=int, default=2000, help="Images in the demo (default 2000)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        host, port = options["host"], options["port"]
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
        commands = [
            (
                f"job worker {i + 1}",
                [python, str(MANAGE_PY), "worker"],
            )
            for i in range(options["workers"])
        ]
        commands.append(
            (
                "web server",
                [
                    python,
                    "-m",
                    "gunicorn",
                    "nucleus.wsgi:application",
                    "--bind",
                    _bind_address(host, port),
                    "--workers",
                    str(options["web_processes"]),
                    "--threads",
                    str(options["threads"]),
                    "--worker-class",
                    "gthread",
                    # Bulk uploads of 10,000 rows and big manifests take a while.
                    "--timeout",
                    "300",
                    "--graceful-timeout",
                    "10",
                    "--log-level",
                    "warning",
                ],
            )
        )
        supervisor = Supervisor(commands, cwd=Path(settings.BASE_DIR), say=self._say)
        banner = partial(self._banner, base, options["workers"], progress.job is not None)
        code = supervisor.run(tick=WhenReady(host, port, banner, then=progress, say=self._say))
        if code:
            raise CommandError("a service process died; everything was stopped (see the log above)")
        self._say("stopped.")

    def _say(self, message: str) -> None:
        self.stdout.write(message)
        self.stdout.flush()

    def _banner(self, base: str, workers: int, ingesting: bool) -> None:
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
            f"  job workers {workers} (more: --workers N, or `manage.py worker` on other machines)",
        ]
        if ingesting:
            lines.append(
                "  The demo dataset is being ingested; progress is printed below and shown "
                "by the jobs API and the admin."
            )
        lines.append("Press Ctrl-C to stop.")
        self._say("\n".join(lines))
