"""Uniqueness, representativeness and outlier scores of items, from their embeddings.

Per (item, embedding model), stored in insights.ItemScore by a resumable job:

- uniqueness: the mean cosine distance to the item's k nearest neighbours (k = 10 by
  default), divided by the largest such mean in the dataset, so the most isolated item
  scores 1 and an item with k exact copies 0 (FiftyOne normalises its uniqueness the same
  way).
- representativeness: the cosine similarity to the nearest of C spherical k-means centres
  (fitted on a sample of at most SAMPLE vectors; C = sqrt(n / 2), from 1 to 32; a centre
  whose cluster holds less than half an average cluster's share is dropped, so a far-off
  item k-means gave a centre of its own does not count), scaled to [0, 1] between the
  dataset's least and most similar items. An item at the heart of
  a big mode of the data scores near 1; one between modes or far from all of them near 0.
- outlier: a simplified local outlier factor (Schubert et al. 2014): the item's mean
  k-NN distance over the mean of its neighbours' own, mapped to [0, 1] as 1 - 1/LOF
  (LOF <= 1, as dense as its neighbourhood, is 0; LOF 2 is 0.5; LOF 10 is 0.9). Unlike
  uniqueness it is local: an item of a sparse but regular region is not an outlier.

How it scales: the job never loads the dataset's vectors. It walks the vectors in item
order, 500 at a time, and asks the (model, dataset) HNSW index for each one's k + 1
nearest in one LATERAL query per batch (as the duplicates job does), keeping the
neighbours' ids; the similarity to the centres is computed in the same round trip. The
database does that work, one core per connection, so the job runs NUCLEUS_SCORES_CONNECTIONS
batches at once (one thread and connection each) and writes a chunk's rows while the next
chunk's queries run. The LOF pass
joins each score row to its neighbours' rows in chunks, and the normalisation is two
set-based UPDATEs. Each batch commits with the job's checkpoint, so an interrupted job
resumes where it stopped. Cost: one HNSW query per item (bench/uniqueness.py measures it;
docs/insights.md has the figures).

With random weights the vectors are not semantic, so neither are the scores: the run
records `random_weights` and the page and the API say so.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import QuerySet
from django.utils import timezone

from curation.bulk.write import copy_rows
from curation.errors import NotFound, invalid_field
from curation.jobs import JobContext, job_create
from curation.models import Dataset, Job
from embeddings import vectors as vec
from embeddings.models import Embedding, EmbeddingModel
from insights.models import ItemScore, ScoreRun

SCORES_JOB = "insights_scores"
DEFAULT_NEIGHBORS = 10
SAMPLE = 10_000  # vectors the k-means centres are fitted on
MAX_CENTRES = 32
_BATCH = 500
_CHUNK = 5000
SCORES = ("uniqueness", "representativeness", "outlier")


def scores_job_start(
    *, dataset: Dataset, user: Any, model: EmbeddingModel, neighbors: int | None = None
) -> Job:
    """Queue the scores job of `model`'s vectors in `dataset`."""
    neighbors = DEFAULT_NEIGHBORS if neighbors is None else neighbors
    if isinstance(neighbors, bool) or not isinstance(neighbors, int) or not 1 <= neighbors <= 100:
        raise invalid_field("neighbors", "must be a whole number from 1 to 100")
    return job_create(
        kind=SCORES_JOB,
        dataset=dataset,
        user=user,
        params={"model_id": model.pk, "model": model.name, "neighbors": neighbors},
    )


# ------------------------------------------------------------------------- k-means


