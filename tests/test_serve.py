"""The process supervisor behind `manage.py serve` (and so `make run`)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from curation.management.commands.serve import Supervisor

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


def test_a_dying_child_stops_the_others_and_fails() -> None:
    messages: list[str] = []
    supervisor = Supervisor(
        [("sleeper", SLEEP), ("crasher", [sys.executable, "-c", "raise SystemExit(3)"])],
        say=messages.append,
    )
    assert supervisor.run(interval=0.05) == 1
    assert supervisor.procs["sleeper"].returncode == -signal.SIGTERM
    assert supervisor.procs["crasher"].returncode == 3
    assert any("crasher exited with status 3" in m for m in messages)


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
