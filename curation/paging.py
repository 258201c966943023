"""Pages of a view's items: keyset pages in id order, or sorted by a value per item.

No OFFSET and no COUNT: a page starts after (or before) an item, so paging a million
items costs the same on page 1 and page 10,000, and no item repeats or goes missing when
items are added between pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import F, Q, QuerySet, Subquery

from curation.models import Item


@dataclass
class KeysetPage:
    """One page of items in id order, and whether there are pages after and before it."""

    items: list[Item]
    has_next: bool
    has_previous: bool


def items_keyset_page(
    items: QuerySet[Item], *, after: int | None, before: int | None, limit: int
) -> KeysetPage:
    """One page of `items` in id order, after or before an id: no OFFSET and no COUNT."""
    if before is not None:
        rows = list(items.filter(id__lt=before).order_by("-id")[: limit + 1])
        return KeysetPage(rows[:limit][::-1], has_next=True, has_previous=len(rows) > limit)
    if after is not None:
        items = items.filter(id__gt=after)
    rows = list(items.order_by("id")[: limit + 1])
    return KeysetPage(rows[:limit], has_next=len(rows) > limit, has_previous=after is not None)


@dataclass(frozen=True)
class SortOrder:
    """Items ordered by a value per item (`curation.query.sort_expression`: a count, a
    score, a metadata value), items without a value last, ties broken by id."""

    value: Any
    descending: bool = False


def _sort_annotated(items: QuerySet[Item], order: SortOrder) -> QuerySet[Item]:
    return items.annotate(sort_value=order.value)


def _sort_ordered(items: QuerySet[Item], order: SortOrder, *, reverse: bool) -> QuerySet[Item]:
    """`items` (annotated) in the order's sequence, or its exact reverse (to step back)."""
    value = F("sort_value")
    if order.descending != reverse:
        first = value.desc(nulls_first=True) if reverse else value.desc(nulls_last=True)
    else:
        first = value.asc(nulls_first=True) if reverse else value.asc(nulls_last=True)
    return items.order_by(first, "-id" if reverse else "id")


def _sort_beyond(
    items: QuerySet[Item], order: SortOrder, item_id: int, *, reverse: bool
) -> QuerySet[Item]:
    """The annotated `items` after `item_id` in the order (before it with `reverse`).

    The cursor is the item's id; its value is read in the same statement (a subquery), so
    a page link stays right when values change and needs no value in the URL."""
    cursor = Subquery(
        Item.objects.filter(pk=item_id).annotate(sort_value=order.value).values("sort_value")[:1]
    )
    items = items.annotate(cursor_value=cursor)
    # Past the cursor's value: greater when ascending, smaller when descending.
    past = "lt" if order.descending != reverse else "gt"
    same = Q(sort_value=F("cursor_value"))
    if not reverse:
        with_value = (
            Q(**{f"sort_value__{past}": F("cursor_value")})
            | (same & Q(id__gt=item_id))
            | Q(sort_value__isnull=True)
        )
        without_value = Q(sort_value__isnull=True, id__gt=item_id)
    else:
        with_value = Q(**{f"sort_value__{past}": F("cursor_value")}) | (same & Q(id__lt=item_id))
        without_value = Q(sort_value__isnull=False) | Q(sort_value__isnull=True, id__lt=item_id)
    return items.filter(
        (Q(cursor_value__isnull=False) & with_value)
        | (Q(cursor_value__isnull=True) & without_value)
    )


def items_sorted_page(
    items: QuerySet[Item],
    *,
    order: SortOrder,
    after: int | None,
    before: int | None,
    limit: int,
) -> KeysetPage:
    """One page of `items` sorted by `order`, after or before an item: no OFFSET, no COUNT.

    Each page sorts the view by the value (a top-N sort: a pass over the view's items,
    unlike the id order, which an index serves)."""
    annotated = _sort_annotated(items, order)
    if before is not None:
        rows = list(
            _sort_ordered(
                _sort_beyond(annotated, order, before, reverse=True), order, reverse=True
            )[: limit + 1]
        )
        return KeysetPage(rows[:limit][::-1], has_next=True, has_previous=len(rows) > limit)
    if after is not None:
        annotated = _sort_beyond(annotated, order, after, reverse=False)
    rows = list(_sort_ordered(annotated, order, reverse=False)[: limit + 1])
    return KeysetPage(rows[:limit], has_next=len(rows) > limit, has_previous=after is not None)


def item_neighbour_ids(
    items: QuerySet[Item], *, item_id: int, order: SortOrder | None = None
) -> tuple[int | None, int | None]:
    """The ids of the items of `items` just before and just after `item_id`, in id order
    or in `order`."""
    if order is not None:
        annotated = _sort_annotated(items, order)
        ids = []
        for reverse in (True, False):
            beyond = _sort_beyond(annotated, order, item_id, reverse=reverse)
            ids.append(
                _sort_ordered(beyond, order, reverse=reverse).values_list("id", flat=True).first()
            )
        return ids[0], ids[1]
    before = items.filter(id__lt=item_id).order_by("-id").values_list("id", flat=True).first()
    after = items.filter(id__gt=item_id).order_by("id").values_list("id", flat=True).first()
    return before, after
