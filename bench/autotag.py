"""Autotag (embeddings/autotag.py) at scale, in the embedded database.

N items get 512-d unit vectors around 100 random centres; the items of centre 0 are the
tag. The benchmark trains round 1 on 20 of them (drawing the random negatives, fitting
LogisticRegression, leave-one-out), runs the scoring job itself (sigmoid(w·x + b) in SQL
with pgvector's <#>, INSERT ... SELECT per 20,000 item ids) and times it, then times what
the pages and the query language read: the histogram, the top unlabelled and borderline
items, a threshold's COUNT, a 100-item page sorted by the score, and round 2 (train and
score again, which also deletes round 1's rows). No HNSW index is built: scoring reads
every vector once, in item order, through the (dataset, model, item) index.

    .venv/bin/python bench/autotag.py [--n 1000000] [--dim 512] [--reuse]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from _setup import report, setup_django

CHUNK = 20_000
CENTRES = 100


def build(args: argparse.Namespace, user: Any) -> Any:
    from curation.bulk.validate import ItemRecord
    from curation.bulk.write import records_write
    from curation.models import Dataset
    from embeddings import vectors as vec
    from embeddings.models import EmbeddingModel, ModelKind

    name = f"autotag-{args.n}-{args.dim}"
    dataset = Dataset.objects.filter(owner=user, name=name).first()
    if dataset is not None and args.reuse:
        return dataset
    if dataset is not None:
        dataset.delete()
    dataset = Dataset.objects.create(owner=user, name=name)
    model = EmbeddingModel.objects.create(
        name="bench", dataset=dataset, kind=ModelKind.CUSTOM, dimension=args.dim
    )
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(CENTRES, args.dim)).astype(np.float32)
    started = time.perf_counter()
    for start in range(0, args.n, CHUNK):
        size = min(CHUNK, args.n - start)
        which = rng.integers(0, CENTRES, size)
        records = [
            ItemRecord(reference_id=f"a-{start + i:08d}", metadata=f'{{"centre": {int(which[i])}}}')
            for i in range(size)
        ]
        ids = list(records_write(dataset=dataset, records=records).item_ids.values())
        points = centres[which] + 0.8 * rng.normal(size=(size, args.dim)).astype(np.float32)
        vec.vectors_write(model=model, dataset=dataset, item_ids=ids, vectors=vec.normalize(points))
        if start and start % 200_000 == 0:
            print(f"  {start} loaded, {time.perf_counter() - started:.0f} s")
    print(f"loaded {args.n} items and vectors in {time.perf_counter() - started:.1f} s")
    return dataset


def timed(fn: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--reuse", action="store_true", help="keep a dataset built before")
    args = parser.parse_args()
    setup_django("nucleus_bench_autotag")

    from django.contrib.auth.models import User
    from django.db import connection
    from django.urls import reverse

    from curation.jobs import job_run
    from curation.models import Item
    from curation.query import compile_query, sort_expression
    from embeddings.autotag import ExampleSource, autotag_create, autotag_round_next
    from embeddings.autotag_selectors import borderline, histogram, top_unlabelled
    from embeddings.models import Autotag, AutotagRound, EmbeddingModel

    user = User.objects.get_or_create(username="bench")[0]
    dataset = build(args, user)
    reverse("ui:grid", args=[dataset.pk])  # the URL conf loads once, not inside a timing
    model = EmbeddingModel.objects.get(dataset=dataset, name="bench")
    Autotag.objects.filter(dataset=dataset).delete()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE embeddings_embedding")
    tagged = list(
        Item.objects.filter(dataset=dataset, metadata__centre=0)
        .order_by("id")
        .values_list("reference_id", flat=True)[:20]
    )
    (tag, first, job), train = timed(
        lambda: autotag_create(
            dataset=dataset,
            user=user,
            name="centre0",
            model=model,
            positives=ExampleSource(reference_ids=tagged),
        )
    )
    job, score = timed(lambda: job_run(job_id=job.pk))
    assert job is not None and job.status == "succeeded", job and job.message
    tag = Autotag.objects.select_related("scored_round").get(pk=tag.pk)
    bars, hist = timed(lambda: histogram(autotag=tag))
    shown, top = timed(lambda: top_unlabelled(autotag=tag))
    _, border = timed(lambda: borderline(autotag=tag))
    q = 'autotag["centre0"] > 0.8'
    count, threshold = timed(
        lambda: (
            Item.objects.filter(dataset=dataset).filter(compile_query(q, dataset=dataset)).count()
        )
    )
    order = sort_expression('autotag["centre0"]', dataset=dataset)
    page, sort = timed(
        lambda: list(
            Item.objects.filter(dataset=dataset)
            .annotate(v=order)
            .order_by("-v", "id")
            .values_list("id", "metadata__centre")[:100]
        )
    )
    precision = sum(1 for _, c in page if c == 0) / len(page)
    # What the autotag page's grid links open: the items above a threshold, by score.
    above = compile_query('autotag["centre0"] >= 0.5', dataset=dataset)
    _, filtered = timed(
        lambda: list(
            Item.objects.filter(dataset=dataset)
            .filter(above)
            .annotate(v=order)
            .order_by("-v", "id")
            .values_list("id", flat=True)[:100]
        )
    )
    # The curator's round: confirm the top items of centre 0, reject the others.
    confirmed = [s.item.reference_id for s in shown if s.item.metadata.get("centre") == 0]
    rejected = [s.item.reference_id for s in shown if s.item.metadata.get("centre") != 0]
    (_, job2), train2 = timed(
        lambda: autotag_round_next(
            autotag=tag,
            user=user,
            positives=ExampleSource(reference_ids=confirmed),
            negatives=ExampleSource(reference_ids=rejected),
        )
    )
    job2, score2 = timed(lambda: job_run(job_id=job2.pk))
    assert job2 is not None and job2.status == "succeeded", job2 and job2.message
    first = AutotagRound.objects.get(pk=first.pk)
    n = first.item_count
    print(f"round 1 metrics: {first.metrics}")
    print(f"histogram: {[b.count for b in bars]}; {count} items > 0.8")
    report(
        [
            (
                f"train round 1 (20 positives, {len(first.sampled_negatives)} drawn)",
                f"{train:.2f} s",
                "-",
                None,
            ),
            (f"score {n:,} x {args.dim}-d vectors (job)", f"{score:.1f} s", "-", None),
            ("scoring throughput", f"{n / score:,.0f} items/s", "-", None),
            ("histogram (10 bins)", f"{hist * 1000:.0f} ms", "-", None),
            ("top 24 unlabelled", f"{top * 1000:.0f} ms", "-", None),
            ("24 borderline", f"{border * 1000:.0f} ms", "-", None),
            (f"COUNT of {q}", f"{threshold * 1000:.0f} ms", "<= 200 ms", threshold <= 0.2),
            ("100 items sorted by the score (all items)", f"{sort * 1000:.0f} ms", "-", None),
            ("100 items >= 0.5 sorted by the score", f"{filtered * 1000:.0f} ms", "-", None),
            ("precision of that page (centre 0)", f"{precision:.2f}", "-", None),
            ("train round 2", f"{train2:.2f} s", "-", None),
            ("score round 2 (and drop round 1's rows)", f"{score2:.1f} s", "-", None),
        ]
    )


if __name__ == "__main__":
    main()
