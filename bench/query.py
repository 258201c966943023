"""Query latency at scale: metadata and label-count conditions in the query language.

Target (DESIGN.md): a query with metadata and label-count conditions <= 200 ms at 1M
items. Builds a dataset of N items with realistic metadata, ~5 annotations and ~3
predictions each (COPY-based bulk writes), then times each query two ways: the first
100-item page (what the API and UI ask for) and a full COUNT(*) of the matches.

    .venv/bin/python bench/query.py [--n 1000000] [--repeat 7] [--explain] [--reuse]

The dataset is kept between runs with --reuse (building 1M items takes minutes).
"""

from __future__ import annotations

import argparse
import functools
import random
import statistics
import time
from typing import Any

from _setup import items_build, report, setup_django

LABELS = ["car", "truck", "bus", "pedestrian", "bicycle", "traffic_light", "sign"]
WEATHER = ["clear", "rain", "fog", "snow"]
CAMERAS = ["front", "rear", "left", "right"]
DATASET_NAME = "bench-query"
TARGET_MS = 200.0

QUERIES = [
    'metadata.weather = "rain"',
    "annotations.car >= 1",
    'metadata.weather = "rain" AND annotations.car >= 2',
    'metadata.weather = "fog" AND metadata.speed_kmh > 100 AND annotations.pedestrian >= 1',
    "annotations.truck + annotations.bus >= 3",
    'metadata.night = true AND annotations.car = 0 AND metadata.camera = "front"',
    "predictions[detector].car.confidence > 0.9 AND annotations.car = 0",
    'tag = "reviewed" AND annotations.bicycle >= 1',
    'metadata.weather IN ("snow", "fog") AND NOT annotations.kind.box.count < 5',
]


def make_row(i: int, rng: random.Random) -> dict[str, Any]:
    annotations = []
    for j in range(rng.randint(3, 7)):
        annotations.append(
            {
                "id": f"a{i}-{j}",
                "label": rng.choice(LABELS),
                "geometry": {
                    "x": rng.uniform(0, 500),
                    "y": rng.uniform(0, 300),
                    "width": rng.uniform(5, 120),
                    "height": rng.uniform(5, 120),
                },
                "metadata": {"occluded": rng.random() < 0.2},
            }
        )
    predictions = [
        {
            "id": f"p{i}-{j}",
            "model": "detector",
            "label": rng.choice(LABELS),
            "confidence": round(rng.random(), 3),
            "geometry": {
                "x": rng.uniform(0, 500),
                "y": rng.uniform(0, 300),
                "width": rng.uniform(5, 120),
                "height": rng.uniform(5, 120),
            },
        }
        for j in range(3)
    ]
    return {
        "reference_id": f"frame-{i:08d}",
        "metadata": {
            "weather": rng.choice(WEATHER),
            "speed_kmh": round(rng.uniform(0, 130), 1),
            "camera": rng.choice(CAMERAS),
            "night": rng.random() < 0.3,
            "location": {
                "city": rng.choice(["berlin", "paris", "tokyo"]),
                "lane": rng.randint(1, 4),
            },
        },
        "annotations": annotations,
        "predictions": predictions,
    }


def build(n: int, batch: int) -> Any:
    """Create the benchmark dataset (replacing an older one) and return it."""

    from curation.models import Item, ItemTag, Tag

    start = time.perf_counter()
    dataset = items_build(
        DATASET_NAME,
        n,
        batch,
        make_row,
        # every 50th image is stored twice: exact duplicates exist
        sha256=lambda i: f"{i - i % 2 if i % 50 < 2 else i:064x}",
    )
    tag = Tag.objects.create(dataset=dataset, name="reviewed")
    ids = Item.objects.filter(dataset=dataset).values_list("pk", flat=True)
    ItemTag.objects.bulk_create(
        [ItemTag(tag=tag, item_id=pk) for pk in ids if pk % 10 == 0], batch_size=10_000
    )
    settle()
    print(f"\nbuilt {n:,} items in {time.perf_counter() - start:.1f} s")
    return dataset


def settle() -> None:
    """VACUUM (ANALYZE) the tables, as autovacuum soon would after a bulk load or a
    migration's backfill: it sets the visibility map that index-only scans (the shape
    counts') rely on, and the hint bits that the first reads of fresh rows would otherwise
    write. Quick when nothing changed since the last run."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "VACUUM (ANALYZE) curation_item, curation_annotation, curation_prediction,"
            " curation_itemtag, curation_shapecount"
        )


def timed(fn: Any, repeat: int) -> tuple[float, Any]:
    """Median wall time of `fn` in milliseconds, and its last result."""
    times = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def bench_queries(
    dataset: Any, repeat: int, explain: bool
) -> list[tuple[str, str, str, bool | None]]:
    """Time each query's first page and full count; print plans when asked."""
    from curation.models import Item
    from curation.query import filter_items

    def first_page(text: str) -> list[int]:
        # Compiling is included: a request also looks up models and tags by name.
        items = filter_items(Item.objects.filter(dataset=dataset), text, dataset=dataset)
        return list(items.order_by("id").values_list("id", flat=True)[:100])

    rows: list[tuple[str, str, str, bool | None]] = []
    for text in QUERIES:
        qs = filter_items(Item.objects.filter(dataset=dataset), text, dataset=dataset)
        page_ms, _ = timed(functools.partial(first_page, text), repeat)
        count_ms, count = timed(qs.count, max(1, repeat // 2))
        print(f"{text}\n    {count:,} matches; page {page_ms:.1f} ms; count {count_ms:.1f} ms")
        if explain:
            print(qs.order_by("id").values("id")[:100].explain(analyze=True))
            print(qs.values("id").explain(analyze=True))
        rows.append(
            (
                f"page: {text[:60]}",
                f"{page_ms:.1f} ms",
                f"<= {TARGET_MS:.0f} ms",
                page_ms <= TARGET_MS,
            )
        )
        rows.append(
            (
                f"count: {text[:59]}",
                f"{count_ms:.1f} ms",
                f"<= {TARGET_MS:.0f} ms",
                count_ms <= TARGET_MS,
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE plans")
    parser.add_argument("--reuse", action="store_true", help="keep an existing dataset of N items")
    args = parser.parse_args()

    setup_django("nucleus_bench_query")
    from curation.models import Dataset, Item

    dataset = Dataset.objects.filter(owner__username="bench", name=DATASET_NAME).first()
    if not (args.reuse and dataset and Item.objects.filter(dataset=dataset).count() == args.n):
        dataset = build(args.n, args.batch)
    else:
        settle()
    print(f"{args.n:,} items; median of {args.repeat} runs")
    report(bench_queries(dataset, args.repeat, args.explain))


if __name__ == "__main__":
    main()
