"""The query language: one text syntax for the API, the CLI and the UI's query bar.

    metadata.weather = "rain" AND annotations.car >= 2 AND NOT tag = reviewed

`compile_query` turns a query into a filter on Item (ORM expressions only, never SQL
text); `filter_items` applies it; `validate_query` checks one for a "check my query"
endpoint. Errors are `QueryError` (an InvalidInput, so a 400) with the position of the
problem. The reference, with examples that tests run, is docs/query-language.md.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from curation.models import Dataset, Item
from curation.query.compiler import Compiler, FieldCondition, FieldHandler, register_field
from curation.query.parser import QueryError, parse


def compile_query(text: str, *, dataset: Dataset) -> Q:
    """Compile query text into a filter on Item limited to `dataset`; blank matches all."""
    scope = Q(dataset_id=dataset.pk)
    if not text.strip():
        return scope
    tree = parse(text)
    return scope & Compiler(text, dataset).condition(tree)


def filter_items(queryset: QuerySet[Item], text: str, *, dataset: Dataset) -> QuerySet[Item]:
    """Filter an Item queryset by query text."""
    return queryset.filter(compile_query(text, dataset=dataset))


def validate_query(text: str, *, dataset: Dataset) -> None:
    """Raise QueryError if `text` is not a valid query for `dataset`."""
    compile_query(text, dataset=dataset)


__all__ = [
    "FieldCondition",
    "FieldHandler",
    "QueryError",
    "compile_query",
    "filter_items",
    "register_field",
    "validate_query",
]
