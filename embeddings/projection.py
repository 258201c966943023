"""The embedding map: a 2-D projection of a dataset's vectors, computed by a resumable job.

The job (kind "project", queue "embed") has two phases, each committed by checkpoints:

1. fit: a seeded sample of up to `sample` vectors (read with COPY BINARY, in chunks) is
   fitted, PCA (the top eigenvectors of the sample's covariance, NumPy) or UMAP
   (umap-learn). The sample's own coordinates and the fitted transform commit together:
   PCA's mean and two axes in the job's state, UMAP's fitted reducer pickled to storage
   (`projections/<id>.umap`).
2. transform: the other vectors, a chunk at a time in item order, are placed by the fitted
   transform; each chunk's points and the last item id commit together, so a killed job
   resumes after the last committed chunk and writes no point twice.

At the end the projection's bounds and point count are recorded and it becomes the map.
"""

from __future__ import annotations

import io
import logging
import pickle
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.models import Count, Max, Min
from django.utils import timezone

from curation.errors import Conflict, invalid_field
from curation.jobs import JobContext, job_create
from curation.models import Dataset, Job, Slice
from curation.slices import slice_create_from_items, tag_add_matching
from embeddings import vectors as vec
from embeddings.models import Embedding, EmbeddingModel, Projection, ProjectionPoint

logger = logging.getLogger(__name__)

PROJECT_JOB = "project"
DEFAULT_SAMPLE = 20_000  # vectors a projection is fitted on
MAX_SAMPLE = 50_000
CHUNK = 10_000  # vectors read, placed and written per checkpoint
POINTS = "embeddings_projectionpoint"


# ------------------------------------------------------------------------------ start


def projection_job_start(
    *,
    dataset: Dataset,
    user: Any,
    model: EmbeddingModel | None,
    method: str = Projection.Method.PCA,
    sample: int = DEFAULT_SAMPLE,
    seed: int = 0,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
) -> Job:
    """Queue a projection of the dataset's vectors under `model` (its search model)."""
    if model is None:
        raise Conflict("This dataset has no embeddings yet: start an embedding job first.")
    if method not in Projection.Method.values:
        raise invalid_field("method", f"must be one of {', '.join(Projection.Method.values)}")
    if not 2 <= sample <= MAX_SAMPLE:
        raise invalid_field("sample", f"must be between 2 and {MAX_SAMPLE}")
    if not 2 <= n_neighbors <= 200:
        raise invalid_field("n_neighbors", "must be between 2 and 200")
    if not 0.0 <= min_dist <= 1.0:
        raise invalid_field("min_dist", "must be between 0 and 1")
    params = {
        "model_id": model.pk,
        "method": method,
        "sample": sample,
        "seed": seed,
        "n_neighbors": n_neighbors,
        "min_dist": min_dist,
    }
    return job_create(kind=PROJECT_JOB, dataset=dataset, user=user, params=params)


# ----------------------------------------------------------------------------- reading

_COPY_HEAD = 19  # signature (11), flags (4), header extension length (4)


