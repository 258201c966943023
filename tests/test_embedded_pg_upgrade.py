"""A data directory of the previous embedded server (pgserver 0.1.4: PostgreSQL 16.2 with
pgvector 0.6.2) is upgraded in place on the first start, rows and vectors kept; an upgrade
that fails leaves the old directory as it was."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nucleus.embedded_pg.base import _upgrade_finish, pgdata_upgrade

ROOT = Path(__file__).resolve().parent.parent
ROWS = 200

# Run by the old server's own package, in its own process (its server stops, cleanly, when
# that process exits, as the old nucleus's did).
MAKE_OLD_DIRECTORY = """
import sys, pathlib, pgserver, psycopg
server = pgserver.get_server(pathlib.Path(sys.argv[1]), cleanup_mode="stop")
host = str(server.get_postmaster_info().socket_dir)
with psycopg.connect(host=host, dbname="postgres", user="postgres", autocommit=True) as conn:
    conn.execute("CREATE DATABASE nucleus")
with psycopg.connect(host=host, dbname="nucleus", user="postgres", autocommit=True) as conn:
    conn.execute("CREATE EXTENSION vector")
    for statement in sys.argv[2:]:
        conn.execute(statement)
    versions = conn.execute(
        "SELECT current_setting('server_version'), extversion FROM pg_extension"
        " WHERE extname = 'vector'"
    ).fetchone()
print(" ".join(versions))
"""

VECTORS = [
    # As the embeddings table: an untyped vector column, an HNSW index on the typed cast.
    "CREATE TABLE vectors (id integer PRIMARY KEY, vector vector NOT NULL)",
    f"INSERT INTO vectors SELECT i, ('[' || i || ',' || (i * 7) % 11 || ',1]')::vector"
    f" FROM generate_series(1, {ROWS}) i",
    "CREATE INDEX vectors_hnsw ON vectors USING hnsw ((vector::vector(3)) vector_cosine_ops)",
]

COUNT_WITH_THE_OLD_SERVER = """
import sys, pathlib, pgserver, psycopg
server = pgserver.get_server(pathlib.Path(sys.argv[1]), cleanup_mode="stop")
host = str(server.get_postmaster_info().socket_dir)
with psycopg.connect(host=host, dbname="nucleus", user="postgres") as conn:
    print(*conn.execute(
        "SELECT current_setting('server_version'), count(*) FROM vectors"
    ).fetchone())
"""

# Through the service's own settings (DATABASE_URL unset): the embedded backend starts.
READ_THROUGH_THE_SERVICE = """
import json, django
django.setup()
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("SELECT id, vector::text FROM vectors ORDER BY id")
    rows = cursor.fetchall()
    cursor.execute("SELECT current_setting('server_version'), current_setting('jit')")
    version, jit = cursor.fetchone()
    cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    pgvector = cursor.fetchone()[0]
    cursor.execute("SELECT '[1,2,3]'::halfvec(3)::text")
    halfvec = cursor.fetchone()[0]
    query = "ORDER BY vector::vector(3) <=> '[40,3,1]'::vector(3) LIMIT 5"
    cursor.execute("SET enable_seqscan = off")
    cursor.execute(f"EXPLAIN SELECT id FROM vectors {query}")
    plan = " ".join(r[0] for r in cursor.fetchall())
    cursor.execute(f"SELECT id FROM vectors {query}")
    nearest = [r[0] for r in cursor.fetchall()]
print(json.dumps({"rows": rows, "version": version, "jit": jit, "pgvector": pgvector,
                  "halfvec": halfvec, "plan": plan, "nearest": nearest}))
"""


def old_directory(data_dir: Path, *statements: str) -> Path:
    """A PostgreSQL 16 data directory made by pgserver 0.1.4, holding `statements`' data."""
    pgdata = data_dir / "pg"
    data_dir.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(
        [sys.executable, "-c", MAKE_OLD_DIRECTORY, str(pgdata), *statements],
        capture_output=True,
        text=True,
        check=True,
    )
    assert made.stdout.split() == ["16.2", "0.6.2"]
    assert (pgdata / "PG_VERSION").read_text().strip() == "16"
    return pgdata


def service_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(NUCLEUS_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="nucleus.settings")
    return env


