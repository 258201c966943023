"""Numeric parameters: one reader each for the API and the UI, whose 400 names the field."""

from __future__ import annotations

import pytest

from curation.errors import InvalidInput
from curation.params import fraction_value, int_value


def test_it_reads_a_number_within_bounds() -> None:
    assert int_value("7", "limit", low=1, high=10) == 7
    assert int_value("0", "after", low=0) == 0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("abc", "must be a whole number from 1 to 10"),
        ("", "must be a whole number from 1 to 10"),
        (None, "must be a whole number from 1 to 10"),
        ("0", "must be a whole number from 1 to 10"),
        ("11", "must be a whole number from 1 to 10"),
        ("9" * 5000, "must be a whole number from 1 to 10"),  # int() refuses it: a 400
    ],
)
def test_it_names_the_field_and_its_bounds(raw: str | None, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        int_value(raw, "limit", low=1, high=10)
    assert caught.value.message == f"limit: {message}"
    assert caught.value.fields == [{"path": "limit", "message": message}]


def test_without_an_upper_bound_it_says_the_lower_one() -> None:
    with pytest.raises(InvalidInput) as caught:
        int_value("-1", "like", low=1)
    assert caught.value.fields == [
        {"path": "like", "message": "must be a whole number of at least 1"}
    ]


def test_it_caps_or_takes_the_callers_message() -> None:
    assert int_value("5000", "limit", low=1, high=500, capped=True) == 500
    with pytest.raises(InvalidInput) as caught:
        int_value("x", "from", low=0, message="choose a version")
    assert caught.value.message == "from: choose a version"


def test_it_reads_a_fraction_from_0_to_1() -> None:
    assert fraction_value("0", "conf") == 0.0
    assert fraction_value("0.25", "conf") == 0.25
    assert fraction_value("1", "conf") == 1.0


@pytest.mark.parametrize("raw", ["abc", "", None, "-0.1", "1.5", "nan", "inf", "1e400"])
def test_a_fraction_outside_0_to_1_names_the_field(raw: str | None) -> None:
    with pytest.raises(InvalidInput) as caught:
        fraction_value(raw, "conf")
    assert caught.value.message == "conf: must be a number from 0 to 1"
    assert caught.value.fields == [{"path": "conf", "message": "must be a number from 0 to 1"}]
