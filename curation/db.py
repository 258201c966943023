"""Retrying a transaction that PostgreSQL rolled back for a deadlock or a serialisation
failure: a helper for any module that writes."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import OperationalError, connection

T = TypeVar("T")


# PostgreSQL's "deadlock detected" and "could not serialize": the transaction was rolled
# back whole, and running it again is safe when its writes are idempotent (as every bulk
# upsert is).
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})


def is_transient(exc: BaseException) -> bool:
    cause = exc.__cause__ if isinstance(exc, OperationalError) else exc
    return getattr(cause, "sqlstate", None) in TRANSIENT_SQLSTATES


def retry_transient(fn: Callable[[], T], *, attempts: int = 4) -> T:
    """Run `fn` (one transaction), again after a deadlock or serialisation failure.

    Only at the outermost level: inside an enclosing transaction the whole of it was rolled
    back, so only its owner can retry.
    """
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except OperationalError as exc:
            if attempt == attempts or connection.in_atomic_block or not is_transient(exc):
                raise
            time.sleep(random.uniform(0.01, 0.05) * attempt)
    raise AssertionError("unreachable")
