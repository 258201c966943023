"""DRF's JSON renderer, with orjson writing the text.

Writing the JSON of a response was the largest single cost of the API's read path after
the database: about 1 ms of the 7 ms of CPU a page of 50 slice records takes (cProfile,
in-process, bench/load.py's requests), where orjson takes a fifth of that. The output is
DRF's own wherever it matters:

- dates and times are still written by DRF's encoder (OPT_PASSTHROUGH_DATETIME hands them
  to `default`, which is DRF's), so "Z" for UTC stays; so are decimals, lazy strings,
  querysets and anything else orjson does not know (tests/test_api_renderer.py checks
  the bytes are DRF's);
- U+2028 and U+2029 are escaped, as DRF does, so that a response stays valid JavaScript;
- a request for indented output (``Accept: application/json; indent=4``), and anything
  orjson refuses (a dict with keys that are not strings, an integer past 64 bits), is
  rendered by DRF's renderer itself.

Two differences remain, both in what was never a correct response: a float that is NaN
or infinite is written as null (DRF's strict JSON raised an error, a 500), and exponents are
written without a plus sign or leading zero (1e-5 for Python's 1e-05), which every JSON
parser reads as the same number.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.encoders import JSONEncoder

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME
_LINE_SEPARATORS = ((b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"))


class OrjsonRenderer(JSONRenderer):
    """application/json, as DRF's JSONRenderer writes it, through orjson."""

    _encoder = JSONEncoder()

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        if data is None:
            return b""
        context = dict(renderer_context or {})
        if self.get_indent(accepted_media_type or "", context) is not None:
            return bytes(super().render(data, accepted_media_type, context))
        try:
            text = orjson.dumps(data, default=self._encoder.default, option=_OPTIONS)
        except orjson.JSONEncodeError:
            return bytes(super().render(data, accepted_media_type, context))
        for raw, escaped in _LINE_SEPARATORS:
            if raw in text:
                text = text.replace(raw, escaped)
        return text
