"""Which items: a slice's items now, an item set from API input, ids checked against a
dataset, and the SQL of an item set for splicing into set-based statements.

The low layer under slices, filters, selectors, exports and the embeddings app: it builds
on the models and the query language only. (Compiling a saved query with its similarity
condition, ``query_items_q``, lives in the query package: the compiler expands dynamic
slices through it.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet

from curation.errors import invalid_field, unknown_items
from curation.models import Dataset, Item, Slice, SliceItem, SliceVersion, SliceVersionItem
from curation.query import compile_query, query_items_q


def sql_of(queryset: QuerySet[Any]) -> tuple[str, list[Any]]:
    """The SQL and parameters of a queryset, for use as a subquery."""
    sql, params = queryset.query.sql_with_params()
    return sql, list(params)


def item_ids_sql(items: QuerySet[Item]) -> tuple[str, list[Any]]:
    # order_by(): Item's default ordering would add a pointless sort to the subquery.
    return sql_of(items.order_by().values("id"))


def slice_items_q(slice: Slice) -> Q:
    """A filter on Item for the items in `slice` now: its members, or its query's matches."""
    if not slice.is_dynamic:
        return Q(dataset_id=slice.dataset_id) & Q(
            pk__in=SliceItem.objects.filter(slice_id=slice.pk).values("item_id")
        )
    return query_items_q(dataset=slice.dataset, query=slice.query, similarity=slice.similarity)


def slice_items(slice: Slice) -> QuerySet[Item]:
    """The items in `slice` now (static or dynamic), unordered."""
    return Item.objects.filter(slice_items_q(slice)).order_by()


def slice_item_count(slice: Slice) -> int:
    return slice_items(slice).count()


@dataclass(frozen=True)
class ItemSet:
    """Some of a dataset's current items: all of them, a slice's, a version's (those still
    in the dataset), narrowed by a query when one is given."""

    dataset: Dataset
    slice: Slice | None = None
    version: SliceVersion | None = None
    query: str = ""

    def q(self) -> Q:
        q = Q(dataset_id=self.dataset.pk)
        if self.version is not None:
            q &= Q(pk__in=SliceVersionItem.objects.filter(version=self.version).values("item_id"))
        elif self.slice is not None:
            q &= slice_items_q(self.slice)
        if self.query.strip():
            q &= compile_query(self.query, dataset=self.dataset)
        return q

    def queryset(self) -> QuerySet[Item]:
        return Item.objects.filter(self.q()).order_by()


def item_set_resolve(
    *,
    dataset: Dataset,
    slice_id: int | None = None,
    version: int | None = None,
    query: str = "",
    path: str = "source",
) -> ItemSet:
    """An ItemSet from API input; unknown slices or versions are a 400 naming the field."""
    prefix = f"{path}." if path else ""
    found_slice = None
    found_version = None
    if slice_id is not None:
        found_slice = Slice.objects.filter(dataset=dataset, pk=slice_id).first()
        if found_slice is None:
            raise invalid_field(f"{prefix}slice", f"no slice {slice_id} in this dataset")
    if version is not None:
        if found_slice is None:
            raise invalid_field(f"{prefix}version", "needs a slice")
        found_version = SliceVersion.objects.filter(slice=found_slice, number=version).first()
        if found_version is None:
            raise invalid_field(
                f"{prefix}version", f"slice {found_slice.name!r} has no version {version}"
            )
    if query.strip():
        compile_query(query, dataset=dataset)  # a bad query is a 400 with its position
    return ItemSet(dataset=dataset, slice=found_slice, version=found_version, query=query)


def item_ids_check(
    *, dataset: Dataset, item_ids: Sequence[int], path: str = "item_ids"
) -> list[int]:
    """The ids, deduplicated in order; a 400 listing every id that is not the dataset's item."""
    wanted = list(dict.fromkeys(int(i) for i in item_ids))
    found = set(Item.objects.filter(dataset=dataset, pk__in=wanted).values_list("id", flat=True))
    unknown = [(index, i) for index, i in enumerate(item_ids) if int(i) not in found]
    if unknown:
        raise unknown_items([(index, str(i)) for index, i in unknown], path=path, noun="item ids")
    return wanted


__all__ = [
    "ItemSet",
    "item_ids_check",
    "item_ids_sql",
    "item_set_resolve",
    "slice_item_count",
    "slice_items",
    "slice_items_q",
    "sql_of",
]
