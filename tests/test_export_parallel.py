"""Exports of live sources read their batches on several connections at once.

Outside a transaction (a streamed response, an export job) the batches of a dataset or
slice are built by fetcher threads. These tests commit their data (transactional_db),
because a fetcher's connection cannot see another connection's uncommitted rows.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from django.db import connection

from curation.export import sources as export_module
from curation.export.coco import coco_chunks
from curation.export.jsonl import jsonl_chunks
from curation.export.sources import export_source, iter_rows
from curation.models import Item, Slice, SliceItem
from curation.storage import MediaUrls
from tests.slice_factories import numbered_items

pytestmark = pytest.mark.django_db(transaction=True)


def fetcher_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("export-fetch-")]


def body(chunks: Any) -> bytes:
    return b"".join(chunks)


def test_parallel_output_is_byte_identical_to_one_connection(dataset: Any, settings: Any) -> None:
    numbered_items(dataset, 57)
    part = Slice.objects.create(dataset=dataset, name="odd")
    SliceItem.objects.bulk_create(
        SliceItem(slice=part, item_id=pk)
        for pk in Item.objects.filter(dataset=dataset).values_list("pk", flat=True)
        if pk % 2
    )
    assert not connection.in_atomic_block
    urls = MediaUrls()
    for source in (export_source(dataset=dataset), export_source(dataset=dataset, slice=part)):
        # A live COCO file carries the moment it was made (info.date_created): the clock
        # stands still here so that the two files can be compared byte for byte.
        with time_machine.travel(datetime(2030, 1, 1, 23, 59, 59, tzinfo=UTC), tick=False):
            settings.NUCLEUS_EXPORT_FETCHERS = 1
            one = body(jsonl_chunks(source, urls=urls, batch_size=4))
            one_coco = body(coco_chunks(source, urls=urls, batch_size=4))
            settings.NUCLEUS_EXPORT_FETCHERS = 3
            many = body(jsonl_chunks(source, urls=urls, batch_size=4))
            many_coco = body(coco_chunks(source, urls=urls, batch_size=4))
        assert one == many
        assert one_coco == many_coco
        assert b'"date_created": "2030-01-01T23:59:59Z"' in many_coco
        assert many.count(b"\n") == source_size(source)
    assert fetcher_threads() == []


def source_size(source: Any) -> int:
    if source.slice is None:
        return Item.objects.filter(dataset=source.dataset).count()
    return SliceItem.objects.filter(slice=source.slice).count()


def test_it_uses_the_fetcher_threads(dataset: Any, settings: Any, monkeypatch: Any) -> None:
    numbered_items(dataset, 20)
    settings.NUCLEUS_EXPORT_FETCHERS = 2
    seen: set[str] = set()
    live_rows = export_module._live_rows

    def spy(*args: Any) -> Any:
        seen.add(threading.current_thread().name)
        return live_rows(*args)

    monkeypatch.setattr(export_module, "_live_rows", spy)
    rows = [
        row.reference_id
        for batch in iter_rows(export_source(dataset=dataset), payload="record", batch_size=3)
        for row in batch
    ]
    assert rows == sorted(rows) and len(rows) == 20
    assert seen and all(name.startswith("export-fetch-") for name in seen)


def test_a_consumer_that_stops_early_stops_the_threads(dataset: Any, settings: Any) -> None:
    numbered_items(dataset, 40)
    settings.NUCLEUS_EXPORT_FETCHERS = 2
    chunks = jsonl_chunks(export_source(dataset=dataset), urls=MediaUrls(), batch_size=2)
    first = next(chunks)
    assert first.count(b"\n") == 2
    assert fetcher_threads()
    chunks.close()  # what Django does when a client hangs up mid-stream
    assert fetcher_threads() == []


def test_an_error_in_a_fetcher_reaches_the_consumer(
    dataset: Any, settings: Any, monkeypatch: Any
) -> None:
    numbered_items(dataset, 12)
    settings.NUCLEUS_EXPORT_FETCHERS = 2
    live_rows = export_module._live_rows
    calls = {"n": 0}

    def failing(*args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("connection lost")
        return live_rows(*args)

    monkeypatch.setattr(export_module, "_live_rows", failing)
    with pytest.raises(RuntimeError, match="connection lost"):
        body(jsonl_chunks(export_source(dataset=dataset), urls=MediaUrls(), batch_size=2))
    assert fetcher_threads() == []


def test_inside_a_transaction_it_reads_its_own_writes(dataset: Any, settings: Any) -> None:
    from django.db import transaction

    settings.NUCLEUS_EXPORT_FETCHERS = 3
    with transaction.atomic():
        numbered_items(dataset, 9)  # not committed: only this connection sees them
        out = body(jsonl_chunks(export_source(dataset=dataset), urls=MediaUrls(), batch_size=2))
        transaction.set_rollback(True)
    assert out.count(b"\n") == 9
