"""Injection attempts are data: quotes, semicolons and comment markers in values and names
either match nothing or are refused with a 400, never run, and never reach the SQL text."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.exceptions import EmptyResultSet
from django.db import connection

from curation.models import Annotation, Dataset, Item, Prediction, Tag
from curation.query import QueryError, filter_items
from tests.query_dataset import matching, module_dataset

PAYLOADS = [
    "'; DROP TABLE curation_item; --",
    "x' OR '1'='1",
    'x" OR "1"="1',
    "1; DELETE FROM curation_annotation",
    "rain' /* comment */ --",
    "*/ OR 1=1 /*",
    "$$; DROP TABLE curation_item; $$",
    "\\'; SELECT pg_sleep(10); --",
    "%s %(name)s {}",
]


def quoted(payload: str) -> str:
    """The payload as a double-quoted string literal of the query language."""
    return '"' + payload.replace("\\", "\\\\").replace('"', '\\"') + '"'


QUERIES = [
    *(f"metadata.weather = {quoted(p)}" for p in PAYLOADS),
    *(f"metadata.missing > {quoted(p)}" for p in PAYLOADS),
    *(f"metadata.{quoted(p)} = 1" for p in PAYLOADS),
    *(f"metadata.{quoted(p)} > 1" for p in PAYLOADS),
    *(f"metadata.camera.{quoted(p)} != null" for p in PAYLOADS[:1]),
    *(f"reference_id = {quoted(p)}" for p in PAYLOADS),
    *(f"annotations.{quoted(p)} >= 1" for p in PAYLOADS),
    *(f"annotations.{quoted(p)} + annotations.car >= 3" for p in PAYLOADS),
    *(f"annotations.car.{quoted(p)} = true" for p in PAYLOADS),
    *(f"annotations.car.{quoted(p)} < 'z'" for p in PAYLOADS),
    *(f"predictions[detector].{quoted(p)}.confidence > 0" for p in PAYLOADS),
    *(f"tag = {quoted(p)}" for p in PAYLOADS),
    *(f"metadata.weather IN ({quoted(p)}, 'nope')" for p in PAYLOADS),
    *(f"metadata.`{p}` = 'x'" for p in PAYLOADS if "`" not in p),
]

REFUSED = [
    "metadata.weather = 'rain'; DROP TABLE curation_item",
    "metadata.weather = 'rain' -- comment",
    "metadata.weather = 'rain' /* comment */",
    "metadata.weather = 'rain' # comment",
    "width > 1 UNION SELECT * FROM auth_user",
    "metadata.weather = 'rain'' OR ''1'='1'",
    "reference_id = img-1' OR '1'='1",
    'metadata.weather = "rain" OR 1=1',
    "width > 1) OR (1 = 1",
    'predictions["detector\'; --"].car >= 1',
    'slice = "train\'; DROP TABLE curation_slice; --"',
    "metadata.weather = '\\'; DROP TABLE curation_item; --",
]


@pytest.fixture(scope="module")
def shared_dataset(django_db_blocker: Any) -> Iterator[Dataset]:
    with module_dataset(django_db_blocker) as dataset:
        yield dataset


@pytest.fixture
def dataset(db: None, shared_dataset: Dataset) -> Dataset:
    return shared_dataset


def counts() -> tuple[int, int, int, int]:
    return (
        Item.objects.count(),
        Annotation.objects.count(),
        Prediction.objects.count(),
        Tag.objects.count(),
    )


@pytest.mark.parametrize("text", QUERIES)
def test_it_treats_quoted_payloads_as_data(dataset: Dataset, text: str) -> None:
    before = counts()
    assert matching(dataset, text) == []
    assert counts() == before
    assert "curation_item" in connection.introspection.table_names()


@pytest.mark.parametrize("text", QUERIES)
def test_it_never_puts_query_text_into_sql(dataset: Dataset, text: str) -> None:
    queryset = filter_items(Item.objects.all(), text, dataset=dataset)
    try:
        sql, _ = queryset.query.sql_with_params()
    except EmptyResultSet:
        return  # an unknown tag: Django knows the answer is empty and sends no SQL at all
    for payload in PAYLOADS:
        assert payload not in sql
    assert "DROP" not in sql
    assert "--" not in sql


@pytest.mark.parametrize("text", REFUSED)
def test_it_refuses_sql_outside_strings(dataset: Dataset, text: str) -> None:
    before = counts()
    with pytest.raises(QueryError):
        matching(dataset, text)
    assert counts() == before


def test_it_still_matches_a_value_that_looks_like_sql(dataset: Dataset) -> None:
    Item.objects.filter(reference_id="img-4").update(
        metadata={"note": "'; DROP TABLE curation_item; --", "it's": "ok"}
    )
    assert matching(dataset, 'metadata.note = "\'; DROP TABLE curation_item; --"') == ["img-4"]
    assert matching(dataset, "metadata.\"it's\" = 'ok'") == ["img-4"]
    assert Item.objects.count() == 5
