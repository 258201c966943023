"""Keyset pages of a dataset's items, in id order or sorted by an item column (an image
quality signal), and an item's neighbours in the same order: no OFFSET and no COUNT.
Read through curation.selectors, which re-exports these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import F, Q, QuerySet

from curation.errors import InvalidInput, invalid_field
from curation.models import Item


@dataclass
class KeysetPage:
    """One page of items in id order (or a sort's), and whether there are pages after and
    before it."""

    items: list[Item]
    has_next: bool
    has_previous: bool


@dataclass(frozen=True)
class Sort:
    """A sort of a dataset's listing by an item column. Items without a value come last,
    ties in id order: (value is null, value, id) is a total order, so any item of the
    dataset is a keyset cursor."""

    column: str
    descending: bool
    dataset_id: int


def _sort_order(sort: Sort, *, reverse: bool = False) -> list[Any]:
    column, descending = sort.column, sort.descending
    # Reversed (to page backwards), the items without a value come first.
    nulls = {"nulls_first": True} if reverse else {"nulls_last": True}
    first = F(column).desc(**nulls) if descending != reverse else F(column).asc(**nulls)
    return [first, "-id" if reverse else "id"]


def _sort_beyond(items: QuerySet[Item], sort: Sort, item_id: int, *, after: bool) -> QuerySet[Item]:
    """The items after (or before) the item `item_id` in the sort's order; the sort's
    value is read from the cursor item itself, so links carry only its id."""
    column, descending = sort.column, sort.descending
    found = Item.objects.filter(pk=item_id, dataset_id=sort.dataset_id).values_list(
        column, flat=True
    )
    if not found:
        raise unknown_cursor(after)
    value = found[0]
    same_and = Q(**{column: value}) & (Q(id__gt=item_id) if after else Q(id__lt=item_id))
    if value is None:  # the cursor is in the trailing run of items without a value
        nulls = Q(**{f"{column}__isnull": True})
        if after:
            return items.filter(nulls & Q(id__gt=item_id))
        return items.filter(~nulls | (nulls & Q(id__lt=item_id)))
    further = "lt" if descending == after else "gt"
    condition = Q(**{f"{column}__{further}": value}) | same_and
    if after:
        condition |= Q(**{f"{column}__isnull": True})
    return items.filter(condition)


def unknown_cursor(after: bool) -> InvalidInput:
    return invalid_field("after" if after else "before", "is not an item of this dataset")


def items_keyset_page(
    items: QuerySet[Item],
    *,
    after: int | None,
    before: int | None,
    limit: int,
    sort: Sort | None = None,
) -> KeysetPage:
    """One page of `items` in id order (or `sort`'s), after or before an item: no OFFSET
    and no COUNT."""
    if sort is not None:
        if before is not None:
            beyond = _sort_beyond(items, sort, before, after=False)
            rows = list(beyond.order_by(*_sort_order(sort, reverse=True))[: limit + 1])
            return KeysetPage(rows[:limit][::-1], has_next=True, has_previous=len(rows) > limit)
        if after is not None:
            items = _sort_beyond(items, sort, after, after=True)
        rows = list(items.order_by(*_sort_order(sort))[: limit + 1])
        return KeysetPage(rows[:limit], has_next=len(rows) > limit, has_previous=after is not None)
    if before is not None:
        rows = list(items.filter(id__lt=before).order_by("-id")[: limit + 1])
        return KeysetPage(rows[:limit][::-1], has_next=True, has_previous=len(rows) > limit)
    if after is not None:
        items = items.filter(id__gt=after)
    rows = list(items.order_by("id")[: limit + 1])
    return KeysetPage(rows[:limit], has_next=len(rows) > limit, has_previous=after is not None)


def item_neighbour_ids(
    items: QuerySet[Item], *, item_id: int, sort: Sort | None = None
) -> tuple[int | None, int | None]:
    """The ids of the items of `items` just before and just after `item_id`, in id order
    (or `sort`'s)."""
    if sort is not None:
        before = (
            _sort_beyond(items, sort, item_id, after=False)
            .order_by(*_sort_order(sort, reverse=True))
            .values_list("id", flat=True)
            .first()
        )
        after = (
            _sort_beyond(items, sort, item_id, after=True)
            .order_by(*_sort_order(sort))
            .values_list("id", flat=True)
            .first()
        )
        return before, after
    before = items.filter(id__lt=item_id).order_by("-id").values_list("id", flat=True).first()
    after = items.filter(id__gt=item_id).order_by("id").values_list("id", flat=True).first()
    return before, after


__all__ = ["KeysetPage", "Sort", "item_neighbour_ids", "items_keyset_page"]
