"""Numeric parameters of requests, read one way by the API and the UI: a bad value is a
400 that names the parameter (curation.errors.invalid_field)."""

from __future__ import annotations

from curation.errors import invalid_field


def int_value(
    raw: str | None,
    name: str,
    *,
    low: int,
    high: int | None = None,
    capped: bool = False,
    message: str | None = None,
) -> int:
    """`raw` as a whole number from `low` to `high` (None: no bound), else a 400 naming
    `name` (with `message`, or one that gives the bounds). With `capped`, numbers above
    `high` count as `high` instead. An absent value (None) is a 400 too: callers decide
    what absence means before they call."""
    try:
        value = int(raw) if raw is not None else low - 1
    except ValueError:  # also int()'s refusal of numbers with thousands of digits
        value = low - 1
    if high is not None and value > high and capped:
        return high
    if value < low or (high is not None and value > high):
        if message is None:
            message = (
                f"must be a whole number of at least {low}"
                if high is None
                else f"must be a whole number from {low} to {high}"
            )
        raise invalid_field(name, message)
    return value


def fraction_value(raw: str | None, name: str) -> float:
    """`raw` as a number from 0 to 1 (a confidence, a share), else a 400 naming `name`.
    NaN, infinities and an absent value (None) are 400s too."""
    try:
        value = float(raw) if raw is not None else -1.0
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:  # also false for NaN
        raise invalid_field(name, "must be a number from 0 to 1")
    return value
