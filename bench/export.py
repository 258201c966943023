"""Slices and exports at scale: a 100-item page of a slice, freezing a version, and
export throughput in each format.

Targets (DESIGN.md), at 1M items with ~5 annotations each: a 100-item page of a slice
p50 <= 20 ms; a slice export streams >= 50,000 items/s. Uses the dataset of
bench/query.py (same database, built if missing), and a slice of `--slice` of its items
(every k-th item, so pages skip through the whole id range).

    .venv/bin/python bench/export.py [--n 1000000] [--slice 200000] [--repeat 21] [--reuse]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from _setup import report, setup_django
from query import DATASET_NAME, build

PAGE_TARGET_MS = 20.0
EXPORT_TARGET = 50_000  # items/s
SLICE_NAME = "bench-export"


def median_ms(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Median and 99th-percentile-ish (max of repeat) wall time of `fn`, in ms."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times)


def make_slice(dataset: Any, size: int) -> Any:
    """A static slice of `size` items spread over the dataset, rebuilt each run."""
    from django.db import connection

    from curation.models import Item, Slice

    Slice.objects.filter(dataset=dataset, name=SLICE_NAME).delete()
    new = Slice.objects.create(dataset=dataset, name=SLICE_NAME)
    total = Item.objects.filter(dataset=dataset).count()
    step = max(1, total // size)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO curation_sliceitem (slice_id, item_id, added) "
            "SELECT %s, id, now() FROM (SELECT id, row_number() OVER (ORDER BY id) AS n "
            "FROM curation_item WHERE dataset_id = %s) s WHERE s.n %% %s = 0 LIMIT %s",
            [new.pk, dataset.pk, step, size],
        )
        cursor.execute("ANALYZE curation_sliceitem")
    return new


def bench_pages(dataset: Any, slice: Any, version: Any, repeat: int) -> list[Any]:
    """A 100-item page with annotations at random depths: live slice and version."""
    from curation.export.jsonl import record_page
    from curation.export.sources import export_source
    from curation.models import SliceItem
    from curation.storage import MediaUrls

    ids = list(SliceItem.objects.filter(slice=slice).values_list("item_id", flat=True))
    rng = random.Random(1)
    urls = MediaUrls()
    rows = []
    for label, source in (
        ("live slice", export_source(dataset=dataset, slice=slice)),
        ("version", export_source(dataset=dataset, slice=slice, version=version)),
    ):

        def page(source: Any = source) -> None:
            records, _ = record_page(source, after=rng.choice(ids), limit=100, urls=urls)
            assert len(records) <= 100

        p50, worst = median_ms(page, repeat)
        print(f"100-item page of a {label}: p50 {p50:.1f} ms, max {worst:.1f} ms")
        rows.append(
            (
                f"100-item page, {label} (p50)",
                f"{p50:.1f} ms",
                f"<= {PAGE_TARGET_MS:.0f} ms",
                p50 <= PAGE_TARGET_MS,
            )
        )
    return rows


def bench_exports(dataset: Any, slice: Any, version: Any) -> list[Any]:
    """Items per second through each writer, for the live slice and its version."""
    from curation.export.formats import export_chunks
    from curation.export.sources import export_source
    from curation.storage import MediaUrls

    rows = []
    for label, source in (
        ("slice", export_source(dataset=dataset, slice=slice)),
        ("version", export_source(dataset=dataset, slice=slice, version=version)),
    ):
        for fmt in ("jsonl", "coco", "yolo"):
            count = [0]

            def progress(done: int, count: list[int] = count) -> None:
                count[0] = done

            start = time.perf_counter()
            size = 0
            for chunk in export_chunks(source, format=fmt, urls=MediaUrls(), progress=progress):
                size += len(chunk)
            seconds = time.perf_counter() - start
            rate = count[0] / seconds
            print(
                f"export {fmt} of a {label}: {count[0]:,} items, {size / 1e6:.0f} MB, "
                f"{seconds:.1f} s, {rate:,.0f} items/s"
            )
            rows.append(
                (
                    f"export {fmt}, {label}",
                    f"{rate:,.0f} items/s",
                    f">= {EXPORT_TARGET:,}" if fmt == "jsonl" else "-",
                    rate >= EXPORT_TARGET if fmt == "jsonl" else None,
                )
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--slice", type=int, default=200_000, help="items in the slice")
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--reuse", action="store_true", help="keep an existing dataset of N items")
    args = parser.parse_args()

    setup_django("nucleus_bench_query")
    from curation.models import Dataset, Item
    from curation.versions import slice_version_create

    dataset = Dataset.objects.filter(owner__username="bench", name=DATASET_NAME).first()
    if not (args.reuse and dataset and Item.objects.filter(dataset=dataset).count() == args.n):
        dataset = build(args.n, args.batch)
    chosen = make_slice(dataset, args.slice)
    start = time.perf_counter()
    version = slice_version_create(slice=chosen, user=None, note="bench")
    freeze_s = time.perf_counter() - start
    print(
        f"froze {version.item_count:,} items ({version.annotation_count:,} annotations) "
        f"in {freeze_s:.1f} s"
    )
    rows: list[Any] = [
        ("freeze a version", f"{version.item_count / freeze_s:,.0f} items/s", "-", None)
    ]
    rows += bench_pages(dataset, chosen, version, args.repeat)
    rows += bench_exports(dataset, chosen, version)
    report(rows)


if __name__ == "__main__":
    main()
