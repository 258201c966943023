"""A run's subsets (its `subsets` option): which of a chunk's items are in each metadata
value, tag and slice, read with the chunk, and how each subset is named and queried.

A subset's key is `metadata.<key>=<JSON value>`, `tag=<name>` or `slice=<id>`. A metadata
key gives one subset per value seen (strings, numbers, booleans; objects, lists and null
are not values to group by), at most MAX_VALUES per key: the items of further values
are left out, and the run warns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from curation.errors import invalid_field
from curation.itemsets import slice_items
from curation.models import Item, ItemTag, Slice
from curation.query.parser import quote_name
from evaluation.models import EvaluationRun

MAX_VALUES = 50
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def slices_check(dataset_id: int, ids: Sequence[int]) -> None:
    """Each slice id names a slice of the dataset: a 400 naming the entry otherwise."""
    found = set(Slice.objects.filter(dataset=dataset_id, pk__in=ids).values_list("pk", flat=True))
    for index, pk in enumerate(ids):
        if pk not in found:
            raise invalid_field(
                f"options.subsets.slices[{index}]", f"no slice {pk} in this dataset"
            )


@dataclass
class Subsets:
    """Reads the subsets of a run's chunks; `described` names each subset seen."""

    run: EvaluationRun
    scope: set[int]
    keys: list[str] = field(default_factory=list)
    tags: bool = False
    slices: dict[int, tuple[str, set[int]]] = field(default_factory=dict)
    described: dict[str, dict[str, Any]] = field(default_factory=dict)
    values: dict[str, set[str]] = field(default_factory=dict)
    overflow: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, run: EvaluationRun, item_ids: Sequence[int]) -> Subsets | None:
        spec = (run.options or {}).get("subsets") or {}
        if not spec:
            return None
        found = cls(run, set(item_ids), list(spec.get("metadata", [])), bool(spec.get("tags")))
        for slice_ in Slice.objects.filter(dataset=run.dataset_id, pk__in=spec.get("slices", [])):
            members = set(slice_items(slice_).values_list("id", flat=True)) & found.scope
            found.slices[slice_.pk] = (slice_.name, members)
        return found

    def chunk(self, item_ids: Sequence[int]) -> dict[str, set[int]]:
        """The chunk's items in each subset (subsets without any of them left out)."""
        out: dict[str, set[int]] = {}
        metadata = (
            Item.objects.filter(pk__in=item_ids).values_list("id", "metadata") if self.keys else []
        )
        for key in self.keys:
            for item_id, data in metadata:
                value = data.get(key) if isinstance(data, dict) else None
                if value is None or isinstance(value, dict | list):
                    continue
                text = json.dumps(value, sort_keys=True)
                seen = self.values.setdefault(key, set())
                if text not in seen and len(seen) >= MAX_VALUES:
                    self.overflow.add(key)
                    continue
                seen.add(text)
                name = f"metadata.{key}={text}"
                self.described.setdefault(name, {"kind": "metadata", "field": key, "value": value})
                out.setdefault(name, set()).add(item_id)
        if self.tags:
            for item_id, tag in ItemTag.objects.filter(item_id__in=item_ids).values_list(
                "item_id", "tag__name"
            ):
                name = f"tag={tag}"
                self.described.setdefault(name, {"kind": "tag", "value": tag})
                out.setdefault(name, set()).add(item_id)
        chunk = set(item_ids)
        for pk, (slice_name, members) in self.slices.items():
            name = f"slice={pk}"
            self.described.setdefault(name, {"kind": "slice", "slice": pk, "value": slice_name})
            here = members & chunk
            if here:
                out.setdefault(name, set()).update(here)
        return out

    def rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The engine's per-subset numbers with what each subset is and its query, in the
        order the page shows them (metadata, tags, slices)."""
        out = []
        for row in rows:
            described = self.described[row["key"]]
            out.append({**row, **described, "query": subset_condition(described)})
        return sorted(
            out,
            key=lambda r: (_ORDER[r["kind"]], str(r.get("field", "")), str(r["value"])),
        )

    def warnings(self) -> list[str]:
        return [
            f"The metadata key {key!r} has more than {MAX_VALUES} values: the subsets "
            "table shows the first ones seen, the items of the others are left out."
            for key in sorted(self.overflow)
        ]


_ORDER = {"metadata": 0, "tag": 1, "slice": 2}


def _key(name: str) -> str:
    return name if _PLAIN.match(name) else quote_name(name)


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return quote_name(str(value))


def subset_condition(described: dict[str, Any]) -> str:
    """The query language's condition for a subset's items."""
    kind = described["kind"]
    if kind == "metadata":
        return f"metadata.{_key(str(described['field']))} = {_literal(described['value'])}"
    if kind == "tag":
        return f"tag = {quote_name(str(described['value']))}"
    return f"slice = {quote_name(str(described['value']))}"
