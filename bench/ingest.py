"""Bulk ingest of item records (metadata + 5 boxes each, media already in storage).

Target (DESIGN.md): >= 20,000 items/s. Measures the same path ingest and the API use:
row validation (curation.bulk.validate.clean_item_record) plus the COPY-based upsert
(curation.bulk.write.records_write), in batches, on the embedded PostgreSQL.

    .venv/bin/python bench/ingest.py [--n 100000] [--batch 10000]
"""

from __future__ import annotations

import argparse
import random
import time

from _setup import report, setup_django

LABELS = ["car", "truck", "bus", "pedestrian", "bicycle", "traffic_light", "sign"]
WEATHER = ["clear", "rain", "fog", "snow"]


def make_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        boxes = []
        for j in range(5):
            x, y = rng.uniform(0, 500), rng.uniform(0, 300)
            boxes.append(
                {
                    "id": f"b{i}-{j}",
                    "kind": "box",
                    "label": rng.choice(LABELS),
                    "geometry": {
                        "x": x,
                        "y": y,
                        "width": rng.uniform(5, 120),
                        "height": rng.uniform(5, 120),
                    },
                }
            )
        rows.append(
            {
                "reference_id": f"frame-{i:08d}",
                "metadata": {
                    "weather": rng.choice(WEATHER),
                    "speed_kmh": round(rng.uniform(0, 130), 1),
                    "camera": rng.choice(["front", "rear", "left", "right"]),
                    "night": rng.random() < 0.3,
                },
                "annotations": boxes,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args()

    setup_django()
    from django.contrib.auth.models import User

    from curation.bulk.validate import Media, clean_item_record
    from curation.bulk.write import records_write
    from curation.models import Annotation, Dataset, Item

    user, _ = User.objects.get_or_create(username="bench")
    Dataset.objects.filter(owner=user, name="bench-ingest").delete()
    dataset = Dataset.objects.create(owner=user, name="bench-ingest")
    rows = make_rows(args.n)

    phases = {"validate": 0.0, "write": 0.0}

    def run() -> float:
        phases.update(validate=0.0, write=0.0)
        start = time.perf_counter()
        for offset in range(0, len(rows), args.batch):
            records = []
            for i, raw in enumerate(rows[offset : offset + args.batch], start=offset):
                media = Media(
                    media_key=f"datasets/{dataset.pk}/media/{i:064x}.jpg",
                    thumbnail_key=f"datasets/{dataset.pk}/thumbs/{i:064x}.webp",
                    source_uri=f"s3://bench/{i}.jpg",
                    width=640,
                    height=480,
                    sha256=f"{i:064x}",
                    byte_size=50_000,
                )
                records.append(clean_item_record(raw, media=media))
            t = time.perf_counter()
            records_write(dataset=dataset, records=records)
            phases["write"] += time.perf_counter() - t
        return time.perf_counter() - start

    first = run()
    first_phases = dict(phases, validate=first - phases["write"])
    again = run()  # idempotent re-run: nothing changes
    items = Item.objects.filter(dataset=dataset).count()
    boxes = Annotation.objects.filter(dataset=dataset).count()
    assert items == args.n and boxes == 5 * args.n, (items, boxes)
    print(f"{args.n} items, {boxes} boxes; batch {args.batch}")
    report(
        [
            (
                "first ingest, items/s",
                f"{args.n / first:,.0f}",
                ">= 20,000",
                args.n / first >= 20_000,
            ),
            (
                "  of which validation, items/s",
                f"{args.n / first_phases['validate']:,.0f}",
                "-",
                None,
            ),
            (
                "  of which database writes, items/s",
                f"{args.n / first_phases['write']:,.0f}",
                "-",
                None,
            ),
            ("re-run (no changes), items/s", f"{args.n / again:,.0f}", "-", None),
        ]
    )
    dataset.delete()


if __name__ == "__main__":
    main()
