"""Perceptual-hash candidate search of the duplicates job at scale, in the embedded database.

N items get random 64-bit hashes (a planted near copy, a few bits away, for every 100th
item); the benchmark builds the per-dataset HNSW index over `phash::bit(64)` and times the
job's own candidate query (embeddings.duplicate_candidates.hash_pairs: four hashes per item, one
LATERAL query per batch of 500) on a sample of batches, then projects the whole walk.
It also times one batch of the exact `bit_count` scan that servers with pgvector < 0.7 use.
DESIGN.md sets no target; the figures say whether a 1M-item dataset is a job of minutes.

    .venv/bin/python bench/duplicates.py [--n 1000000] [--batches 10] [--fresh]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _setup import report, setup_django

CHUNK = 50_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument(
        "--reuse-index", action="store_true", help="keep an index from an earlier run"
    )
    args = parser.parse_args()
    setup_django("nucleus_bench_duplicates")

    from django.contrib.auth.models import User
    from django.db import connection, transaction

    from curation.bulk.validate import ItemRecord, Media
    from curation.bulk.write import records_write
    from curation.models import Dataset, Item
    from curation.phash import DETAIL_BYTES
    from embeddings.duplicate_candidates import (
        hash_pairs,
        hash_pairs_sql,
        phash_index_drop,
        phash_index_ensure,
    )
    from embeddings.duplicates import _BATCH
    from embeddings.models import DuplicateRun

    user = User.objects.get_or_create(username="bench")[0]
    name = f"phash-{args.n}-{args.seed}"
    dataset = Dataset.objects.filter(owner=user, name=name).first()
    if dataset is not None and args.fresh:
        Item.objects.filter(dataset=dataset).delete()
        dataset.delete()
        dataset = None
    rng = np.random.default_rng(args.seed)
    if dataset is None:
        dataset = Dataset.objects.create(owner=user, name=name)
        started = time.perf_counter()
        for start in range(0, args.n, CHUNK):
            size = min(CHUNK, args.n - start)
            hashes = rng.integers(-(2**63), 2**63 - 1, size=size, dtype=np.int64)
            # every 100th item's successor is its copy, 1-6 bits away
            for i in range(0, size - 1, 100):
                flips = rng.choice(64, size=int(rng.integers(1, 7)), replace=False)
                mask = int(sum(1 << int(b) for b in flips))
                hashes[i + 1] = np.int64(np.uint64(hashes[i]) ^ np.uint64(mask))
            detail = bytes(DETAIL_BYTES)  # the fine check is not what this measures
            records = [
                ItemRecord(
                    reference_id=f"h-{start + i:08d}",
                    media=Media("k", "", "", 10, 10, "", 1, int(h), detail),
                )
                for i, h in enumerate(hashes)
            ]
            with transaction.atomic():
                records_write(dataset=dataset, records=records)
        print(f"loaded {args.n} items in {time.perf_counter() - started:.1f} s")

    if not args.reuse_index:
        phash_index_drop(dataset_id=dataset.pk)
    started = time.perf_counter()
    phash_index_ensure(dataset=dataset)
    build = time.perf_counter() - started

    run = DuplicateRun(dataset=dataset, threshold=0.95, neighbors=10, hash_distance=256)
    ids = list(Item.objects.filter(dataset=dataset).order_by("id").values_list("id", flat=True))
    first = np.random.default_rng(1).choice(len(ids) // _BATCH, args.batches, replace=False)
    seconds = 0.0
    planted = found = 0
    for b in first:
        batch = list(
            Item.objects.filter(id__in=ids[b * _BATCH : (b + 1) * _BATCH])
            .order_by("id")
            .values_list("id", "phash", "phash_detail")
        )
        started = time.perf_counter()
        pairs = hash_pairs(run, batch, 6)
        seconds += time.perf_counter() - started
        got = {(a, c) for a, c, _ in pairs}
        refs = dict(
            Item.objects.filter(id__in=[i for i, _, _ in batch]).values_list("id", "reference_id")
        )
        for item_id in refs:
            if int(refs[item_id][2:]) % 100 == 0 and item_id + 1 in refs:
                planted += 1
                found += (item_id, item_id + 1) in got
    per_item = seconds / (args.batches * _BATCH)

    with transaction.atomic(), connection.cursor() as cursor:
        batch = list(
            Item.objects.filter(dataset=dataset).order_by("id").values_list("id", "phash")[:50]
        )
        started = time.perf_counter()
        cursor.execute(
            hash_pairs_sql(dataset.pk, 10, indexed=False),
            [[i for i, _ in batch], [h for _, h in batch], 6],
        )
        scan_per_item = (time.perf_counter() - started) / len(batch)

    report(
        [
            (f"HNSW bit index build, {args.n} items", f"{build:.1f} s", "-", None),
            ("candidate search per item (4 hashes)", f"{per_item * 1000:.2f} ms", "-", None),
            (
                f"whole walk, {args.n} items (projected)",
                f"{per_item * args.n / 60:.1f} min",
                "-",
                None,
            ),
            (
                "planted copies found (1-6 bits)",
                f"{found}/{planted}",
                ">= 0.95",
                found >= 0.95 * planted,
            ),
            ("exact scan per item (pgvector < 0.7)", f"{scan_per_item * 1000:.0f} ms", "-", None),
            (
                f"exact scan walk, {args.n} items (projected)",
                f"{scan_per_item * args.n / 3600:.1f} h",
                "-",
                None,
            ),
        ]
    )


if __name__ == "__main__":
    main()
