"""The query language: one text syntax for the API, the CLI and the UI's query bar.

    metadata.weather = "rain" AND annotations.car >= 2 AND NOT tag = reviewed

`compile_query` turns a query into a filter on Item (ORM expressions only, never SQL
text); `query_items_q` also applies a saved similarity condition; `filter_items` applies
a query to a queryset; `validate_query` checks one for a "check my query" endpoint.
Errors are `QueryError` (an InvalidInput, so a 400) with the position of the
problem. The reference, with examples that tests run, is docs/query-language.md.
"""

from __future__ import annotations

from django.db.models import QuerySet

from curation.models import Dataset, Item
from curation.query.compiler import (
    FieldCondition,
    FieldHandler,
    FieldHelp,
    FieldRef,
    ValueHandler,
    compile_query,
    count_condition,
    query_items_q,
    register_field,
    sort_expression,
)
from curation.query.parser import QueryError


def filter_items(queryset: QuerySet[Item], text: str, *, dataset: Dataset) -> QuerySet[Item]:
    """Filter an Item queryset by query text."""
    return queryset.filter(compile_query(text, dataset=dataset))


def validate_query(text: str, *, dataset: Dataset) -> None:
    """Raise QueryError if `text` is not a valid query for `dataset`."""
    compile_query(text, dataset=dataset)


__all__ = [
    "FieldCondition",
    "FieldHandler",
    "FieldHelp",
    "FieldRef",
    "QueryError",
    "ValueHandler",
    "compile_query",
    "count_condition",
    "filter_items",
    "query_items_q",
    "register_field",
    "sort_expression",
    "validate_query",
]