@pytest.mark.slow
def test_it_upgrades_a_postgresql_16_directory_keeping_rows_and_vectors(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    pgdata = old_directory(data_dir, *VECTORS)
    # As root the server runs as its own user, which must reach the folders the upgrade
    # makes; the old server's start had opened the way, a folder made private since has not.
    tmp_path.chmod(0o700)

    started = subprocess.run(
        [sys.executable, "-c", READ_THROUGH_THE_SERVICE],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=service_env(data_dir),
    )

    assert started.returncode == 0, started.stderr
    found = json.loads(started.stdout.strip().splitlines()[-1])
    assert found["rows"] == [[i, f"[{i},{(i * 7) % 11},1]"] for i in range(1, ROWS + 1)]
    assert found["version"].startswith("18.")
    assert found["pgvector"] == "0.8.5"  # the extension was updated, not only the library
    assert found["halfvec"] == "[1,2,3]"
    assert found["jit"] == "off"  # started as the tuned embedded server, nucleus.conf read
    assert "vectors_hnsw" in found["plan"]  # the index came across and is used
    angle = {i: _cosine_distance([i, (i * 7) % 11, 1], [40, 3, 1]) for i in range(1, ROWS + 1)}
    assert set(found["nearest"]) == set(sorted(angle, key=angle.__getitem__)[:5])
    assert (pgdata / "PG_VERSION").read_text().strip() == "18"
    assert "upgrading the embedded database" in started.stderr
    assert "from PostgreSQL 16 to 18" in started.stderr
    assert "upgraded the embedded database" in started.stderr
    # The old directory was kept only until the upgrade succeeded; nothing else is left.
    assert sorted(p.name for p in data_dir.iterdir() if p.name.startswith((".pg", "pg"))) == ["pg"]


@pytest.mark.slow
def test_a_failed_upgrade_says_why_and_leaves_the_old_directory_intact(tmp_path: Path) -> None:
    # pg_upgrade refuses clusters with reg* columns (they hold OIDs it does not keep).
    data_dir = tmp_path / "data"
    pgdata = old_directory(
        data_dir, *VECTORS, "CREATE TABLE procs (f regproc)", "INSERT INTO procs VALUES ('now')"
    )

    started = subprocess.run(
        [sys.executable, "-c", READ_THROUGH_THE_SERVICE],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=service_env(data_dir),
    )

    assert started.returncode != 0
    assert "UpgradeFailed" in started.stderr
    assert "the old directory is untouched (still PostgreSQL 16)" in started.stderr
    assert "reg* data types in user tables" in started.stderr
    assert (pgdata / "PG_VERSION").read_text().strip() == "16"
    assert sorted(p.name for p in data_dir.iterdir() if p.name.startswith((".pg", "pg"))) == ["pg"]
    # The old server still opens it, every row there.
    count = subprocess.run(
        [sys.executable, "-c", COUNT_WITH_THE_OLD_SERVER, str(pgdata)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert count.stdout.split() == ["16.2", str(ROWS)]


def _cosine_distance(a: list[int], b: list[int]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = (sum(x * x for x in a) * sum(y * y for y in b)) ** 0.5
    return 1.0 - dot / norm


def test_a_swap_cut_short_by_a_crash_is_completed_at_the_next_start(tmp_path: Path) -> None:
    # The old directory was moved aside and the finished copy not yet moved in; the next
    # start made an empty pgdata folder before it looked.
    data = tmp_path / "data"
    pgdata, staged, backup = data / "pg", data / ".pg-upgrading", data / ".pg-before-upgrade"
    for folder, version in ((staged, "18"), (backup, "16")):
        folder.mkdir(parents=True)
        (folder / "PG_VERSION").write_text(f"{version}\n")
    (staged / ".nucleus-upgrade-complete").touch()
    pgdata.mkdir()

    assert pgdata_upgrade(pgdata, system_user=None) is False  # nothing left to upgrade

    assert (pgdata / "PG_VERSION").read_text() == "18\n"
    assert sorted(p.name for p in data.iterdir()) == ["pg"]
    assert [p.name for p in pgdata.iterdir()] == ["PG_VERSION"]


def test_an_unfinished_copy_never_replaces_the_old_directory(tmp_path: Path) -> None:
    # A crash while the copy was being built: the old directory is still in place.
    data = tmp_path / "data"
    pgdata, staged = data / "pg", data / ".pg-upgrading"
    for folder, version in ((staged, "18"), (pgdata, "16")):
        folder.mkdir(parents=True)
        (folder / "PG_VERSION").write_text(f"{version}\n")

    _upgrade_finish(pgdata)

    assert (pgdata / "PG_VERSION").read_text() == "16\n"  # the next attempt starts over
