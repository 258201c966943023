"""The process supervisor behind `manage.py serve` (and so `make run`)."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from curation.management.commands.serve import (
    HealthWatch,
    Supervisor,
    restart_delay,
    web_processes_default,
)

pytestmark = pytest.mark.slow

SLEEP = [sys.executable, "-c", "import time; time.sleep(120)"]
HANG_GUARD = 30  # seconds: only stops a hung test, never judges speed


def trap_term(flag: Path) -> list[str]:
    """A child that records a SIGTERM in `flag` and exits 0."""
    code = (
        "import signal, sys, time, pathlib\n"
        "def stop(*_):\n"
        f"    pathlib.Path({str(flag)!r}).write_text('stopped')\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "time.sleep(120)\n"
    )
    return [sys.executable, "-c", code]


def wait_for_sigterm_handler(pid: int) -> None:
    """Wait until the child has set its SIGTERM disposition (caught or ignored)."""
    mask = 1 << (signal.SIGTERM - 1)
    deadline = time.monotonic() + HANG_GUARD
    while time.monotonic() < deadline:
        fields = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        )
        if (int(fields["SigCgt"], 16) | int(fields["SigIgn"], 16)) & mask:
            return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} never set up its SIGTERM handler")


def test_a_dying_child_is_restarted_and_the_others_keep_running(tmp_path: Path) -> None:
    # The crasher records each start and dies the first two times, as a worker killed by
    # the OOM killer or a kill -9 would; the third start stays up.
    starts = tmp_path / "starts"
    crasher = [
        sys.executable,
        "-c",
        "import pathlib, time\n"
        f"p = pathlib.Path({str(starts)!r})\n"
        "n = len(p.read_text()) if p.exists() else 0\n"
        "p.write_text('x' * (n + 1))\n"
        "raise SystemExit(3) if n < 2 else time.sleep(120)\n",
    ]
    messages: list[str] = []
    supervisor = Supervisor(
        [("sleeper", SLEEP), ("crasher", crasher)], say=messages.append, first_delay=0.01
    )
    sleeper_pid: list[int] = []

    def tick() -> None:
        if not sleeper_pid:
            sleeper_pid.append(supervisor.procs["sleeper"].pid)
        third_up = starts.exists() and starts.read_text() == "xxx"
        if third_up and supervisor.procs["crasher"].poll() is None:
            os.kill(os.getpid(), signal.SIGTERM)

    assert supervisor.run(tick=tick, interval=0.01) == 0
    assert starts.read_text() == "xxx"
    assert supervisor.restarts == {"crasher": 2}
    assert supervisor.procs["sleeper"].pid == sleeper_pid[0]  # never restarted
    assert supervisor.procs["sleeper"].returncode == -signal.SIGTERM
    assert sum("crasher exited with status 3; restarting it in" in m for m in messages) == 2
    assert "crasher restarted (restart 2)" in messages


def test_restarts_back_off_after_quick_deaths() -> None:
    assert [restart_delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert restart_delay(3, first=0.5, most=60) == 2


def test_sigterm_is_forwarded_and_the_run_ends_cleanly(tmp_path: Path) -> None:
    flags = [tmp_path / "a", tmp_path / "b"]
    supervisor = Supervisor([("a", trap_term(flags[0])), ("b", trap_term(flags[1]))], say=print)
    sent = False

    def tick() -> None:
        nonlocal sent
        if not sent:
            sent = True
            for proc in supervisor.procs.values():
                wait_for_sigterm_handler(proc.pid)
            os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    assert supervisor.run(tick=tick, interval=0.05) == 0
    assert [f.read_text() for f in flags] == ["stopped", "stopped"]
    assert all(p.returncode == 0 for p in supervisor.procs.values())
    assert signal.getsignal(signal.SIGTERM) is previous


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period() -> None:
    stubborn = [
        sys.executable,
        "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)",
    ]
    supervisor = Supervisor([("stubborn", stubborn)], grace_seconds=0.5, say=print)
    supervisor.start()
    wait_for_sigterm_handler(supervisor.procs["stubborn"].pid)
    supervisor.stop()
    assert supervisor.procs["stubborn"].returncode == -signal.SIGKILL


def test_children_run_in_their_own_process_group() -> None:
    # So a Ctrl-C in the terminal reaches only the supervisor, which forwards one SIGTERM.
    supervisor = Supervisor([("sleeper", SLEEP)], say=print)
    supervisor.start()
    try:
        pid = supervisor.procs["sleeper"].pid
        assert os.getpgid(pid) == pid != os.getpgid(0)
    finally:
        supervisor.stop()


def test_a_web_server_that_stops_answering_is_restarted() -> None:
    # A socket bound but not listening: every request to it is refused at once, as a hung
    # or wedged web server's would time out.
    with socket.socket() as mute:
        mute.bind(("127.0.0.1", 0))
        port = mute.getsockname()[1]
        messages: list[str] = []
        supervisor = Supervisor([("web", SLEEP)], say=messages.append, first_delay=0.01)
        watch = HealthWatch(
            supervisor, "web", "127.0.0.1", port, say=messages.append, every=0, misses=2
        )

        def tick() -> None:
            watch()
            if supervisor.restarts.get("web") == 1:
                os.kill(os.getpid(), signal.SIGTERM)

        assert supervisor.run(tick=tick, interval=0.01) == 0
    assert (
        f"web has not answered http://127.0.0.1:{port}/healthz 2 times in a row; restarting it"
        in messages
    )
    assert "web exited with status -9; restarting it in 0 s" in messages


def test_web_processes_follow_the_machine_unless_set(settings: Any, monkeypatch: Any) -> None:
    settings.NUCLEUS_WEB_PROCESSES = 0
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert web_processes_default() == 5  # gunicorn's 2 x cores + 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    assert web_processes_default() == 17  # a bound on connections and memory
    settings.NUCLEUS_WEB_PROCESSES = 3
    assert web_processes_default() == 3
