"""Django database backend that starts the embedded PostgreSQL (pgserver) on first connect.

Used when DATABASE_URL is unset. The server is shared by every process that uses the same
data directory (web, worker, management commands, tests) and stops when the last one exits.

PostgreSQL's stock settings are sized for a machine of the 1990s (128 MB of shared
buffers, 4 MB of work memory, JIT on), which keeps an HNSW index of a million vectors out
of memory and makes every count at 1M items spill. Before the server starts, this module
writes `nucleus.conf` into the data directory, sized from the memory the server may plan
around, and includes it from `postgresql.conf`. Settings made with ALTER SYSTEM
(`postgresql.auto.conf`) are read after it and still win.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import psycopg
from django.db.backends.postgresql import base as postgresql

# pgserver asks platformdirs for a runtime dir; without XDG_RUNTIME_DIR it warns on every start.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

logger = logging.getLogger("nucleus.embedded_pg")

_lock = threading.Lock()
_servers: dict[Path, Any] = {}

# How often the wait for a recovering server looks again, and how often it says so.
_RECOVERY_POLL_SECONDS = 0.5
_RECOVERY_REPORT_SECONDS = 10.0

SETTINGS_FILE = "nucleus.conf"
_INCLUDE = f"include_if_exists = '{SETTINGS_FILE}'"
_MB = 1024 * 1024


def _machine_memory() -> int:
    """Physical memory, or the cgroup's limit when the process runs under a smaller one."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if raw.isdigit():
            total = min(total, int(raw))
    return total