def vectors_read(
    *,
    model: EmbeddingModel,
    dataset: Dataset,
    item_ids: Sequence[int] | None = None,
    after: int | None = None,
    limit: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(item ids, vectors) of the dataset's vectors under `model`, in item order: of these
    items, or past item `after` (up to `limit`). Read with COPY BINARY and decoded by NumPy,
    no Python object per value. COPY binds no parameters: only integers are inlined."""
    if item_ids is not None:
        where = "item_id = ANY('{" + ",".join(str(int(i)) for i in item_ids) + "}'::bigint[])"
    else:
        where = f"item_id > {int(after or 0)}"
    dim = int(model.dimension)
    row = np.dtype(
        [
            ("fields", ">i2"),
            ("id_len", ">i4"),
            ("id", ">i8"),
            ("vec_len", ">i4"),
            ("dim", ">i2"),
            ("unused", ">i2"),
            ("values", ">f4", (dim,)),
        ]
    )
    tail = f" LIMIT {int(limit)}" if limit is not None else ""
    sql = (
        f"COPY (SELECT item_id, vector FROM {vec.TABLE} WHERE model_id = {int(model.pk)}"
        f" AND dataset_id = {int(dataset.pk)} AND {where} ORDER BY item_id{tail})"
        " TO STDOUT (FORMAT BINARY)"
    )
    out = io.BytesIO()
    with connection.cursor() as cursor, cursor.copy(sql) as copy:
        for block in copy:
            out.write(block)
    raw = out.getvalue()
    body = raw[_COPY_HEAD:-2]
    rows = np.frombuffer(body, dtype=row)
    return rows["id"].astype(np.int64), rows["values"].astype(np.float32)


def sample_ids(*, model: EmbeddingModel, dataset: Dataset, size: int, seed: int) -> np.ndarray:
    """A seeded sample of the item ids that have a vector, sorted (the same on every retry)."""
    ids = np.fromiter(
        Embedding.objects.filter(dataset=dataset, model=model)
        .order_by("item_id")
        .values_list("item_id", flat=True)
        .iterator(chunk_size=CHUNK),
        dtype=np.int64,
    )
    if len(ids) <= size:
        return ids
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(ids, size=size, replace=False))


# ---------------------------------------------------------------------------- fitting


def pca_fit(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean and the two principal axes (2 x dim) of `vectors`; each axis's sign is fixed
    (its largest component positive) so that a refit of the same sample gives the same map.

    The axes are the top eigenvectors of the dim x dim covariance (`eigh`): one n x d by
    d x n product, many times faster than an SVD of the n x d sample (0.5 s against 17 s
    for 10,000 x 512 on the 2-core machine), and the same axes up to sign.
    """
    mean = vectors.mean(axis=0, dtype=np.float64)
    centred = vectors.astype(np.float64) - mean
    _, eigvecs = np.linalg.eigh(centred.T @ centred)
    axes = eigvecs[:, ::-1][:, :2].T.copy()  # eigh sorts ascending: the largest two
    if axes.shape[0] < 2:  # a one-dimensional model: the second coordinate is 0
        axes = np.vstack([axes, np.zeros_like(axes)])
    for axis in axes:
        if axis[np.argmax(np.abs(axis))] < 0:
            axis *= -1
    return mean.astype(np.float32), axes.astype(np.float32)


def pca_apply(vectors: np.ndarray, mean: np.ndarray, axes: np.ndarray) -> np.ndarray:
    return np.asarray((vectors - mean) @ axes.T, dtype=np.float32)


def umap_fit(vectors: np.ndarray, params: dict[str, Any]) -> tuple[Any, np.ndarray]:
    """A fitted UMAP reducer (cosine metric) and the sample's coordinates."""
    import umap

    n_neighbors = max(2, min(int(params["n_neighbors"]), len(vectors) - 1))
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=n_neighbors,
        min_dist=float(params["min_dist"]),
        metric="cosine",
        random_state=int(params["seed"]),  # reproducible (and so single-threaded)
        n_jobs=1,
        init="spectral" if len(vectors) > n_neighbors + 2 else "random",
    )
    coords = reducer.fit_transform(vectors)
    return reducer, np.asarray(coords, dtype=np.float32)


def _umap_key(projection: Projection) -> str:
    return f"projections/{projection.pk}.umap"


# ---------------------------------------------------------------------------- writing


def points_write(*, projection: Projection, item_ids: np.ndarray, coords: np.ndarray) -> int:
    """Store the coordinates of items (COPY into a temporary table, one INSERT that skips
    items deleted meanwhile); returns the rows written."""
    if len(item_ids) == 0:
        return 0
    row = np.dtype(
        [
            ("fields", ">i2"),
            ("id_len", ">i4"),
            ("id", ">i8"),
            ("x_len", ">i4"),
            ("x", ">f8"),
            ("y_len", ">i4"),
            ("y", ">f8"),
        ]
    )
    rows = np.empty(len(item_ids), dtype=row)
    rows["fields"], rows["id_len"], rows["x_len"], rows["y_len"] = 3, 8, 8, 8
    rows["id"] = item_ids
    rows["x"] = coords[:, 0]
    rows["y"] = coords[:, 1]
    payload = vec._COPY_HEADER + rows.tobytes() + vec._COPY_TRAILER
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _nucleus_point_in"
            " (item_id bigint, x double precision, y double precision) ON COMMIT DELETE ROWS"
        )
        cursor.execute("TRUNCATE _nucleus_point_in")
        with cursor.copy("COPY _nucleus_point_in (item_id, x, y) FROM STDIN (FORMAT BINARY)") as c:
            c.write(payload)
        cursor.execute(
            f"INSERT INTO {POINTS} (projection_id, item_id, x, y)"
            " SELECT %s, p.item_id, p.x, p.y FROM _nucleus_point_in p"
            " JOIN curation_item i ON i.id = p.item_id AND i.dataset_id = %s"
            " ON CONFLICT (projection_id, item_id) DO NOTHING",
            [projection.pk, projection.dataset_id],
        )
        return int(cursor.rowcount)


