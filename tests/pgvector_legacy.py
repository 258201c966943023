"""Run a test session against pgvector 0.6.2: `python -m pytest -p tests.pgvector_legacy ...`.

The embedded server has pgvector 0.8, and filtered search there uses iterative index
scans. An external PostgreSQL may still have pgvector 0.6 or 0.7 (the service accepts
>= 0.6), where search takes its other path: ef_search raised from the filter's
selectivity, a top-up loop, an exact fallback. `make test` runs the search tests a second
time through this plugin so that path stays tested.

It starts the previous embedded server, `pgserver` 0.1.4 (PostgreSQL 16.2 with pgvector
0.6.2, a dev dependency), on its own data directory, and points DATABASE_URL at it before
pytest-django reads the settings: the session, and every process it starts, then runs on
it exactly as on any external server. The server stops when the session ends.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import pgserver
import psycopg
import pytest

PGVECTOR = "0.6.2"
ROOT = Path(__file__).resolve().parent.parent


@pytest.hookimpl(tryfirst=True)  # before pytest-django loads the settings
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    data_dir = Path(os.environ.get("NUCLEUS_DATA_DIR") or ROOT / "var")
    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir / "pg-pgvector-0.6", cleanup_mode="stop")
    host = str(server.get_postmaster_info().socket_dir)
    with psycopg.connect(host=host, dbname="postgres", user="postgres", autocommit=True) as conn:
        found = conn.execute(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone()
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'nucleus'").fetchone():
            conn.execute("CREATE DATABASE nucleus")
    if found is None or found[0] != PGVECTOR:
        raise pytest.UsageError(f"pgserver's server offers pgvector {found}, not {PGVECTOR}")
    os.environ["DATABASE_URL"] = f"postgres://postgres@{quote(host, safe='')}/nucleus"
    # Read by the tests that check which search path ran.
    os.environ["NUCLEUS_TEST_PGVECTOR"] = PGVECTOR


def pytest_report_header() -> str:
    return f"database: pgserver 0.1.4, PostgreSQL 16.2 + pgvector {PGVECTOR} (pgvector_legacy)"
