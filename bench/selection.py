"""Selection by diversity at scale (selection/kcenter.py, selection/engine.py).

Three figures, each printed next to what it is compared with:

1. In memory, the algorithm alone: N (default 1,000,000) 512-d unit vectors around 200
   centres of Zipf-like sizes and 1,000 rare ones (2% of the items), generated chunk by chunk and
   reduced to 64-d by PCA of a 20,000 sample (only N x 64 floats are ever held), then a
   budget (default 10,000) picked by the batched exact k-center greedy. Coverage radius
   (the largest distance from any pool item to its nearest pick) of ours against a
   random pick of the same size: exactly in the reduced space over all N, and as cosine
   distance in the full 512-d over a 50,000-item sample of the pool (a lower bound of
   the true maximum; the exact one is N x budget x 512 multiply-adds per selection).
2. Against the exact greedy: on a 20,000-item subsample, budget 1,000, the textbook
   greedy in the full 512-d (one pass per pick) against ours (64-d, batched) and random,
   the full-dimension cosine radius over the whole subsample.
3. Through the database and the service (--db-n items, default 100,000): vectors COPYed
   in, then `selection.services.picked_ids` with diversity, reading the pool's vectors
   in chunks of 20,000 (COPY BINARY), reducing them and picking.

    .venv/bin/python bench/selection.py [--n 1000000] [--budget 10000] [--db-n 100000]
        [--skip-db] [--skip-memory] [--skip-exact]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
from _setup import report, setup_django

DIM = 512
CENTRES = 200
RARE = 1000
CHUNK = 50_000


def centres_and_weights(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """200 common modes of Zipf-like sizes (98% of the items) and 1,000 rare ones (2%:
    about 20 items each at 1M), the rare cases a labelling budget should reach."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CENTRES + RARE, DIM)).astype(np.float32)
    common = 1.0 / np.arange(1, CENTRES + 1)
    weights = np.concatenate([0.98 * common / common.sum(), np.full(RARE, 0.02 / RARE)])
    return centres, weights


def chunk_of(start: int, size: int, seed: int = 0) -> np.ndarray:
    """Rows start..start+size of the synthetic pool (the same every time)."""
    centres, weights = centres_and_weights(seed)
    rng = np.random.default_rng([seed, start])
    which = rng.choice(len(centres), size=size, p=weights)
    points = centres[which] + 0.6 * rng.normal(size=(size, DIM)).astype(np.float32)
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def rows(n: int, picked: np.ndarray) -> np.ndarray:
    """The full vectors of these rows (regenerated chunk by chunk)."""
    picked = np.sort(picked)
    out = np.zeros((len(picked), DIM), dtype=np.float32)
    for start in range(0, n, CHUNK):
        inside = (picked >= start) & (picked < start + CHUNK)
        if inside.any():
            out[inside] = chunk_of(start, min(CHUNK, n - start))[picked[inside] - start]
    return out


def cosine_radius(points: np.ndarray, centres: np.ndarray) -> float:
    worst = 0.0
    ct = np.ascontiguousarray(centres.T)
    for start in range(0, len(points), 8192):
        sims = points[start : start + 8192] @ ct
        worst = max(worst, float(1.0 - sims.max(axis=1).min()))
    return worst


def memory_part(n: int, budget: int) -> list[tuple[str, str, str, bool | None]]:
    from selection.kcenter import coverage_radius, kcenter_greedy, reduce_apply, reduce_fit

    rng = np.random.default_rng(1)
    t = time.perf_counter()
    sample_rows = np.sort(rng.choice(n, size=min(n, 20_000), replace=False))
    mean, axes = reduce_fit(rows(n, sample_rows), 64)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    reduced = np.zeros((n, 64), dtype=np.float32)
    for start in range(0, n, CHUNK):
        size = min(CHUNK, n - start)
        reduced[start : start + size] = reduce_apply(chunk_of(start, size), mean, axes)
    reduce_s = time.perf_counter() - t
    print(f"generated and reduced {n:,} x {DIM} to 64-d in {fit_s + reduce_s:.1f} s")
    t = time.perf_counter()
    picks, radius = kcenter_greedy(reduced, budget, 0)
    greedy_s = time.perf_counter() - t
    print(f"k-center greedy: {budget:,} picks of {n:,} in {greedy_s:.1f} s")
    random_picks = rng.choice(n, size=budget, replace=False)
    t = time.perf_counter()
    random_radius = coverage_radius(reduced, random_picks)
    print(f"random radius (reduced) in {time.perf_counter() - t:.1f} s")
    probe = np.sort(rng.choice(n, size=min(n, 50_000), replace=False))
    probe_vectors = rows(n, probe)
    ours_cos = cosine_radius(probe_vectors, rows(n, picks))
    random_cos = cosine_radius(probe_vectors, rows(n, random_picks))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    return [
        (f"k-center greedy, {n:,} items, budget {budget:,} (64-d)", f"{greedy_s:.1f} s", "-", None),
        (
            "reduction (PCA fit + apply, generation included)",
            f"{fit_s + reduce_s:.1f} s",
            "-",
            None,
        ),
        (
            "coverage radius, reduced space, ours",
            f"{radius:.3f}",
            "< random",
            radius < random_radius,
        ),
        ("coverage radius, reduced space, random", f"{random_radius:.3f}", "-", None),
        (
            "cosine radius 512-d (50k probe), ours",
            f"{ours_cos:.3f}",
            "< random",
            ours_cos < random_cos,
        ),
        ("cosine radius 512-d (50k probe), random", f"{random_cos:.3f}", "-", None),
        ("peak RSS of the process", f"{peak:.2f} GB", "-", None),
    ]


