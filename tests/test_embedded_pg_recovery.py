"""After a crash the embedded server replays its WAL before it accepts connections; a
start waits for that recovery (and says so) instead of failing when pg_ctl gives up."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.worker_support import HANG_GUARD, ROOT

pytestmark = pytest.mark.slow

# Start (or join) the server of a data directory in a fresh process, as web, worker or
# manage.py would, with the service's logging.
PRELUDE = """
import os, sys, django
from pathlib import Path
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nucleus.settings")
django.setup()
import psycopg
from nucleus.embedded_pg.base import ensure_server
pgdata = Path(sys.argv[1])
host = ensure_server(pgdata)
conn = psycopg.connect(host=host, dbname="postgres", user="postgres", autocommit=True)
"""

WRITE_AND_CRASH = (
    PRELUDE
    + """
import json, signal, psutil
conn.execute("CREATE TABLE kept (n int)")
conn.execute("INSERT INTO kept SELECT generate_series(1, 5000)")
pid = int((pgdata / "postmaster.pid").read_text().split()[0])
children = [p.pid for p in psutil.Process(pid).children()]
os.kill(pid, signal.SIGKILL)  # a crash: no shutdown checkpoint
print(json.dumps([pid, *children]), flush=True)
os._exit(0)  # and this process vanishes too, as a killed worker would
"""
)

COUNT = (
    PRELUDE
    + """
print(conn.execute("SELECT count(*) FROM kept").fetchone()[0], flush=True)
"""
)


def run_python(code: str, pgdata: Path, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, str(pgdata)],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
def pgdata() -> Iterator[Path]:
    """A scratch data directory under the checkout's var/, not the shared /tmp: another
    pytest session resets the mode of /tmp/pytest-of-<user> to 0700, which locks out the
    server's own user (pgserver runs it as `pgserver` when started by root)."""
    scratch = Path(tempfile.mkdtemp(prefix="recovery-test-", dir=ROOT / "var"))
    yield scratch / "pg"
    shutil.rmtree(scratch, ignore_errors=True)


def test_a_start_waits_for_crash_recovery_that_outlasts_pg_ctl(pgdata: Path) -> None:
    crash = run_python(WRITE_AND_CRASH, pgdata)
    out, err = crash.communicate(timeout=HANG_GUARD)
    assert crash.returncode == 0, err
    gone = [psutil.Process(pid) for pid in json.loads(out) if psutil.pid_exists(pid)]
    psutil.wait_procs(gone, timeout=HANG_GUARD)  # its backends notice and exit

    # Keep the recovery genuinely in progress until the test lets it go: an archive
    # recovery whose restore_command waits for a file. pg_ctl gives up on it after 10 s.
    release = pgdata / "release-recovery"
    (pgdata / "recovery.signal").touch()
    with (pgdata / "postgresql.auto.conf").open("a") as conf:
        conf.write(
            f"restore_command = 'while [ ! -e {release} ]; do sleep 0.1; done; false'\n"
            "recovery_target_timeline = 'latest'\n"
        )

    start = run_python(COUNT, pgdata)
    try:
        assert start.stderr is not None
        seen = []
        for line in start.stderr:
            seen.append(line)
            if "database is recovering, waiting" in line:
                break
        else:
            raise AssertionError("no word of the recovery:\n" + "".join(seen))
        # pg_ctl gave up on the recovery (the package logs its failure): the old code
        # failed the start here.
        assert "Failed to start server" in "".join(seen)
    finally:
        release.touch()
        try:
            out, err = start.communicate(timeout=HANG_GUARD)
        except subprocess.TimeoutExpired:
            start.kill()
            raise
    assert start.returncode == 0, "".join(seen) + err
    assert out.strip() == "5000"  # what was written before the crash survived it
    assert "database recovered and ready" in err
