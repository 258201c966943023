"""The grid's sort box: what it suggests, and how a tile shows its item's sort value.
Any value of the query language sorts (curation.query.sort_expression, curation.paging)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from curation.quality import QUALITY_FIELDS
from curation.query.compiler import value_fields
from curation.query.parser import quote_name


def sort_text(value: Any) -> str:
    """A tile's sort value, short: numbers to 4 significant digits, text as it is."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float | Decimal):
        number = float(value)
        return str(int(number)) if number.is_integer() else f"{number:.4g}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def sort_keys(models: list[str]) -> list[str]:
    """Sort keys the sort box suggests; any value of the query language works."""
    return [
        "annotations.count",
        *(f"predictions[{quote_name(name)}].confidence" for name in models[:10]),
        *value_fields(),
        *(f"quality.{f.name}" for f in QUALITY_FIELDS.values() if f.kind == "number"),
        "width * height",
        "created",
        "reference_id",
    ]
