"""The embedded PostgreSQL server is sized for the machine, not run on stock settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from nucleus.embedded_pg.base import (
    HANDLES_FILE,
    SETTINGS_FILE,
    env_memory,
    prune_dead_handles,
    server_settings,
    write_settings,
)

GB = 1024**3


def test_settings_scale_with_memory() -> None:
    small = server_settings(2 * GB, 1)
    large = server_settings(64 * GB, 16)
    assert small["shared_buffers"] == "512MB"
    assert large["shared_buffers"] == "16384MB"
    assert small["maintenance_work_mem"] == "256MB"
    assert large["maintenance_work_mem"] == "4096MB"  # capped
    assert small["work_mem"] == "4MB"
    assert large["work_mem"] == "64MB"
    assert small["jit"] == large["jit"] == "off"
    assert small["max_parallel_maintenance_workers"] == "1"
    assert large["max_parallel_maintenance_workers"] == "4"


def test_tiny_memory_keeps_postgres_minimums() -> None:
    settings = server_settings(64 * 1024 * 1024, 1)
    assert settings["shared_buffers"] == "128MB"
    assert settings["maintenance_work_mem"] == "64MB"


def test_write_settings_includes_the_file_once(tmp_path: Path) -> None:
    conf = tmp_path / "postgresql.conf"
    conf.write_text("max_connections = 100\n")
    write_settings(tmp_path, {"shared_buffers": "1GB"})
    write_settings(tmp_path, {"shared_buffers": "2GB"})
    text = conf.read_text()
    assert text.count(f"include_if_exists = '{SETTINGS_FILE}'") == 1
    assert text.startswith("max_connections = 100\n")
    written = (tmp_path / SETTINGS_FILE).read_text()
    assert "shared_buffers = '2GB'" in written
    assert "1GB" not in written


@pytest.mark.parametrize(("raw", "expected"), [("8GB", 8 * GB), ("512mb", 512 * 1024**2), ("", 0)])
def test_memory_from_the_environment(monkeypatch: Any, raw: str, expected: int) -> None:
    monkeypatch.setenv("NUCLEUS_PG_MEMORY", raw)
    assert env_memory() == expected


def test_bad_memory_value_names_the_variable(monkeypatch: Any) -> None:
    monkeypatch.setenv("NUCLEUS_PG_MEMORY", "lots")
    with pytest.raises(ImproperlyConfigured, match="NUCLEUS_PG_MEMORY"):
        env_memory()


@pytest.mark.django_db
def test_running_server_uses_the_written_settings() -> None:
    """The server the tests run on was started through this backend: its settings are ours."""
    pgdata = Path(connection.settings_dict["PGDATA"])
    written = dict(
        line.split(" = ", 1)
        for line in (pgdata / SETTINGS_FILE).read_text().splitlines()
        if " = " in line and not line.startswith("#")
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT setting, unit FROM pg_settings WHERE name = 'shared_buffers'")
        blocks, unit = cursor.fetchone()
        cursor.execute("SHOW jit")
        jit = cursor.fetchone()[0]
    assert unit == "8kB"
    assert f"'{int(blocks) * 8 // 1024}MB'" == written["shared_buffers"]
    assert jit == "off"


def test_processes_that_died_without_a_word_are_no_longer_users(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process id that no longer exists, as after a SIGKILL
    (tmp_path / HANDLES_FILE).write_text(json.dumps([gone.pid, os.getpid()]))
    assert prune_dead_handles(tmp_path) == [os.getpid()]
    assert json.loads((tmp_path / HANDLES_FILE).read_text()) == [os.getpid()]


def test_no_handle_list_yet_is_an_empty_one(tmp_path: Path) -> None:
    assert prune_dead_handles(tmp_path) == []
