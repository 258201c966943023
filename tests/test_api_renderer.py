"""The API's JSON renderer writes with orjson what DRF's JSONRenderer writes."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.utils.translation import gettext_lazy
from rest_framework.renderers import JSONRenderer

from curation.api.renderers import OrjsonRenderer

DATA: dict[str, Any] = {
    "text": 'straße ☃ 𝄞 "quoted" \\ back',
    "numbers": [0, -1, 2**62, 1.5, 0.1, 123456.789],
    "flags": [True, False, None],
    "when": datetime(2026, 12, 5, 18, 30, 1, 123456, tzinfo=UTC),
    "naive": datetime(2026, 12, 5, 18, 30, 1),
    "day": date(2026, 12, 5),
    "clock": time(7, 8, 9, 10000),
    "price": Decimal("12.50"),
    "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "lazy": gettext_lazy("Not found."),
    "nested": {"list": [{"a": []}, {}], "tuple": (1, "two")},
}


def drf(data: Any, media_type: str = "application/json") -> Any:
    return JSONRenderer().render(data, media_type, {})


def ours(data: Any, media_type: str = "application/json") -> bytes:
    return OrjsonRenderer().render(data, media_type, {})


def test_it_is_the_api_default() -> None:
    renderers = settings.REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"]
    assert renderers[0] == "curation.api.renderers.OrjsonRenderer"


def test_it_writes_drf_s_bytes_for_text_numbers_dates_decimals_and_lazy_text() -> None:
    written = ours(DATA)
    assert isinstance(written, bytes)
    assert written == drf(DATA)
    # dates keep DRF's form ("Z" for UTC), written by DRF's encoder
    assert b'"when":"2026-12-05T18:30:01.123456Z"' in written


def test_line_separators_are_escaped_as_drf_escapes_them() -> None:
    data = {"note": "one\u2028two\u2029three"}
    written = ours(data)
    assert b"\\u2028" in written and b"\\u2029" in written
    assert "\u2028".encode() not in written
    assert json.loads(written) == data == json.loads(drf(data))


@pytest.mark.parametrize(
    "data",
    [
        {1: "an integer key"},  # orjson takes only string keys
        {"big": 2**70},  # past 64 bits
    ],
)
def test_what_orjson_refuses_is_written_by_drf(data: Any) -> None:
    assert ours(data) == drf(data)


def test_an_indented_request_is_written_by_drf() -> None:
    media_type = "application/json; indent=4"
    assert ours(DATA, media_type) == drf(DATA, media_type)
    assert b"\n    " in ours(DATA, media_type)


def test_nothing_is_an_empty_body_and_a_float_that_is_no_number_is_null() -> None:
    assert ours(None) == b""
    assert json.loads(ours({"score": float("nan")})) == {"score": None}
    with pytest.raises(ValueError, match="JSON compliant"):
        drf({"score": float("nan")})


def test_an_unknown_object_still_fails_as_with_drf() -> None:
    with pytest.raises(TypeError):
        ours({"thing": object()})
    with pytest.raises(TypeError):
        drf({"thing": object()})
