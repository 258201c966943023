"""Query errors: a 400 that says where the problem is and what was expected."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from curation.errors import InvalidInput, api_exception_handler
from curation.models import Dataset, Item
from curation.query import QueryError, validate_query
from curation.query.parser import MAX_DEPTH, MAX_QUERY_LENGTH
from tests.query_dataset import matching, module_dataset


@pytest.fixture(scope="module")
def shared_dataset(django_db_blocker: Any) -> Iterator[Dataset]:
    with module_dataset(django_db_blocker) as dataset:
        yield dataset


@pytest.fixture
def dataset(db: None, shared_dataset: Dataset) -> Dataset:
    return shared_dataset


def error_for(dataset: Dataset, text: str) -> QueryError:
    with pytest.raises(QueryError) as caught:
        validate_query(text, dataset=dataset)
    return caught.value


# (query, 1-based column, message fragment)
SYNTAX_ERRORS = [
    ("metadata.x = AND", 14, "Unexpected 'AND' at column 14: expected a value."),
    ("metadata.weather = AND x", 20, "Unexpected 'AND' at column 20: expected a value."),
    ("metadata.x = 1 AND", 19, "Unexpected end of query at column 19: expected a condition"),
    ("(width > 1", 11, "Unexpected end of query at column 11: expected AND, OR or ')'."),
    ("width >> 1", 8, "Unexpected '>' at column 8: expected a value."),
    ("width > 1 width", 11, "expected AND, OR or the end of the query."),
    ("width", 6, "expected a comparison operator (=, !=, <, <=, >, >=, IN)"),
    ("width = ", 8, "Unexpected end of query at column 8: expected a value."),
    ("= 3", 1, "Unexpected '=' at column 1: expected a condition"),
    ("width > 1 OR OR width < 3", 14, "Unexpected 'OR' at column 14"),
    ("tag in ()", 9, "Unexpected ')' at column 9: expected a value."),
    ("NOT", 4, "Unexpected end of query at column 4"),
    ("width > 1 ^ 2", 11, "Unexpected character '^' at column 11"),
    ('tag = "abc', 7, "Unterminated string starting at column 7"),
    ("metadata.x = 'abc", 14, "Unterminated string starting at column 14"),
    ("metadata.`camera model = 1", 10, "Unterminated `quoted name` starting at column 10"),
    ("metadata. = 1", 11, "expected a name"),
    ("metadata.1 = 1", 10, "expected a name"),
    ("width = 1 AND tag = `x`", 21, "Unexpected '`x`' at column 21: expected a value."),
    ('tag = "a\\qb"', 9, "Bad escape '\\q' at column 9"),
    ('tag = "\\u12"', 8, "Bad escape at column 8: \\u needs 4 hex digits."),
    ('tag = "\\u0000"', 7, "must not contain NUL characters"),
]

FIELD_ERRORS = [
    ("foo.bar = 1", 1, "Unknown field 'foo' at column 1."),
    ("metdata.x = 1", 1, "Did you mean 'metadata'?"),
    ("x = 1", 1, "Unknown field 'x' at column 1."),
    (
        "metadata.weather = rain",
        20,
        "Unknown field 'rain' at column 20: quote text values, e.g. \"rain\".",
    ),
    ("metadata = 1", 1, "Name a key at column 1: metadata.<key>"),
    ("width.x = 1", 7, "'width' has no sub-fields (at column 7)."),
    ("annotations = 1", 1, "'annotations' needs more at column 1"),
    ("annotations.car[x] = 1", 17, "Brackets at column 17 only name a model"),
    ("annotations.kind.blob.count = 1", 18, "Name a geometry kind at column 18"),
    ("annotations.kind.box.sum = 1", 22, "Expected annotations.kind.box.count at column 22."),
    ("annotations.count.x = 1", 19, "'annotations.count' has no sub-fields"),
    ("predictions[nope].car >= 1", 13, "No model named 'nope' in this dataset (at column 13)"),
    ("predictions.car >= 1", 1, "Name the model at column 1: predictions[<model>]"),
    ("predictions[detector].confidence.x > 1", 34, "'confidence' has no sub-fields"),
    ("slice = nope", 9, "No slice named 'nope' in this dataset (at column 9)."),
    ("slice in (train, nope)", 18, "No slice named 'nope'"),
    ("metadata.speed > true", 18, "'>' compares numbers or strings; a boolean"),
    ("metadata.speed < null", 18, "null can only be compared with = or !="),
    ("annotations.car.occluded > true", 28, "a boolean can only be compared with = or !="),
    ('width > "a"', 9, "'width >' needs a number, got a string at column 9."),
    ("width < null", 9, "'width <' needs a number, got null"),
    ("annotations.car = true", 19, "'annotations.car =' needs a number, got a boolean"),
    ("reference_id = 5", 16, "'reference_id =' needs a quoted string, got a number"),
    ('created > "yesterday"', 11, "'yesterday' at column 11 is not a date"),
    ('created > "2024-02-30"', 11, "is not a date"),
    ("created > 5", 11, "needs a date"),
    ("tag > a", 1, "'tag' takes =, != or IN (at column 1)."),
    ("tag = 5", 7, "'tag' needs a tag name at column 7"),
    ("duplicate = 1", 13, "'duplicate' takes = true, = false or !="),
    ("duplicate > true", 13, "'duplicate' takes = true"),
    ("3 = 4", 1, "Compare a field with a value at column 1"),
    ("metadata.x = metadata.y", 14, "Compare 'metadata.x' with a value at column 14"),
    ("metadata.weather + 1 > 2", 1, "cannot take part in arithmetic"),
    ("annotations.car + tag > 2", 19, "'tag' at column 19 cannot take part in arithmetic"),
    ("predictions[detector].car.confidence > 'x'", 40, "needs a number between 0 and 1"),
    ("width > 1e999", 9, "Number 1e999 at column 9 is out of range."),
    ("metadata.n = " + "9" * 400, 14, "Number at column 14 is out of range."),
    ("metadata.x in (1, width)", 19, "IN lists hold values only (at column 19)."),
    ("width * 1e300 * 1e300 * 1e300 * 1e300 > 1", 1, "The arithmetic at column 1 can reach"),
    ("annotations.car * 1e999 > 1", 19, "Number 1e999 at column 19 is out of range."),
]


@pytest.mark.parametrize(("text", "column", "message"), SYNTAX_ERRORS + FIELD_ERRORS)
def test_it_says_where_and_what(dataset: Dataset, text: str, column: int, message: str) -> None:
    error = error_for(dataset, text)
    assert message in error.message
    assert error.position["line"] == 1
    assert error.position["column"] == column
    assert error.position["offset"] == column - 1
    [field] = error.fields
    assert field["path"] == "query"
    assert field["message"] == error.message
    assert field["column"] == column  # type: ignore[comparison-overlap]


def test_it_counts_lines_and_columns_in_multiline_queries(dataset: Dataset) -> None:
    error = error_for(dataset, 'width > 1\n  AND foo = "x"')
    assert "Unknown field 'foo' at line 2, column 7." in error.message
    assert error.position == {"line": 2, "column": 7, "offset": 16, "end_offset": 19}


def test_it_marks_the_whole_offending_token(dataset: Dataset) -> None:
    error = error_for(dataset, "metadata.weather = AND x")
    assert (error.position["offset"], error.position["end_offset"]) == (19, 22)
    assert error.expected == ["a value"]


def test_it_lists_the_models_when_one_is_unknown(dataset: Dataset) -> None:
    error = error_for(dataset, "predictions[detektor].car >= 1")
    assert error.expected == ["detector", "segmenter"]
    assert "models: detector, segmenter." in error.message


def test_it_is_an_invalid_input_error_in_the_api_format(dataset: Dataset) -> None:
    error = error_for(dataset, "metadata.x = AND")
    assert isinstance(error, InvalidInput)
    response = api_exception_handler(error, {})
    assert response is not None
    assert response.status_code == 400
    body = response.data["error"]
    assert body["code"] == "invalid"
    assert body["message"] == "Unexpected 'AND' at column 14: expected a value."
    assert body["fields"] == [
        {
            "path": "query",
            "message": "Unexpected 'AND' at column 14: expected a value.",
            "line": 1,
            "column": 14,
            "offset": 13,
            "end_offset": 16,
            "expected": ["a value"],
        }
    ]


def test_it_refuses_deep_nesting(dataset: Dataset) -> None:
    text = "NOT " * (MAX_DEPTH + 5) + "width > 1"
    error = error_for(dataset, text)
    assert "nests too deeply" in error.message


def test_it_accepts_nesting_within_the_limit(dataset: Dataset) -> None:
    everything = sorted(Item.objects.filter(dataset=dataset).values_list("reference_id", flat=True))
    wide = matching(dataset, "width > 1000")
    assert wide and wide != everything
    # An even number of NOTs cancels out: the deep query matches what the plain one does.
    depth = (MAX_DEPTH - 5) // 2 * 2
    assert matching(dataset, "NOT " * depth + "width > 1000") == wide
    assert matching(dataset, "NOT " * (depth - 1) + "width > 1000") == sorted(
        set(everything) - set(wide)
    )


def test_it_accepts_long_flat_chains(dataset: Dataset) -> None:
    widths = sorted(
        set(
            Item.objects.filter(dataset=dataset, width__isnull=False).values_list(
                "width", flat=True
            )
        )
    )
    chain = " OR ".join(f"width = {i}" for i in [*range(500), widths[0]])
    assert matching(dataset, chain) == matching(dataset, f"width = {widths[0]}") != []


def test_it_refuses_overlong_queries(dataset: Dataset) -> None:
    error = error_for(dataset, "width > 1 AND " * (MAX_QUERY_LENGTH // 10) + "width > 1")
    assert f"longer than {MAX_QUERY_LENGTH} characters" in error.message


def test_it_refuses_nul_characters(dataset: Dataset) -> None:
    error = error_for(dataset, "width > 1\x00")
    assert error.position["column"] == 10
