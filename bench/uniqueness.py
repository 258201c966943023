"""Uniqueness, representativeness and outlier scores (insights/uniqueness.py) at scale, in
the embedded database.

N items get 512-d unit vectors in clusters (--structure):

- `blobs`: 200 equal clusters around random centres, isotropic noise (each item's cosine
  similarity to its own cluster's others about 0.74, to other clusters' about 0). The
  noise spans all 512 dimensions, so the neighbourhoods are high-dimensional: a hard case
  for a graph index.
- `clip`: closer to what CLIP image embeddings look like: a direction every vector shares
  (pairwise cosine similarity about 0.4 across the whole set, as CLIP's image vectors
  have), 200 clusters of Zipf-distributed sizes (the largest holds about 17% of the
  items, the smallest a few hundred per million), and within a cluster the spread mostly
  in a 16-d subspace of its own plus a little isotropic noise (low intrinsic dimension).

The benchmark builds the (model, dataset) HNSW index (timed on its own), then runs the
scores job itself (one HNSW k-NN query per item; the LOF pass; the normalisation) and
times it, with the process's peak RSS during the job and the database's growth; then it
times the k-NN batches alone to project 1M items from a smaller N. An HNSW query's cost
grows slowly (about logarithmically) with the graph, so a projection from a small N is a
lower bound. `--load-only` stops after the index, so a long run can load once and score in
a second process (whose peak RSS is then the job's alone).

    .venv/bin/python bench/uniqueness.py [--n 20000] [--dim 512] [--k 10] [--fresh]
        [--structure blobs|clip] [--load-only]
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np
from _setup import peak_rss_gb, peak_rss_reset, report, setup_django

CHUNK = 20_000
CLUSTERS = 200


def generator(structure: str, dim: int, rng: np.random.Generator) -> Any:
    """A function of (rng, size) that draws `size` vectors of the chosen structure."""
    if structure == "blobs":
        centres = rng.normal(size=(CLUSTERS, dim)).astype(np.float32)

        def blobs(rng: np.random.Generator, size: int) -> np.ndarray:
            points = centres[rng.integers(0, CLUSTERS, size)] + 0.6 * rng.normal(
                size=(size, dim)
            ).astype(np.float32)
            return np.asarray(points, dtype=np.float32)

        return blobs
    shared = rng.normal(size=dim).astype(np.float32)
    shared /= np.linalg.norm(shared)
    centres = (rng.normal(size=(CLUSTERS, dim)) / np.sqrt(dim)).astype(np.float32)
    bases = (rng.normal(size=(CLUSTERS, 16, dim)) / np.sqrt(dim)).astype(np.float32)
    share = 1.0 / np.arange(1, CLUSTERS + 1)
    share /= share.sum()

    def clip(rng: np.random.Generator, size: int) -> np.ndarray:
        labels = rng.choice(CLUSTERS, size=size, p=share)
        points = shared + centres[labels]
        points += 0.2 * rng.normal(size=(size, dim)).astype(np.float32) / np.sqrt(dim)
        for c in np.unique(labels):
            rows = labels == c
            points[rows] += (
                0.15 * rng.normal(size=(int(rows.sum()), 16)).astype(np.float32) @ bases[c]
            )
        return np.asarray(points, dtype=np.float32)

    return clip


def database_bytes() -> tuple[int, int]:
    """The database's size, and the score rows' (table, TOAST and indexes)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_database_size(current_database()),"
            " pg_total_relation_size('insights_itemscore')"
        )
        size, scores = cursor.fetchone()
        return int(size), int(scores)


