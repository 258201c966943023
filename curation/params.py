"""Integer parameters of requests, read one way by the API and the UI: a bad value is a
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
