"""Who writes annotations, and through what: the context the history triggers record.

    with change_context(user=request.user, source="api"):
        shapes_upsert(dataset=dataset, rows=rows)

The context reaches the triggers as PostgreSQL settings (`nucleus.change_*`), set with
set_config(): transaction-local inside a transaction (a rollback takes them back with the
writes), for the session otherwise, and put back as they were when the block ends. So no
write path threads a user or a job id through to the SQL: COPY upserts, ORM deletes and
item-delete cascades are all recorded with the context they ran in. A write outside any
context is recorded with source "admin" and no user.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection

# The triggers (curation.history.triggers) read nucleus.change_user, _source, _job,
# _entry, _reverts and _token: all text, '' when unset.
# While this one is set, recording stops: only for deleting a whole dataset, whose history
# goes with it.
OFF = "nucleus.history_off"


def _values(names: list[str]) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT " + ", ".join(["coalesce(current_setting(%s, true), '')"] * len(names)),
            names,
        )
        row = cursor.fetchone()
    return [str(v) for v in row]


def _set(values: dict[str, str]) -> None:
    # Inside a transaction: local to it, so a rollback (or a savepoint's) undoes them
    # together with the writes. Outside one: for the session, put back on leaving.
    local = connection.in_atomic_block
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT " + ", ".join(["set_config(%s, %s, %s)"] * len(values)),
            [v for name, value in values.items() for v in (name, value, local)],
        )


@contextmanager
def _settings(values: dict[str, str]) -> Iterator[None]:
    names = list(values)
    previous = dict(zip(names, _values(names), strict=True))
    _set(values)
    try:
        yield
    finally:
        # A transaction that failed inside the block is rolled back by its owner, which
        # undoes the local settings; it accepts no statement until then.
        if not connection.needs_rollback:
            _set(previous)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


@contextmanager
def change_context(
    *,
    user: Any,
    source: str,
    job_id: int | None = None,
    entry_id: int | None = None,
    reverts_id: int | None = None,
) -> Iterator[None]:
    """Record annotation writes in this block as made by `user` through `source`.

    Each block is its own event (a token tells the triggers apart), per transaction:
    an ingest job that commits chunk by chunk makes one event per chunk, each with the
    job's id.
    """
    user_id = user.pk if getattr(user, "is_authenticated", False) else None
    values = {
        "user": _text(user_id),
        "source": source,
        "job": _text(job_id),
        "entry": _text(entry_id),
        "reverts": _text(reverts_id),
        "token": uuid.uuid4().hex,
    }
    with _settings({f"nucleus.change_{k}": v for k, v in values.items()}):
        yield


@contextmanager
def history_off() -> Iterator[None]:
    """Record nothing in this block (deleting a dataset: its history goes with it)."""
    with _settings({OFF: "on"}):
        yield


__all__ = ["change_context", "history_off"]
