"""Start-up checks: the database must be PostgreSQL with pgvector >= 0.6."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.db import connection
from django.db.utils import OperationalError

MIN_PGVECTOR = (0, 6)


def pgvector_version() -> tuple[int, ...] | None:
    """The pgvector version the server offers (installed or installable), or None."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(installed_version, default_version) "
            "FROM pg_available_extensions WHERE name = 'vector'"
        )
        row = cursor.fetchone()
    if not row or not row[0]:
        return None
    return tuple(int(p) for p in row[0].split(".") if p.isdigit())


@checks.register(checks.Tags.database)
def check_pgvector(app_configs: Any, **kwargs: Any) -> list[checks.CheckMessage]:
    try:
        version = pgvector_version()
    except OperationalError as exc:
        return [checks.Error(f"Cannot connect to the database: {exc}", id="nucleus.E001")]
    if version is None:
        return [
            checks.Error(
                "The PostgreSQL server has no pgvector extension. Install pgvector >= 0.6 "
                "on it (https://github.com/pgvector/pgvector), or unset DATABASE_URL to use "
                "the embedded server.",
                id="nucleus.E002",
            )
        ]
    if version < MIN_PGVECTOR:
        found = ".".join(map(str, version))
        return [
            checks.Error(
                f"pgvector {found} is too old: nucleus needs pgvector >= 0.6 (HNSW indexes).",
                id="nucleus.E003",
            )
        ]
    return []
