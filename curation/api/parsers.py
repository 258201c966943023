"""The API's body parsers: DRF's, with every body checked by curation.storable.

Set as DEFAULT_PARSER_CLASSES, so each view gets the check without asking for it: text
PostgreSQL cannot store and JSON nested past curation.storable.MAX_JSON_DEPTH are a 400
naming the field before any view or serializer sees the data.
"""

from __future__ import annotations

from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError, ValidationError

from curation.storable import Unstorable, json_loads, params_check


def unstorable_detail(exc: Unstorable) -> dict[str, list[str]] | list[str]:
    """The problems as DRF error detail, which the API's handler reports by path."""
    if any(not field["path"] for field in exc.fields):
        return [exc.message]  # the value as a whole (too deep for the parser)
    detail: dict[str, list[str]] = {}
    for field in exc.fields:
        detail.setdefault(field["path"], []).append(field["message"])
    return detail


def _refused(exc: Unstorable) -> ValidationError:
    return ValidationError(unstorable_detail(exc))


class JSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        # DRF 3.18 has get_encoding (it refuses bytes-to-bytes codecs); its stubs lack it.
        encoding = parsers.get_encoding(parser_context or {})  # type: ignore[attr-defined]
        try:
            return json_loads(stream.read().decode(encoding))
        except Unstorable as exc:
            raise _refused(exc) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None


class FormParser(parsers.FormParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        try:
            params_check(data)
        except Unstorable as exc:
            raise _refused(exc) from None
        return data


class MultiPartParser(parsers.MultiPartParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        result = super().parse(stream, media_type, parser_context)
        try:
            params_check(result.data)
        except Unstorable as exc:
            raise _refused(exc) from None
        return result
