"""Keyset (cursor) pagination by id: stable under inserts and O(page) at any depth.

One cursor scheme for the whole API: DRF's cursor (an opaque token holding the last id
of the page), used by the list endpoints through `Cursor` and by the record pages, which
are made in SQL by curation.export, through `RecordCursor`.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import exceptions
from rest_framework.pagination import Cursor as Position
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from curation import paging
from curation.api.common import int_param
from curation.errors import invalid_field
from curation.history.models import AnnotationChange
from curation.history.selectors import HistoryRows, history_page
from curation.models import Item
from curation.paging import KeysetPage, SortOrder


class Cursor(CursorPagination):
    """Keyset pagination by id with strict `cursor` and `limit` parameters (400, not 404)."""

    ordering = "id"
    page_size = 100
    page_size_query_param = "limit"
    max_page_size = 1000
    cursor_error = "is not a cursor from a previous page's next/previous link"

    def decode_cursor(self, request: Request) -> Any:
        try:
            cursor = super().decode_cursor(request)
            if cursor is not None and cursor.position is not None:
                int(cursor.position)  # ids only: anything else would reach the database
        except (exceptions.NotFound, ValueError):
            raise invalid_field("cursor", self.cursor_error) from None
        return cursor

    def get_page_size(self, request: Request) -> int:
        return int_param(
            request,
            self.page_size_query_param or "limit",
            default=int(self.page_size),
            low=1,
            high=int(self.max_page_size or self.page_size),
            capped=True,
        )


class SortedCursor(Cursor):
    """Keyset pages of items sorted by a value (curation.paging): the cursor holds the id
    of the item a page starts after (or, going back, before); its value is read again."""

    def sorted_page(self, items: QuerySet[Item], request: Request, order: SortOrder) -> KeysetPage:
        cursor = self.decode_cursor(request)
        after = before = None
        if cursor is not None and cursor.position is not None:
            if cursor.offset:
                raise invalid_field("cursor", self.cursor_error)
            if cursor.reverse:
                before = int(cursor.position)
            else:
                after = int(cursor.position)
        page = paging.items_sorted_page(
            items, order=order, after=after, before=before, limit=self.get_page_size(request)
        )
        self.base_url = request.build_absolute_uri()
        first, last = (page.items[0].pk, page.items[-1].pk) if page.items else (None, None)
        self.sorted_links = {
            "next": str(self.encode_cursor(Position(offset=0, reverse=False, position=last)))
            if page.has_next and last is not None
            else None,
            "previous": str(self.encode_cursor(Position(offset=0, reverse=True, position=first)))
            if page.has_previous and first is not None
            else None,
        }
        return page

    def sorted_response(self, data: list[Any]) -> Response:
        return Response({**self.sorted_links, "results": data})


class NewestFirstCursor(Cursor):
    ordering = "-id"


class HistoryCursor(NewestFirstCursor):
    """Pages of a dataset's annotation history, newest first: the cursor holds the last
    change id of a page (a bulk creation's row stands for many changes, so pages are made
    by curation.history.selectors.history_page, not by slicing a queryset)."""

    def history_page(self, rows: HistoryRows, request: Request) -> list[AnnotationChange]:
        cursor = self.decode_cursor(request)
        before = None
        if cursor is not None and cursor.position is not None:
            if cursor.offset or cursor.reverse:
                raise invalid_field("cursor", self.cursor_error)
            before = int(cursor.position)
        page, more = history_page(rows, before=before, limit=self.get_page_size(request))
        self.base_url = request.build_absolute_uri()
        self.history_next = (
            str(self.encode_cursor(Position(offset=0, reverse=False, position=page[-1].pk)))
            if more and page
            else None
        )
        return page

    def get_paginated_response(self, data: Any) -> Response:
        return Response({"next": self.history_next, "previous": None, "results": data})


class RecordCursor(Cursor):
    """Cursors of record pages: forward only, after an item id."""

    cursor_error = "is not a cursor from a previous page's next link"

    def after(self, request: Request) -> int:
        """The item id the requested page starts after (0: the first page)."""
        cursor = self.decode_cursor(request)
        if cursor is None or cursor.position is None:
            return 0
        after = int(cursor.position)
        if after < 0 or cursor.reverse or cursor.offset:
            raise invalid_field("cursor", self.cursor_error)
        return after

    def next_link(self, request: Request, after: int | None) -> str | None:
        """The link to the page after item id `after`; None after the last page."""
        if after is None:
            return None
        self.base_url = request.build_absolute_uri()
        return str(self.encode_cursor(Position(offset=0, reverse=False, position=after)))