def load(args: argparse.Namespace, user: Any, name: str) -> Any:
    """The dataset: N items, their vectors, the HNSW index (each step timed)."""
    from curation.bulk.validate import ItemRecord
    from curation.bulk.write import records_write
    from curation.models import Dataset
    from embeddings import vectors as vec
    from embeddings.models import EmbeddingModel, ModelKind

    dataset = Dataset.objects.create(owner=user, name=name)
    model = EmbeddingModel.objects.create(
        name="bench", dataset=dataset, kind=ModelKind.CUSTOM, dimension=args.dim
    )
    rng = np.random.default_rng(0)
    draw = generator(args.structure, args.dim, rng)
    started = time.perf_counter()
    for start in range(0, args.n, CHUNK):
        size = min(CHUNK, args.n - start)
        records = [ItemRecord(reference_id=f"s-{start + i:08d}") for i in range(size)]
        ids = list(records_write(dataset=dataset, records=records).item_ids.values())
        points = vec.normalize(draw(rng, size))
        if start == 0:
            sample = points[:2000]
            cosine = sample @ sample.T
            off = cosine[~np.eye(len(sample), dtype=bool)]
            print(f"pairwise cosine similarity (sample): mean {off.mean():.2f}, sd {off.std():.2f}")
        vec.vectors_write(model=model, dataset=dataset, item_ids=ids, vectors=points)
        print(f"  loaded {start + size:,} / {args.n:,}", end="\r", flush=True)
    print(f"\nloaded {args.n:,} vectors in {time.perf_counter() - started:.1f} s")
    before = database_bytes()[0]
    started = time.perf_counter()
    vec.vector_index_ensure(model=model, dataset=dataset)
    built = time.perf_counter() - started
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_relation_size(%s)", [vec.index_name(model.pk, dataset.pk)])
        index_bytes = int(cursor.fetchone()[0])
    print(
        f"built the HNSW index in {built:.1f} s ({index_bytes / 1e9:.2f} GB; database"
        f" {before / 1e9:.2f} GB before it; load average {os.getloadavg()[0]:.1f})"
    )
    return dataset


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--structure", choices=("blobs", "clip"), default="blobs")
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--load-only", action="store_true")
    args = parser.parse_args()
    setup_django("nucleus_bench_uniqueness")

    from django.contrib.auth.models import User

    from curation.jobs import job_run
    from curation.models import Dataset
    from embeddings.models import EmbeddingModel
    from insights.models import ScoreRun
    from insights.uniqueness import scores_job_start

    user = User.objects.get_or_create(username="bench")[0]
    name = f"scores-{args.n}-{args.dim}" + ("" if args.structure == "blobs" else "-clip")
    dataset = Dataset.objects.filter(owner=user, name=name).first()
    if dataset is not None and args.fresh:
        dataset.delete()
        dataset = None
    if dataset is None:
        dataset = load(args, user, name)
    if args.load_only:
        return
    model = EmbeddingModel.objects.get(dataset=dataset, name="bench")

    load_before = os.getloadavg()
    size_before = database_bytes()
    peak_rss_reset()
    started = time.perf_counter()
    job = scores_job_start(dataset=dataset, user=user, model=model, neighbors=args.k)
    job = job_run(job_id=job.pk)
    total = time.perf_counter() - started
    rss = peak_rss_gb()
    size_after = database_bytes()
    growth = [after - before for after, before in zip(size_after, size_before, strict=True)]
    assert job is not None and job.status == "succeeded", job and job.message
    run = ScoreRun.objects.get(pk=job.result["run"])
    print("phases (s):", job.result["timings"])
    print(f"load average (1, 5, 15 min) before the job {load_before}, after it {os.getloadavg()}")

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
    # Linear in items from this run (the centres, a 10,000-vector sample and k-means, cost
    # about the same at any N): a lower bound, as an HNSW query's cost grows with the graph.
    projected = (total - phases["centres"]) / args.n * 1e6 + phases["centres"]
    label = f"{args.n:,} items, k={args.k}, {args.dim}-d {args.structure}"
    report(
        [
            (f"scores job, {label}", f"{total:.1f} s", "-", None),
            ("job throughput", f"{args.n / total:,.0f} items/s", "-", None),
            ("peak RSS of the job's process", f"{rss:.2f} GB", "-", None),
            ("database growth during the job", f"{growth[0] / 1e9:.2f} GB", "-", None),
            ("  of which the score rows and their indexes", f"{growth[1] / 1e9:.2f} GB", "-", None),
            (
                "k-NN query per item (one connection, batches of 500)",
                f"{per_item * 1000:.2f} ms",
                "-",
                None,
            ),
            (
                "1M items (projected: linear from this run)",
                f"{projected / 60:.0f} min",
                "-",
                None,
            ),
        ]
    )


if __name__ == "__main__":
    main()