def exact_part(sub: int = 20_000, budget: int = 1_000) -> list[tuple[str, str, str, bool | None]]:
    from selection.kcenter import kcenter_greedy, kcenter_naive, reduce_apply, reduce_fit

    x = chunk_of(10_000_000, sub, seed=0)
    t = time.perf_counter()
    exact = kcenter_naive(x, budget, 0)
    exact_s = time.perf_counter() - t
    t = time.perf_counter()
    mean, axes = reduce_fit(x, 64)
    ours, _ = kcenter_greedy(reduce_apply(x, mean, axes), budget, 0)
    ours_s = time.perf_counter() - t
    full, _ = kcenter_greedy(x, budget, 0)
    random = np.random.default_rng(2).choice(sub, size=budget, replace=False)
    r_exact, r_ours, r_full, r_random = (
        cosine_radius(x, x[p]) for p in (exact, ours, full, random)
    )
    same = float(np.mean(np.sort(full) == np.sort(exact)))
    return [
        (f"exact greedy 512-d, {sub:,} items, budget {budget:,}", f"{exact_s:.1f} s", "-", None),
        ("ours 64-d batched, same subsample", f"{ours_s:.1f} s", "-", None),
        ("cosine radius: exact greedy 512-d", f"{r_exact:.3f}", "-", None),
        ("cosine radius: ours (64-d)", f"{r_ours:.3f}", "<= 1.1 x exact", r_ours <= 1.1 * r_exact),
        ("cosine radius: ours batched at 512-d", f"{r_full:.3f}", "= exact", same == 1.0),
        ("cosine radius: random", f"{r_random:.3f}", "-", None),
    ]


def db_part(n: int, budget: int) -> list[tuple[str, str, str, bool | None]]:
    from django.contrib.auth.models import User

    from curation.bulk.validate import ItemRecord
    from curation.bulk.write import records_write
    from curation.models import Dataset
    from embeddings import vectors as vec
    from embeddings.models import EmbeddingModel, ModelKind
    from embeddings.services import dataset_default_set
    from selection.engine import select
    from selection.recipe import recipe_check, recipe_clean

    user = User.objects.get_or_create(username="bench")[0]
    name = f"selection-{n}"
    dataset = Dataset.objects.filter(owner=user, name=name).first()
    if dataset is None:
        dataset = Dataset.objects.create(owner=user, name=name)
        model = EmbeddingModel.objects.create(
            name="bench", dataset=dataset, kind=ModelKind.CUSTOM, dimension=DIM
        )
        t = time.perf_counter()
        for start in range(0, n, 20_000):
            size = min(20_000, n - start)
            records = [ItemRecord(reference_id=f"s-{start + i:08d}") for i in range(size)]
            ids = list(records_write(dataset=dataset, records=records).item_ids.values())
            vec.vectors_write(
                model=model, dataset=dataset, item_ids=ids, vectors=chunk_of(start, size)
            )
            print(f"  loaded {start + size:,} / {n:,}", end="\r", flush=True)
        print(f"loaded {n:,} items with vectors in {time.perf_counter() - t:.1f} s")
    model = EmbeddingModel.objects.get(dataset=dataset, name="bench")
    dataset_default_set(dataset=dataset, model=model)
    budget = min(budget, n)
    data = {"name": "x", "strategies": [{"name": "diversity"}], "budget": budget}
    t = time.perf_counter()
    recipe = recipe_clean(dataset=dataset, data=data)
    eligible = recipe_check(recipe=recipe)
    check_s = time.perf_counter() - t
    outcome = select(recipe=recipe, eligible=eligible)
    total = time.perf_counter() - t
    seconds = outcome.figures["seconds"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    return [
        (f"service, {n:,} items in the DB, budget {budget:,}", f"{total:.1f} s", "-", None),
        ("  pool ids + vector check (recipe_check)", f"{check_s:.1f} s", "-", None),
        ("  vectors read in chunks + PCA to 64-d", f"{seconds.get('vectors', 0):.1f} s", "-", None),
        ("  k-center greedy", f"{seconds.get('diversity', 0):.1f} s", "-", None),
        ("peak RSS of the process", f"{peak:.2f} GB", "-", None),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--budget", type=int, default=10_000)
    parser.add_argument("--db-n", type=int, default=100_000)
    parser.add_argument("--skip-db", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-exact", action="store_true")
    args = parser.parse_args()
    setup_django("nucleus_bench_selection")
    rows_out: list[tuple[str, str, str, bool | None]] = []
    if not args.skip_exact:
        rows_out += exact_part()
    if not args.skip_memory:
        rows_out += memory_part(args.n, args.budget)
    if not args.skip_db:
        rows_out += db_part(args.db_n, args.budget)
    report(rows_out)


if __name__ == "__main__":
    main()
