"""Input text that PostgreSQL can store, checked once where it enters.

PostgreSQL's text and jsonb cannot hold U+0000, and a lone UTF-16 surrogate (what JSON's
``"\\ud800"`` escape decodes to, or an undecodable file name) cannot be encoded as UTF-8
for the database: either one fails deep inside a query, as a 500 or as a failed job. JSON
nested a thousand levels deep exhausts Python's recursion in the parser, the serializers
and every walker after them. So every way text comes in goes through here before anything
reads it further: API bodies (curation/api/parsers.py), query strings
(curation/middleware.py), and ingest records (curation/ingest/jobs.py). Each problem is
reported with the path of the field it is in, in the API's error format.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

# Deep enough for any real item row (a polygon in an annotation in a row is 7 levels),
# far from where recursion in Python or in PostgreSQL's jsonb parser runs out.
MAX_JSON_DEPTH = 64
# A bad value per row of a 10,000-row batch would make a megabyte of error response.
MAX_PROBLEMS = 100

NUL_MESSAGE = "must not contain NUL characters"
SURROGATE_MESSAGE = "must not contain lone UTF-16 surrogates (\\ud800-\\udfff)"
DEPTH_MESSAGE = f"is nested deeper than {MAX_JSON_DEPTH} levels"

# JSON text carries NUL or a surrogate as a \u escape (raw control characters are invalid
# JSON, raw surrogates invalid UTF-8), or raw in text decoded by an odd charset
# (unicode_escape). Text with neither needs no look at its strings; a valid pair like
# \ud83d\ude00 matches too, and is then checked.
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})|[\x00\ud800-\udfff]")


class Unstorable(ValueError):
    """Input with text PostgreSQL cannot store, or JSON nested too deep.

    `fields` lists each problem as {path, message}, as the API's errors do. Not a
    curation.errors class: the API's parsers load while DRF itself is being imported.
    """

    def __init__(self, fields: list[dict[str, str]]) -> None:
        self.fields = fields
        self.message = "; ".join(
            f"{p['path']}: {p['message']}" if p["path"] else p["message"] for p in fields[:5]
        )
        super().__init__(self.message)


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored, or None."""
    if "\x00" in text:
        return NUL_MESSAGE
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return SURROGATE_MESSAGE
    return None


def text_storable(text: str) -> str:
    """`text` with NUL and lone surrogates spelled out, for messages about bad input."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def _path(trail: Any) -> str:
    parts: list[str] = []
    while trail is not None:
        trail, key = trail
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    return "".join(reversed(parts)).lstrip(".")


def _join(prefix: str, path: str) -> str:
    if not prefix:
        return path
    return f"{prefix}{path}" if not path or path.startswith("[") else f"{prefix}.{path}"


def _deeper_than_allowed(value: Any) -> bool:
    """Whether containers nest past MAX_JSON_DEPTH, a level at a time.

    Twice as fast as the walk below, which reports where: a clean 10,000-row bulk body
    (4 MB) takes about as long to check this way as json.loads takes to parse it.
    """
    level = [value] if isinstance(value, dict | list) else []
    depth = 1
    while level:
        if depth > MAX_JSON_DEPTH:
            return True
        below: list[Any] = []
        for container in level:
            children = container.values() if isinstance(container, dict) else container
            below += [c for c in children if isinstance(c, dict | list)]
        level = below
        depth += 1
    return False


def json_check(value: Any, path: str = "", *, strings: bool = True) -> None:
    """Raise Unstorable naming every place in `value` (parsed JSON) PostgreSQL cannot hold.

    A key that cannot be stored is reported at the object holding it. Iterative, so that
    depth itself cannot exhaust the stack; `strings=False` checks the depth only.
    """
    if not strings and not _deeper_than_allowed(value):
        return
    problems: list[dict[str, str]] = []
    # (value, depth, trail): trail is (parent trail, key), the path built only on error.
    stack: list[tuple[Any, int, Any]] = [(value, 1, None)]
    while stack and len(problems) < MAX_PROBLEMS:
        current, depth, trail = stack.pop()
        if isinstance(current, str):
            if strings:
                message = text_problem(current)
                if message:
                    problems.append({"path": _join(path, _path(trail)), "message": message})
            continue
        if isinstance(current, dict):
            children: Iterable[tuple[Any, Any]] = current.items()
        elif isinstance(current, list):
            children = enumerate(current)
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            problems.append({"path": _join(path, _path(trail)), "message": DEPTH_MESSAGE})
            continue
        pending = []
        for key, inner in children:
            if strings and isinstance(key, str):
                message = text_problem(key)
                if message:
                    problems.append(
                        {"path": _join(path, _path(trail)), "message": f"has a key that {message}"}
                    )
                    continue
            if isinstance(inner, str | dict | list):
                pending.append((inner, depth + 1, (trail, key)))
        # Reversed onto the stack, so problems come out in document order.
        stack.extend(reversed(pending))
    if problems:
        raise Unstorable(problems)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def json_loads(text: str | bytes, path: str = "", *, check: bool = True) -> Any:
    """Parse JSON text and check it with json_check; ValueError if it is not JSON at all.

    `check=False` only refuses nesting too deep for the parser itself, for a caller that
    checks parts of the value separately (one bad record in a file is that record's error).
    """
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        # Python's parser gives up near 1,000 levels, long after MAX_JSON_DEPTH.
        raise Unstorable([{"path": path, "message": DEPTH_MESSAGE}]) from None
    if not check:
        return value
    if isinstance(text, bytes):
        suspect = _SUSPECT_ESCAPE.search(text.decode("utf-8", "replace")) is not None
    else:
        suspect = _SUSPECT_ESCAPE.search(text) is not None
    json_check(value, path, strings=suspect)
    return value


def params_check(params: Any) -> None:
    """Raise Unstorable for a query string or form (a QueryDict) PostgreSQL cannot hold."""
    problems: list[dict[str, str]] = []
    for name, values in params.lists():
        message = text_problem(name)
        if message is None:
            message = next(
                (m for v in values if isinstance(v, str) and (m := text_problem(v))), None
            )
        if message:
            problems.append({"path": text_storable(name), "message": message})
    if problems:
        raise Unstorable(problems)