def centres_fit(sample: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Spherical k-means (cosine) of unit rows: `count` unit centres, k-means++ seeded."""
    rng = np.random.default_rng(seed)
    n = len(sample)
    count = max(1, min(count, n))
    centres = [sample[int(rng.integers(n))]]
    for _ in range(1, count):
        similarity = np.max(sample @ np.stack(centres).T, axis=1)
        weight = np.clip(1.0 - similarity, 0.0, None) ** 2
        total = float(weight.sum())
        pick = int(rng.choice(n, p=weight / total)) if total > 0 else int(rng.integers(n))
        centres.append(sample[pick])
    c = np.stack(centres)
    for _ in range(20):
        nearest = np.argmax(sample @ c.T, axis=1)
        moved = c.copy()
        for j in range(len(c)):
            members = sample[nearest == j]
            if len(members):
                moved[j] = members.sum(axis=0)
        moved = vec.normalize(moved)
        if np.allclose(moved, c, atol=1e-6):
            break
        c = moved
    return c.astype(np.float32)


def modes(sample: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """The centres that stand for a mode of the data: those whose cluster holds at least
    half an average cluster's share of the sample. A far-off item that k-means gave a
    centre of its own must not count as representative of anything."""
    share = np.bincount(np.argmax(sample @ centres.T, axis=1), minlength=len(centres))
    kept = centres[share >= len(sample) / (2 * len(centres))]
    return kept if len(kept) else centres


def centre_count(n: int) -> int:
    return max(1, min(MAX_CENTRES, round(math.sqrt(n / 2))))


def _centres(run: ScoreRun, model: EmbeddingModel, dataset: Dataset) -> np.ndarray:
    """A sample of the vectors (ids drawn at random, vectors read by id), clustered."""
    ids = np.fromiter(
        Embedding.objects.filter(model=model, dataset=dataset)
        .values_list("item_id", flat=True)
        .iterator(_CHUNK),
        dtype=np.int64,
    )
    rng = np.random.default_rng(run.pk)
    chosen = rng.choice(ids, size=min(SAMPLE, len(ids)), replace=False)
    rows: list[np.ndarray] = []
    for start in range(0, len(chosen), _CHUNK):
        part = [int(i) for i in chosen[start : start + _CHUNK]]
        rows.extend(
            np.asarray(v, dtype=np.float32)
            for v in Embedding.objects.filter(model=model, item_id__in=part).values_list(
                "vector", flat=True
            )
        )
    sample = vec.normalize(np.stack(rows))
    return modes(sample, centres_fit(sample, centre_count(len(ids)), seed=run.pk))


# -------------------------------------------------------------------------- passes


def _knn_sql(model: EmbeddingModel, dataset_id: int, neighbors: int) -> str:
    """Each batch item's k nearest neighbours (itself left out) through the HNSW index.

    Takes one parameter: the batch's item ids."""
    dim = int(model.dimension)
    model_id = int(model.pk)
    cast = vec.index_info(model_id, dataset_id)[2]
    return f"""
        SELECT a.item_id, n.item_id, n.distance
        FROM {vec.TABLE} a
        CROSS JOIN LATERAL (
            SELECT b.item_id, b.vector <=> a.vector AS distance
            FROM {vec.TABLE} b
            WHERE b.model_id = {model_id} AND b.dataset_id = {int(dataset_id)}
            ORDER BY b.vector::{cast}({dim}) <=> a.vector::{cast}({dim})
            LIMIT {int(neighbors) + 1}
        ) n
        WHERE a.model_id = {model_id} AND a.dataset_id = {int(dataset_id)}
            AND a.item_id = ANY(%s) AND n.item_id <> a.item_id
    """


def _centre_sql(model: EmbeddingModel) -> str:
    """Each batch item's similarity to its nearest centre. Parameters: centres, item ids."""
    return f"""
        SELECT a.item_id, (SELECT max(1 - (a.vector <=> c)) FROM unnest(%s::vector[]) c)
        FROM {vec.TABLE} a WHERE a.model_id = {int(model.pk)} AND a.item_id = ANY(%s)
    """


def batch_scores(
    run: ScoreRun, model: EmbeddingModel, item_ids: list[int], centres: list[str]
) -> list[ItemScore]:
    """The raw measures of a batch of items: k-NN distances and centre similarity."""
    found: dict[int, list[tuple[float, int]]] = {i: [] for i in item_ids}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL hnsw.ef_search = {max(40, 2 * (run.neighbors + 1))}")
        cursor.execute(_knn_sql(model, run.dataset_id, run.neighbors), [item_ids])
        for a, b, distance in cursor.fetchall():
            found[a].append((max(0.0, float(distance)), int(b)))
        cursor.execute(_centre_sql(model), [centres, item_ids])
        similarity = {int(a): float(s) for a, s in cursor.fetchall()}
    rows = []
    for item_id, near in found.items():
        near = sorted(near)[: run.neighbors]
        if not near or item_id not in similarity:
            continue
        rows.append(
            ItemScore(
                run=run,
                dataset_id=run.dataset_id,
                model=model,
                item_id=item_id,
                knn_distance=sum(d for d, _ in near) / len(near),
                centroid_similarity=similarity[item_id],
                neighbors=[b for _, b in near],
            )
        )
    return rows


def knn_connections() -> int:
    """How many connections run the k-NN batches at once: NUCLEUS_SCORES_CONNECTIONS, but
    one inside a transaction (a caller's, a test's), whose rows other connections cannot
    see."""
    return 1 if connection.in_atomic_block else int(settings.NUCLEUS_SCORES_CONNECTIONS)


class _Connections:
    """`count` threads, each with its own database connection (Django's are per thread),
    that run functions; with a count of 1, the caller's thread runs them when asked."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.pool = ThreadPoolExecutor(count, "scores-knn") if count > 1 else None

    def __enter__(self) -> _Connections:
        return self

    def submit(
        self, fn: Callable[..., list[ItemScore]], *args: Any
    ) -> Callable[[], list[ItemScore]]:
        """Start `fn(*args)` on a thread; what is returned waits for its rows. With one
        connection it runs when its rows are asked for, so the job works as it always did:
        query a batch, write it, query the next."""
        if self.pool is None:
            return lambda: fn(*args)
        return self.pool.submit(fn, *args).result

    def __exit__(self, *exc: object) -> None:
        if self.pool is None:
            return
        # Each thread closes its own connection: a barrier holds every thread in one closer
        # until all have one, so no thread takes two and none is left out.
        barrier = threading.Barrier(self.count, timeout=600)

        def close() -> None:
            try:
                barrier.wait()
            finally:
                connections.close_all()

        for _ in range(self.count):
            self.pool.submit(close)
        self.pool.shutdown(wait=True)


def _scores_insert(rows: list[ItemScore]) -> None:
    """COPY a chunk's score rows. Once the queries ran on two connections the writes were
    the walk's critical path: bulk_create's INSERT of 1,000 rows took 0.4 to 1.5 s here,
    COPY 0.04 to 0.07 s. Nothing conflicts: the run's first checkpoint deleted the model's
    older scores, chunks are disjoint, and a resumed job starts after the last one written."""
    columns = (
        "run_id",
        "dataset_id",
        "model_id",
        "item_id",
        "knn_distance",
        "centroid_similarity",
        "neighbors",
    )
    with connection.cursor() as cursor:
        copy_rows(
            cursor,
            ItemScore._meta.db_table,
            columns,
            (
                (
                    r.run_id,
                    r.dataset_id,
                    r.model_id,
                    r.item_id,
                    r.knn_distance,
                    r.centroid_similarity,
                    r.neighbors,
                )
                for r in rows
            ),
        )


def _knn_pass(
    ctx: JobContext,
    run: ScoreRun,
    model: EmbeddingModel,
    vectors: QuerySet[Embedding],
    state: dict[str, Any],
    timings: dict[str, float],
    pool: _Connections,
) -> dict[str, Any]:
    """The raw measures of every item, a chunk (a batch per connection) per checkpoint."""

    def launch(after: int) -> tuple[list[int], list[Callable[[], list[ItemScore]]]]:
        ids = list(
            vectors.filter(item_id__gt=after)
            .order_by("item_id")
            .values_list("item_id", flat=True)[: _BATCH * pool.count]
        )
        batches = [ids[i : i + _BATCH] for i in range(0, len(ids), _BATCH)]
        return ids, [pool.submit(batch_scores, run, model, b, run.centres) for b in batches]

    started = time.monotonic()
    ids, pending = launch(state["last_id"])
    while ids:
        clock = time.monotonic()
        rows = [row for result in pending for row in result()]
        timings["knn_queries"] += time.monotonic() - clock
        state = {
            **state,
            "last_id": ids[-1],
            "done": state["done"] + len(ids),
            "seconds": state["seconds"] + time.monotonic() - started,
        }
        started = time.monotonic()
        # On several connections, the next chunk's queries run while this one is written.
        following = launch(ids[-1]) if pool.pool is not None else None
        clock = time.monotonic()
        with ctx.checkpoint(done=state["done"], state=state):
            _scores_insert(rows)
        timings["knn_writes"] += time.monotonic() - clock
        ids, pending = following if following is not None else launch(ids[-1])
    return {**state, "phase": "lof", "last_id": 0}


_LOF_SQL = """
    UPDATE insights_itemscore s SET lof = (s.knn_distance + 1e-6) / (x.m + 1e-6)
    FROM (
        SELECT s2.id, avg(n.knn_distance) AS m
        FROM insights_itemscore s2
        CROSS JOIN LATERAL unnest(s2.neighbors) AS nb(item_id)
        JOIN insights_itemscore n ON n.model_id = s2.model_id AND n.item_id = nb.item_id
        WHERE s2.run_id = %s AND s2.item_id > %s AND s2.item_id <= %s
        GROUP BY s2.id
    ) x
    WHERE s.id = x.id
"""

_RANGE_SQL = """
    SELECT max(knn_distance), min(centroid_similarity), max(centroid_similarity)
    FROM insights_itemscore WHERE run_id = %s
"""

# The range is read first and bound: as a subquery joined into the UPDATE, the planner
# (with no statistics yet on rows inserted moments ago) re-ran its aggregate for every
# row: 170 s instead of 2 at 20,000 items.
_NORMALISE_SQL = """
    UPDATE insights_itemscore s SET
        uniqueness = CASE WHEN %(knn_max)s > 0 THEN s.knn_distance / %(knn_max)s ELSE 0 END,
        representativeness = CASE WHEN %(sim_max)s > %(sim_min)s
            THEN (s.centroid_similarity - %(sim_min)s) / (%(sim_max)s - %(sim_min)s) ELSE 1 END,
        outlier = 1 - 1 / greatest(coalesce(s.lof, 1), 1)
    WHERE s.run_id = %(run)s
"""


def scores_run(ctx: JobContext) -> dict[str, Any]:
    """The job: raw measures batch by batch, then LOF in chunks, then the normalisation."""
    dataset = ctx.job.dataset
    assert dataset is not None
    model = EmbeddingModel.objects.get(pk=ctx.params["model_id"])
    state = dict(ctx.state)
    if "run_id" not in state:
        state.update(last_id=0, done=0, phase="knn", seconds=0.0)
        with ctx.checkpoint(done=0, state=state):
            # One run's scores per (dataset, model): the new run replaces the old ones.
            ScoreRun.objects.filter(dataset=dataset, model=model).delete()
            state["run_id"] = ScoreRun.objects.create(
                dataset=dataset,
                model=model,
                job=ctx.job,
                neighbors=int(ctx.params["neighbors"]),
                random_weights=model.random_weights,
            ).pk
    run = ScoreRun.objects.get(pk=state["run_id"])
    vectors = Embedding.objects.filter(model=model, dataset=dataset)
    if "total" not in state:
        state["total"] = vectors.count()
        ctx.set_total(2 * state["total"])
    if state["total"] < 2:
        raise NotFound("Scores need at least two items with vectors of this model.")
    # Where this process's time went (a resumed job's result shows its own part only).
    timings = dict.fromkeys(("centres", "knn_queries", "knn_writes", "lof", "normalise"), 0.0)
    clock = time.monotonic()
    vec.vector_index_ensure(model=model, dataset=dataset)
    if not run.centres:
        centres = _centres(run, model, dataset)
        run.centres = [vec.vector_literal(c) for c in centres]
        run.centroids = len(centres)
        run.save(update_fields=["centres", "centroids"])
    timings["centres"] = time.monotonic() - clock

    if state["phase"] == "knn":
        with _Connections(knn_connections()) as pool:
            state = _knn_pass(ctx, run, model, vectors, state, timings, pool)
    started = time.monotonic()  # the k-NN pass counted its own time into state["seconds"]

    scores = ItemScore.objects.filter(run=run)
    while state["phase"] == "lof":
        chunk = list(
            scores.filter(item_id__gt=state["last_id"])
            .order_by("item_id")
            .values_list("item_id", flat=True)[:_CHUNK]
        )
        if not chunk:
            state = {**state, "phase": "normalise"}
            break
        low = state["last_id"]
        state = {**state, "last_id": chunk[-1], "done": state["done"] + len(chunk)}
        clock = time.monotonic()
        with ctx.checkpoint(done=state["done"], state=state), connection.cursor() as cursor:
            cursor.execute(_LOF_SQL, [run.pk, low, chunk[-1]])
        timings["lof"] += time.monotonic() - clock

    elapsed = state["seconds"] + time.monotonic() - started
    state = {**state, "phase": "done", "seconds": elapsed}
    clock = time.monotonic()
    with ctx.checkpoint(done=state["done"], state=state), connection.cursor() as cursor:
        cursor.execute(_RANGE_SQL, [run.pk])
        knn_max, sim_min, sim_max = cursor.fetchone()
        bounds = {"knn_max": knn_max or 0.0, "sim_min": sim_min or 0.0, "sim_max": sim_max or 0.0}
        cursor.execute(_NORMALISE_SQL, {**bounds, "run": run.pk})
        run.item_count = scores.count()
        run.status = ScoreRun.Status.FINISHED
        run.finished = timezone.now()
        run.seconds = elapsed
        run.save(update_fields=["item_count", "status", "finished", "seconds"])
    timings["normalise"] = time.monotonic() - clock
    return {
        "run": run.pk,
        "model": model.name,
        "items": run.item_count,
        "neighbors": run.neighbors,
        "centres": run.centroids,
        "random_weights": run.random_weights,
        "seconds": round(elapsed, 3),
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
