"""The embedding map's projection job at scale, in the embedded database: time and peak
memory of PCA and UMAP over N synthetic vectors, and the map's read of every point.

N items get unit vectors of `--dim` dimensions around 50 random centres (synthetic, so no
model runs); the job (embeddings/projection.py) runs in this process as a worker would:
fit on a sample, place the rest chunk by chunk, one checkpoint per chunk. Peak RSS is the
process's (ru_maxrss), so run one method per process for a clean figure. DESIGN.md sets no
target; the figures say what a 1M-item map costs.

    .venv/bin/python bench/projection.py [--n 100000] [--dim 512] [--method pca|umap]
        [--sample 20000]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
from _setup import items_build, report, setup_django


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--method", default="pca", choices=["pca", "umap"])
    parser.add_argument("--sample", type=int, default=20_000)
    parser.add_argument("--keep", action="store_true", help="keep the dataset afterwards")
    args = parser.parse_args()
    setup_django("nucleus_bench_projection")

    from curation.jobs import job_run
    from curation.models import Item
    from embeddings import vectors as vec
    from embeddings.models import EmbeddingModel, ModelKind, Projection
    from embeddings.projection import projection_job_start
    from embeddings.selectors import projection_points

    dataset = items_build(
        f"projection-{args.n}", args.n, 20_000, lambda i, rng: {"reference_id": f"p-{i}"}
    )
    model = EmbeddingModel.objects.create(
        name="synthetic", dataset=dataset, kind=ModelKind.CUSTOM, dimension=args.dim
    )
    ids = list(Item.objects.filter(dataset=dataset).order_by("id").values_list("id", flat=True))
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(50, args.dim)).astype(np.float32)
    started = time.perf_counter()
    for start in range(0, len(ids), 20_000):
        chunk = ids[start : start + 20_000]
        points = centres[rng.integers(0, 50, len(chunk))] + 0.5 * rng.normal(
            size=(len(chunk), args.dim)
        ).astype(np.float32)
        vec.vectors_write(
            model=model, dataset=dataset, item_ids=chunk, vectors=vec.normalize(points)
        )
    print(f"\n  wrote {len(ids):,} vectors in {time.perf_counter() - started:.1f} s")

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    job = projection_job_start(
        dataset=dataset,
        user=dataset.owner,
        model=model,
        method=args.method,
        sample=min(args.sample, args.n),
    )
    started = time.perf_counter()
    done = job_run(job_id=job.pk)
    seconds = time.perf_counter() - started
    assert done is not None and done.status == "succeeded", done and done.message
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    projection = Projection.objects.get(job=job)

    started = time.perf_counter()
    point_ids, coords = projection_points(projection=projection)
    read = time.perf_counter() - started
    payload = point_ids.astype("<u4").nbytes + coords.nbytes
    fit, rest = done.result["fit_seconds"], done.result["transform_seconds"]
    others = max(1, args.n - projection.sample_size)
    # The fit is a fixed cost; everything else (reading, placing, writing) grows with N.
    per_million = fit + (seconds - fit) * (1e6 - projection.sample_size) / others
    report(
        [
            (f"{args.method} job, {args.n:,} x {args.dim}", f"{seconds:.1f} s", "-", None),
            ("  sample fitted", f"{projection.sample_size:,}", "-", None),
            (
                "  fit (read the sample, fit, write it)",
                f"{done.result['fit_seconds']:.1f} s",
                "-",
                None,
            ),
            (
                "  place the rest (read + transform)",
                f"{rest:.1f} s",
                "-",
                None,
            ),
            ("  per 1M (fit + the rest at this rate)", f"{per_million:.0f} s", "-", None),
            ("peak RSS (process)", f"{peak:.0f} MiB", "-", None),
            ("  before the job", f"{rss_before:.0f} MiB", "-", None),
            ("read every point", f"{read * 1000:.0f} ms", "-", None),
            ("points payload", f"{payload / 2**20:.1f} MiB", "-", None),
        ]
    )
    if not args.keep:
        dataset.delete()


if __name__ == "__main__":
    main()