# -------------------------------------------------------------------------------- run


def projection_run(ctx: JobContext) -> dict[str, Any]:
    """The projection job: fit on a sample, then place the rest chunk by chunk (resumable)."""
    dataset = ctx.job.dataset
    assert dataset is not None
    params = ctx.params
    model = EmbeddingModel.objects.get(pk=params["model_id"])
    state = dict(ctx.state)
    if "projection_id" not in state:
        total = Embedding.objects.filter(dataset=dataset, model=model).count()
        ctx.set_total(total)
        with ctx.checkpoint(done=0, state=state):
            projection = Projection.objects.create(
                dataset=dataset,
                model=model,
                method=params["method"],
                job=ctx.job,
                params={k: params[k] for k in ("seed", "n_neighbors", "min_dist")},
            )
            state["projection_id"] = projection.pk
    projection = Projection.objects.get(pk=state["projection_id"])
    reducer: Any = None
    if "after" not in state:
        started = time.perf_counter()
        reducer = _fit_phase(ctx, state, projection, model, dataset, started)
    elif projection.method == Projection.Method.UMAP:
        with default_storage.open(_umap_key(projection), "rb") as fh:
            reducer = pickle.load(fh)  # noqa: S301  (written by this job, not user input)
    _transform_phase(ctx, state, projection, model, dataset, reducer)
    return _finish(ctx, state, projection)


def _fit_phase(
    ctx: JobContext,
    state: dict[str, Any],
    projection: Projection,
    model: EmbeddingModel,
    dataset: Dataset,
    started: float,
) -> Any:
    params = ctx.params
    ids = sample_ids(
        model=model, dataset=dataset, size=int(params["sample"]), seed=int(params["seed"])
    )
    id_parts, vec_parts = [], []
    for start in range(0, len(ids), CHUNK):  # bounded queries: a chunk of ids at a time
        chunk = [int(i) for i in ids[start : start + CHUNK]]
        got_ids, got = vectors_read(model=model, dataset=dataset, item_ids=chunk)
        id_parts.append(got_ids)
        vec_parts.append(got)
    sample_item_ids = np.concatenate(id_parts) if id_parts else np.zeros(0, np.int64)
    sample = np.concatenate(vec_parts) if vec_parts else np.zeros((0, model.dimension), np.float32)
    reducer: Any = None
    if len(sample) == 0:
        coords = np.zeros((0, 2), np.float32)
    elif projection.method == Projection.Method.PCA:
        mean, axes = pca_fit(sample)
        state["pca"] = {"mean": mean.tolist(), "axes": axes.tolist()}
        coords = pca_apply(sample, mean, axes)
    else:
        reducer, coords = umap_fit(sample, params)
        default_storage.delete(_umap_key(projection))
        default_storage.save(_umap_key(projection), ContentFile(pickle.dumps(reducer)))
    state["after"] = 0
    state["done"] = len(sample)
    # Reported in the job's result (bench/projection.py prints them); nothing depends on them.
    state["fit_seconds"] = round(time.perf_counter() - started, 3)
    with ctx.checkpoint(done=state["done"], state=state):
        points_write(projection=projection, item_ids=sample_item_ids, coords=coords)
        Projection.objects.filter(pk=projection.pk).update(sample_size=len(sample))
    return reducer


def _transform_phase(
    ctx: JobContext,
    state: dict[str, Any],
    projection: Projection,
    model: EmbeddingModel,
    dataset: Dataset,
    reducer: Any,
) -> None:
    while True:
        started = time.perf_counter()
        ids, vectors = vectors_read(
            model=model, dataset=dataset, after=int(state["after"]), limit=CHUNK
        )
        if len(ids) == 0:
            return
        placed = set(
            ProjectionPoint.objects.filter(
                projection=projection, item_id__in=ids.tolist()
            ).values_list("item_id", flat=True)
        )  # the sample's items, placed by the fit
        keep = np.array([int(i) not in placed for i in ids], dtype=bool)
        if keep.any():
            coords = _place(projection, state, vectors[keep], reducer)
        else:
            coords = np.zeros((0, 2), np.float32)
        next_state = {
            **state,
            "after": int(ids[-1]),
            "done": state["done"] + int(keep.sum()),
            "transform_seconds": round(
                state.get("transform_seconds", 0.0) + time.perf_counter() - started, 3
            ),
        }
        with ctx.checkpoint(done=next_state["done"], state=next_state):
            points_write(projection=projection, item_ids=ids[keep], coords=coords)
        state.update(next_state)