def server_settings(memory: int, cpus: int) -> dict[str, str]:
    """postgresql.conf settings for a server that may use about `memory` bytes.

    The usual sizing for a dedicated database: a quarter of memory for shared buffers
    (enough for the HNSW graph and vectors of a million 512-d items, about 4 GB, on a
    16 GB machine), the planner told that the OS cache holds most of the rest, SSD page
    costs, and no JIT (its compile time dwarfs the short queries this service runs).
    """
    mb = max(memory // _MB, 512)
    shared = min(max(mb // 4, 128), 16 * 1024)
    return {
        "shared_buffers": f"{shared}MB",
        "effective_cache_size": f"{max(mb * 3 // 4, shared)}MB",
        "work_mem": f"{min(max(mb // 512, 4), 64)}MB",
        # HNSW builds: the graph of 1M 512-d vectors takes about 2.6 GB and builds several
        # times faster when it fits.
        "maintenance_work_mem": f"{min(max(mb // 8, 64), 4096)}MB",
        "random_page_cost": "1.1",
        "effective_io_concurrency": "200",
        "jit": "off",
        "max_wal_size": "4GB",
        "checkpoint_completion_target": "0.9",
        "max_parallel_workers_per_gather": str(max(min(cpus // 2, 4), 1)),
        "max_parallel_maintenance_workers": str(max(min(cpus - 1, 4), 1)),
    }


def write_settings(pgdata: Path, settings: dict[str, str]) -> None:
    """Write `nucleus.conf` and include it from postgresql.conf (idempotent)."""
    conf = pgdata / "postgresql.conf"
    text = "".join(f"{key} = '{value}'\n" for key, value in settings.items())
    target = pgdata / SETTINGS_FILE
    header = "# Written by nucleus on every start of the embedded server; edit with ALTER SYSTEM.\n"
    target.write_text(header + text)
    stat = conf.stat()
    os.chmod(target, 0o644)
    if os.geteuid() == 0:  # pgserver runs the server as its own user when started by root
        os.chown(target, stat.st_uid, stat.st_gid)
    if _INCLUDE not in conf.read_text():
        with conf.open("a") as handle:
            handle.write(f"\n{_INCLUDE}\n")


HANDLES_FILE = ".handle_pids.json"


def prune_dead_handles(pgdata: Path) -> list[int]:
    """Drop processes that no longer exist from pgserver's list of the server's users.

    pgserver stops the server when the last process on its list exits; a process killed
    with SIGKILL never takes itself off, and the server would then never stop (nor pick up
    new settings at its next start). Returns the processes left on the list.
    """
    import json

    import psutil

    path = pgdata / HANDLES_FILE
    try:
        pids = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if alive != pids:
        path.write_text(json.dumps(alive))
    return alive


def postmaster_state(pgdata: Path) -> tuple[bool, str | None]:
    """Whether the postmaster of `pgdata` runs, and the status it wrote ("starting", "ready")."""
    from pgserver.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(pgdata)
    except (OSError, ValueError, AssertionError):  # the file is being written: look again
        return True, None
    if info is None or not info.is_running():
        return False, None
    return True, info.status


def wait_for_recovery(pgdata: Path) -> Any:
    """Wait while a started postmaster replays its WAL; return its info once it is ready.

    After a crash (a full disk that PANICked the server, kill -9, a power cut) the server
    replays WAL before it accepts connections, which can take longer than the 10 s that
    pgserver's `pg_ctl start` waits. The postmaster goes on recovering after pg_ctl gives
    up, so wait for as long as it lives; if it exits, recovery failed and this raises.
    """
    from pgserver.utils import PostmasterInfo

    next_report = 0.0
    while True:
        running, status = postmaster_state(pgdata)
        if not running:
            raise RuntimeError(
                f"the embedded PostgreSQL server of {pgdata} stopped while starting; "
                f"see {pgdata / 'log'}"
            )
        if status == "ready":
            logger.info("database recovered and ready")
            return PostmasterInfo.read_from_pgdata(pgdata)
        if time.monotonic() >= next_report:
            logger.warning(
                "database is recovering, waiting (status %s; progress in %s)",
                status or "starting",
                pgdata / "log",
            )
            next_report = time.monotonic() + _RECOVERY_REPORT_SECONDS
        time.sleep(_RECOVERY_POLL_SECONDS)


def _server_class() -> type:
    from pgserver.postgres_server import PostgresServer

    class TunedServer(PostgresServer):
        def ensure_pgdata_inited(self) -> None:
            # Runs under pgserver's inter-process lock, before this process adds itself.
            prune_dead_handles(self.pgdata)
            super().ensure_pgdata_inited()
            memory = env_memory() or _machine_memory()
            write_settings(self.pgdata, server_settings(memory, os.cpu_count() or 1))

        def ensure_postgres_running(self) -> None:
            try:
                super().ensure_postgres_running()
            except subprocess.TimeoutExpired:
                # pg_ctl stopped waiting, not the server: a crash recovery still running.
                if not postmaster_state(self.pgdata)[0]:
                    raise
                self._postmaster_info = wait_for_recovery(self.pgdata)

    return TunedServer


def env_memory() -> int:
    """NUCLEUS_PG_MEMORY: how much memory the embedded server plans around (e.g. 8GB)."""
    raw = os.environ.get("NUCLEUS_PG_MEMORY", "").strip().upper()
    if not raw:
        return 0
    units = {"GB": 1024**3, "MB": 1024**2}
    for unit, factor in units.items():
        if raw.endswith(unit) and raw[: -len(unit)].strip().isdigit():
            return int(raw[: -len(unit)]) * factor
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"NUCLEUS_PG_MEMORY must look like 8GB or 512MB, got {raw!r}")


def ensure_server(pgdata: Path) -> str:
    """Start (or join) the embedded server for `pgdata` and return its socket directory."""
    from pgserver.postgres_server import PostgresServer

    pgdata = pgdata.resolve()
    with _lock:
        server = _servers.get(pgdata)
        if server is None:
            pgdata.mkdir(parents=True, exist_ok=True)
            server = PostgresServer._instances.get(pgdata) or _server_class()(
                pgdata, cleanup_mode="stop"
            )
            _servers[pgdata] = server
    socket_dir = server.get_postmaster_info().socket_dir
    return str(socket_dir)


def ensure_database(host: str, name: str, user: str) -> None:
    """Create database `name` on the embedded server if it does not exist yet."""
    with psycopg.connect(host=host, dbname="postgres", user=user, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))


class DatabaseWrapper(postgresql.DatabaseWrapper):
    _ready_databases: set[tuple[str, str]] = set()

    def get_connection_params(self) -> dict[str, Any]:
        host = ensure_server(Path(self.settings_dict["PGDATA"]))
        self.settings_dict["HOST"] = host
        params = super().get_connection_params()
        dbname = params.get("dbname") or "postgres"
        # The test runner creates its own database through the "postgres" one; the main
        # database is created here so a fresh data directory works without a manual step.
        key = (host, dbname)
        if (
            dbname != "postgres"
            and key not in self._ready_databases
            and not dbname.startswith("test_")
        ):
            ensure_database(host, dbname, params.get("user") or "postgres")
            self._ready_databases.add(key)
        return params
