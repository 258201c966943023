"""Uniqueness, representativeness and outlier scores (insights/uniqueness.py) at scale, in
the embedded database.

N items get 512-d unit vectors around 200 random centres; the benchmark builds the
(model, dataset) HNSW index, then runs the scores job itself (one HNSW k-NN query per
item, 500 per LATERAL query; the LOF pass; the normalisation) and times it, and times the
k-NN batches alone to project the walk of 1M items. An HNSW query's cost grows slowly
(about logarithmically) with the graph, so the projection from a small N is a lower
bound; run it with --n 1000000 where the machine allows.

    .venv/bin/python bench/uniqueness.py [--n 20000] [--dim 512] [--k 10] [--fresh]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _setup import report, setup_django

CHUNK = 20_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--fresh", action="store_true")
    args = parser.parse_args()
    setup_django("nucleus_bench_uniqueness")

    from django.contrib.auth.models import User

    from curation.bulk.validate import ItemRecord
    from curation.bulk.write import records_write
    from curation.jobs import job_run
    from curation.models import Dataset
    from embeddings import vectors as vec
    from embeddings.models import EmbeddingModel, ModelKind
    from insights.models import ScoreRun
    from insights.uniqueness import scores_job_start

    user = User.objects.get_or_create(username="bench")[0]
    name = f"scores-{args.n}-{args.dim}"
    dataset = Dataset.objects.filter(owner=user, name=name).first()
    if dataset is not None and args.fresh:
        dataset.delete()
        dataset = None
    if dataset is None:
        dataset = Dataset.objects.create(owner=user, name=name)
        model = EmbeddingModel.objects.create(
            name="bench", dataset=dataset, kind=ModelKind.CUSTOM, dimension=args.dim
        )
        rng = np.random.default_rng(0)
        centres = rng.normal(size=(200, args.dim)).astype(np.float32)
        started = time.perf_counter()
        for start in range(0, args.n, CHUNK):
            size = min(CHUNK, args.n - start)
            records = [ItemRecord(reference_id=f"s-{start + i:08d}") for i in range(size)]
            ids = list(records_write(dataset=dataset, records=records).item_ids.values())
            points = centres[rng.integers(0, 200, size)] + 0.6 * rng.normal(
                size=(size, args.dim)
            ).astype(np.float32)
            vec.vectors_write(
                model=model, dataset=dataset, item_ids=ids, vectors=vec.normalize(points)
            )
        print(f"loaded {args.n} vectors in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        vec.vector_index_ensure(model=model, dataset=dataset)
        print(f"built the HNSW index in {time.perf_counter() - started:.1f} s")
    model = EmbeddingModel.objects.get(dataset=dataset, name="bench")

    started = time.perf_counter()
    job = scores_job_start(dataset=dataset, user=user, model=model, neighbors=args.k)
    job = job_run(job_id=job.pk)
    total = time.perf_counter() - started
    assert job is not None and job.status == "succeeded", job and job.message
    run = ScoreRun.objects.get(pk=job.result["run"])
    print("phases (s):", job.result["timings"])

    # The k-NN batches alone (the part that grows with the index), on 10 batches.
    from embeddings.models import Embedding
    from insights.uniqueness import _BATCH, batch_scores

    ids = list(
        Embedding.objects.filter(model=model, dataset=dataset)
        .order_by("item_id")
        .values_list("item_id", flat=True)
    )
    picks = np.random.default_rng(1).choice(len(ids) // _BATCH, min(10, len(ids) // _BATCH), False)
    seconds = 0.0
    for b in picks:
        started = time.perf_counter()
        batch_scores(run, model, ids[b * _BATCH : (b + 1) * _BATCH], run.centres)
        seconds += time.perf_counter() - started
    per_item = seconds / (len(picks) * _BATCH)
    phases = job.result["timings"]
    # Per item: the k-NN queries (re-timed above), their writes, LOF, normalisation; the
    # centres (a 10,000-vector sample and k-means) cost about the same at any N.
    linear = sum(phases[p] for p in ("knn_writes", "lof", "normalise")) / args.n
    projected = (per_item + linear) * 1e6 + phases["centres"]
    report(
        [
            (f"scores job, {args.n} items, k={args.k}, {args.dim}-d", f"{total:.1f} s", "-", None),
            (
                "k-NN query per item (HNSW, in batches of 500)",
                f"{per_item * 1000:.2f} ms",
                "-",
                None,
            ),
            ("job throughput", f"{args.n / total:,.0f} items/s", "-", None),
            (
                "1M items (projected: per-item phases x 1M + centres)",
                f"{projected / 60:.0f} min",
                "-",
                None,
            ),
        ]
    )


if __name__ == "__main__":
    main()
