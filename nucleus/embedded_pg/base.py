from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Any

import psycopg
from django.db.backends.postgresql import base as postgresql

# pgserver asks platformdirs for a runtime dir; without XDG_RUNTIME_DIR it warns on every start.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

_lock = threading.Lock()
_servers: dict[Path, Any] = {}


def ensure_server(pgdata: Path) -> str:
    """Start (or join) the embedded server for `pgdata` and return its socket directory."""
    import pgserver  # imported lazily: only the embedded default needs it

    pgdata = pgdata.resolve()
    with _lock:
        server = _servers.get(pgdata)
        if server is None:
            pgdata.mkdir(parents=True, exist_ok=True)
            server = pgserver.get_server(pgdata, cleanup_mode="stop")
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