def _place(
    projection: Projection, state: dict[str, Any], vectors: np.ndarray, reducer: Any
) -> np.ndarray:
    if projection.method == Projection.Method.PCA:
        pca = state["pca"]
        return pca_apply(
            vectors, np.asarray(pca["mean"], np.float32), np.asarray(pca["axes"], np.float32)
        )
    return np.asarray(reducer.transform(vectors), dtype=np.float32)


def _finish(ctx: JobContext, state: dict[str, Any], projection: Projection) -> dict[str, Any]:
    stats = ProjectionPoint.objects.filter(projection=projection).aggregate(
        n=Count("id"), x0=Min("x"), x1=Max("x"), y0=Min("y"), y1=Max("y")
    )
    with ctx.checkpoint(done=state.get("done", 0), state={**state, "finished": True}):
        Projection.objects.filter(pk=projection.pk).update(
            status=Projection.Status.FINISHED,
            finished=timezone.now(),
            point_count=stats["n"] or 0,
            x_min=stats["x0"] or 0.0,
            x_max=stats["x1"] or 0.0,
            y_min=stats["y0"] or 0.0,
            y_max=stats["y1"] or 0.0,
        )
    if projection.method == Projection.Method.UMAP:
        default_storage.delete(_umap_key(projection))
    return {
        "projection_id": projection.pk,
        "points": stats["n"] or 0,
        "sample": Projection.objects.values_list("sample_size", flat=True).get(pk=projection.pk),
        "fit_seconds": state.get("fit_seconds"),
        "transform_seconds": state.get("transform_seconds", 0.0),
    }


# -------------------------------------------------------------------------- selection


def points_in_polygon(coords: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Which points lie inside a polygon (even-odd rule, the same test the map's JS draws
    with): bool per row of `coords` (n x 2); `polygon` is k x 2, k >= 3, closed implicitly."""
    x, y = coords[:, 0].astype(np.float64), coords[:, 1].astype(np.float64)
    inside = np.zeros(len(coords), dtype=bool)
    px, py = polygon[:, 0].astype(np.float64), polygon[:, 1].astype(np.float64)
    j = len(polygon) - 1
    for i in range(len(polygon)):
        xi, yi, xj, yj = px[i], py[i], px[j], py[j]
        if yi != yj:
            crosses = (yi > y) != (yj > y)
            at_x = (xj - xi) * (y - yi) / (yj - yi) + xi
            inside ^= crosses & (x < at_x)
        j = i
    return inside


def polygon_clean(raw: Any) -> np.ndarray:
    """The `polygon` of a selection: 3 to 10,000 [x, y] pairs of finite numbers."""
    try:
        polygon = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise invalid_field("polygon", "must be a list of [x, y] pairs") from None
    if polygon.ndim != 2 or polygon.shape[1] != 2 or not 3 <= len(polygon) <= 10_000:
        raise invalid_field("polygon", "must be 3 to 10,000 [x, y] pairs")
    if not np.isfinite(polygon).all():
        raise invalid_field("polygon", "must hold finite numbers")
    return polygon


SELECTION_SLICE = "map selection"


def selection_apply(
    *, dataset: Dataset, user: Any, item_ids: Sequence[int], action: str, name: str = ""
) -> dict[str, Any]:
    """Turn a map selection (item ids) into a static slice ("slice"; "grid" names it
    "map selection N" itself, for opening in the grid) or a tag ("tag")."""
    if action == "tag":
        tag, added = tag_add_matching(dataset=dataset, name=name, item_ids=list(item_ids))
        return {"kind": "tag", "name": tag.name, "id": tag.pk, "added": added}
    if action not in ("slice", "grid"):
        raise invalid_field("action", "must be grid, slice or tag")
    if action == "grid" or not name.strip():
        taken = set(
            Slice.objects.filter(dataset=dataset, name__startswith=SELECTION_SLICE).values_list(
                "name", flat=True
            )
        )
        number = 1
        while f"{SELECTION_SLICE} {number}" in taken:
            number += 1
        name = f"{SELECTION_SLICE} {number}"
    created, added = slice_create_from_items(
        dataset=dataset, user=user, name=name.strip(), item_ids=list(item_ids)
    )
    return {"kind": "slice", "name": created.name, "id": created.pk, "added": added}
