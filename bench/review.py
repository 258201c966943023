"""Review queues (review/) at scale, in the embedded database: making a queue of N items
from a query (with each item's annotations to check) and from N reference ids (what a
selection produces), each one INSERT ... SELECT; then claiming and deciding entries.

    .venv/bin/python bench/review.py [--n 100000] [--reuse]
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from _setup import items_build, report, setup_django

LABELS = ("car", "person", "bus", "bicycle")


def row(i: int, rng: random.Random) -> dict[str, Any]:
    return {
        "reference_id": f"r-{i:08d}",
        "metadata": {"weather": rng.choice(("sun", "rain", "fog"))},
        "annotations": [
            {
                "label": rng.choice(LABELS),
                "geometry": {"x": 10 * k, "y": 10, "width": 40, "height": 30},
            }
            for k in range(3)
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--reuse", action="store_true", help="keep an existing dataset")
    args = parser.parse_args()
    setup_django("nucleus_bench_review")

    from django.contrib.auth.models import User
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from curation.models import Dataset
    from review.claims import entry_claim_next
    from review.decisions import entry_decide
    from review.models import ReviewQueue
    from review.services import queue_create

    name = f"review-{args.n}"
    user, _ = User.objects.get_or_create(username="bench")
    dataset = Dataset.objects.filter(owner=user, name=name).first()
    if dataset is None or not args.reuse:
        started = time.perf_counter()
        dataset = items_build(name, args.n, 10_000, row)
        print(f"\nbuilt {args.n:,} items in {time.perf_counter() - started:.1f} s")
    ReviewQueue.objects.filter(dataset=dataset).delete()
    refs = [f"r-{i:08d}" for i in range(args.n)]

    timings: list[tuple[str, str, str, bool | None]] = []
    for label, source in (
        (
            "query, with annotations",
            {"kind": "query", "query": "annotations.car >= 0", "with_annotations": True},
        ),
        ("reference ids", {"kind": "items", "reference_ids": refs}),
    ):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            queue = queue_create(dataset=dataset, user=user, name=label, source=source)
            seconds = time.perf_counter() - started
        inserts = sum("INSERT INTO review_reviewentry" in q["sql"] for q in queries)
        timings.append(
            (
                f"queue of {queue.entry_count:,} items from {label} "
                f"({len(queries)} queries, {inserts} INSERT)",
                f"{seconds:.2f} s",
                "set-based",
                inserts == 1,
            )
        )
    started = time.perf_counter()
    claims = 200
    for _ in range(claims):
        entry = entry_claim_next(queue=queue, user=user)[0]
        entry_decide(entry=entry, user=user, decision="accepted")
    per = (time.perf_counter() - started) / claims
    timings.append(("claim + decide, one entry (mean of 200)", f"{per * 1000:.1f} ms", "-", None))
    report(timings)


if __name__ == "__main__":
    main()
