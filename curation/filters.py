"""Item filters from query parameters.

``metadata.<key>[__<op>]=<value>`` filters on item metadata. ``<key>`` may be dotted to
reach nested objects (``metadata.camera.model=x100``). Values are typed: ``true``, ``false``
and ``null`` are JSON literals, anything that looks like a number is a number, text in
double quotes is always a string, everything else is a string. A number also matches the
same text stored as a string (``metadata.speed=10`` matches ``10`` and ``"10"``).

Operators: ``eq`` (default), ``ne`` (items without the key match too), ``gt``, ``gte``,
``lt``, ``lte`` (numbers compare numerically, strings by text; values of another type never
match), ``in`` (comma-separated values, any of them), ``exists`` (``true`` or ``false``).
Repeated parameters all apply (AND). The UI's facets ask for the other reading
(``any_of``): repeated values of one equality, tag or slice parameter match any of them
(rain or fog), while different parameters still all apply.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

from django.db.models import BooleanField, Exists, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL

from curation.errors import InvalidInput, field_error
from curation.itemsets import slice_items_q
from curation.models import Dataset, Item, ItemTag, Slice
from curation.query import filter_items

OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "exists")
ITEM_FILTER_PARAMS = ("reference_id", "tag", "slice", "query")
PAGINATION_PARAMS = ("cursor", "limit")
MAX_IN_VALUES = 1000
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_JSONPATH_OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


class _BadParam(ValueError):
    pass


def parse_value(text: str) -> Any:
    """The typed value of a query-string value."""
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if _NUMBER.fullmatch(text):
        try:
            number = float(text) if any(c in text for c in ".eE") else int(text)
        except ValueError:
            # int() refuses more than 4,300 digits (sys.get_int_max_str_digits).
            raise _BadParam(f"{text[:20]}... is out of range") from None
        if isinstance(number, float) and not math.isfinite(number):
            raise _BadParam(f"{text[:40]!r} is out of range")
        return number
    return text


def _key_parts(key: str) -> list[str]:
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise _BadParam("needs a key after 'metadata.', e.g. metadata.weather=rain")
    return parts


def _nested(parts: list[str], value: Any) -> dict[str, Any]:
    for part in reversed(parts):
        value = {part: value}
    return value  # type: ignore[no-any-return]


def _jsonpath(parts: list[str]) -> str:
    # json.dumps quotes and escapes each key, so a key can never break out of the path.
    return "$" + "".join(f".{json.dumps(p)}" for p in parts)


def _path_exists(path: str) -> RawSQL:
    # The table name is fixed: these filters only ever apply to Item querysets.
    return RawSQL('"curation_item"."metadata" @? %s::jsonpath', [path], output_field=BooleanField())


def _equals(parts: list[str], raw: str) -> Q:
    value = parse_value(raw)
    # Containment (@>) can use the GIN index on metadata.
    condition = Q(metadata__contains=_nested(parts, value))
    if not isinstance(value, str):
        condition |= Q(metadata__contains=_nested(parts, raw))
    return condition


def metadata_condition(key: str, op: str, raw: str) -> Q | RawSQL:
    """The condition for one ``metadata.<key>__<op>=<raw>`` parameter."""
    parts = _key_parts(key)
    if op == "eq":
        return _equals(parts, raw)
    if op == "ne":
        return ~_equals(parts, raw)
    if op == "in":
        values = raw.split(",")
        if len(values) > MAX_IN_VALUES:
            raise _BadParam(f"takes at most {MAX_IN_VALUES} values")
        condition = Q()
        for value in values:
            condition |= _equals(parts, value)
        return condition
    if op == "exists":
        flag = parse_value(raw)
        if not isinstance(flag, bool):
            raise _BadParam("must be true or false")
        exists = Q(_path_exists(_jsonpath(parts)))
        return exists if flag else ~exists
    value = parse_value(raw)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _BadParam(f"{op} needs a number or a string, got {raw!r}")
    path = f"{_jsonpath(parts)} ? (@ {_JSONPATH_OPS[op]} {json.dumps(value)})"
    return _path_exists(path)


def _split_operator(name: str) -> tuple[str, str]:
    key = name.removeprefix("metadata.")
    if "__" in key:
        head, _, op = key.rpartition("__")
        if op not in OPERATORS:
            raise _BadParam(f"unknown operator {op!r}; use one of {', '.join(OPERATORS)}")
        return head, op
    return key, "eq"


def _slice_condition(dataset: Dataset, raw: str) -> Q:
    """The slice's items now: its members, or a dynamic slice's query matches."""
    try:
        slice_id = int(raw)
    except ValueError:
        raise _BadParam("must be a slice id") from None
    found = Slice.objects.filter(pk=slice_id, dataset=dataset).first()
    if found is None:
        raise _BadParam(f"no slice {slice_id} in this dataset")
    return slice_items_q(found)


def items_filter(
    queryset: QuerySet[Item],
    *,
    dataset: Dataset,
    params: Any,
    extra_params: Iterable[str] = (),
    any_of: bool = False,
) -> QuerySet[Item]:
    """Apply the item filters in `params` (a QueryDict); 400 naming every bad parameter.

    Parameters other than the filters, pagination and `extra_params` are errors, so a
    typo never silently returns the whole dataset. With `any_of`, the repeated values of
    one ``metadata.<key>`` equality, ``tag`` or ``slice`` parameter combine with OR.
    """

    def each(conditions: list[Q]) -> QuerySet[Item]:
        if any_of and len(conditions) > 1:
            either = Q()
            for condition in conditions:
                either |= condition
            return queryset.filter(either)
        found = queryset
        for condition in conditions:
            found = found.filter(condition)
        return found

    errors: list[dict[str, str]] = []
    allowed = {*ITEM_FILTER_PARAMS, *PAGINATION_PARAMS, *extra_params}
    for name in params:
        values = params.getlist(name)
        try:
            if "\x00" in name or any("\x00" in v for v in values):
                # PostgreSQL text cannot hold NUL; refuse it here rather than fail in the query.
                raise _BadParam("must not contain NUL characters")
            if name.startswith("metadata."):
                key, op = _split_operator(name)
                found = [metadata_condition(key, op, raw) for raw in values]
                if op == "eq":
                    queryset = each([Q(c) if not isinstance(c, Q) else c for c in found])
                else:
                    for condition in found:
                        queryset = queryset.filter(condition)
            elif name == "reference_id":
                queryset = queryset.filter(reference_id__in=values)
            elif name == "tag":
                queryset = each(
                    [
                        Q(
                            Exists(
                                ItemTag.objects.filter(
                                    item=OuterRef("pk"), tag__dataset=dataset, tag__name=tag
                                )
                            )
                        )
                        for tag in values
                    ]
                )
            elif name == "slice":
                queryset = each([_slice_condition(dataset, raw) for raw in values])
            elif name == "query":
                # The query language (docs/query-language.md); its errors carry positions.
                for text in values:
                    queryset = filter_items(queryset, text, dataset=dataset)
            elif name not in allowed:
                raise _BadParam(
                    "unknown parameter; filter with metadata.<key>[__<op>], reference_id, "
                    "tag, slice or query"
                )
        except _BadParam as exc:
            errors.append(field_error(name, str(exc)))
    if errors:
        raise InvalidInput(
            "; ".join(f"{e['path']}: {e['message']}" for e in errors[:5]), fields=errors
        )
    return queryset
