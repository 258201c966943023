"""Writes of the embeddings app: models, embedding jobs, uploaded vectors, defaults."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction

from curation.errors import Conflict, InvalidInput, NotFound, field_error, invalid_field
from curation.jobs import job_create
from curation.models import Dataset, Job, JobStatus, Slice
from embeddings import vectors as vec
from embeddings.clip import ModelSpec, configured_spec, model_dimension, spec_resolve
from embeddings.models import (
    MAX_INDEXED_DIMENSION,
    DatasetSearchDefault,
    EmbeddingModel,
    ModelKind,
)
from embeddings.pipeline import MODE_ALL, MODE_MISSING

logger = logging.getLogger(__name__)

EMBED_JOB = "embed"


# ------------------------------------------------------------------------------ models


def embedding_model_for_spec(*, spec: ModelSpec) -> EmbeddingModel:
    """The shared model row for an open_clip architecture + weights, created on first use."""
    found = EmbeddingModel.objects.filter(
        kind=ModelKind.OPEN_CLIP, architecture=spec.architecture, weights=spec.weights
    ).first()
    if found:
        return found
    dimension = model_dimension(spec.architecture)
    try:
        with transaction.atomic():
            return EmbeddingModel.objects.create(
                name=_free_shared_name(spec),
                kind=ModelKind.OPEN_CLIP,
                architecture=spec.architecture,
                weights=spec.weights,
                dimension=dimension,
                random_weights=spec.is_random,
                description="Randomly initialised: similarity is not semantic."
                if spec.is_random
                else "",
            )
    except IntegrityError:  # created meanwhile by another process
        return EmbeddingModel.objects.get(
            kind=ModelKind.OPEN_CLIP, architecture=spec.architecture, weights=spec.weights
        )


def _free_shared_name(spec: ModelSpec) -> str:
    name = spec.name
    taken = set(
        EmbeddingModel.objects.filter(dataset__isnull=True, name__startswith=name).values_list(
            "name", flat=True
        )
    )
    suffix = 2
    candidate = name
    while candidate in taken:  # two checkpoint files with the same file name
        candidate = f"{name}#{suffix}"
        suffix += 1
    return candidate


@transaction.atomic
def custom_model_create(
    *, dataset: Dataset, name: str, dimension: int, description: str = ""
) -> EmbeddingModel:
    """Create a dataset's own model, whose vectors the user uploads."""
    name = (name or "").strip()
    if not name:
        raise invalid_field("name", "must not be blank")
    if len(name) > 200:
        raise invalid_field("name", "must be at most 200 characters")
    if (
        isinstance(dimension, bool)
        or not isinstance(dimension, int)
        or not 1 <= dimension <= MAX_INDEXED_DIMENSION
    ):
        raise invalid_field(
            "dimension", f"must be a whole number from 1 to {MAX_INDEXED_DIMENSION}"
        )
    if EmbeddingModel.objects.filter(dataset=dataset, name=name).exists():
        raise Conflict(f"This dataset already has an embedding model named {name!r}.")
    if EmbeddingModel.objects.filter(dataset__isnull=True, name=name).exists():
        raise Conflict(f"{name!r} is the name of a shared open_clip model; choose another.")
    return EmbeddingModel.objects.create(
        name=name,
        dataset=dataset,
        kind=ModelKind.CUSTOM,
        dimension=dimension,
        description=description,
    )


def dataset_default_set(*, dataset: Dataset, model: EmbeddingModel) -> DatasetSearchDefault:
    """Make `model` the one a dataset's searches use when none is named."""
    if model.dataset_id not in (None, dataset.pk):
        raise NotFound("No such embedding model for this dataset.")
    row, _ = DatasetSearchDefault.objects.update_or_create(
        dataset=dataset, defaults={"model": model}
    )
    return row


def dataset_default_offer(*, dataset: Dataset, model: EmbeddingModel) -> None:
    """Make `model` the default if the dataset has none, or has only random weights."""
    with transaction.atomic():
        # ON CONFLICT DO NOTHING: two jobs finishing together both find no row to lock, and
        # the second insert waits for the first one's commit and then leaves it be.
        DatasetSearchDefault.objects.bulk_create(
            [DatasetSearchDefault(dataset=dataset, model=model)], ignore_conflicts=True
        )
        current = (
            DatasetSearchDefault.objects.select_for_update()
            .select_related("model")
            .get(dataset=dataset)
        )
        if (
            current.model_id != model.pk
            and current.model.random_weights
            and not model.random_weights
        ):
            current.model = model
            current.save(update_fields=["model", "updated"])


def embedding_model_delete(*, model: EmbeddingModel) -> None:
    """Delete a custom model with its vectors, then its indexes."""
    model_id = model.pk
    model.delete()
    # After the commit, so that outside a caller's transaction the indexes are dropped
    # CONCURRENTLY: a plain DROP INDEX would lock the embeddings table, which every dataset
    # shares, against all reads and writes. An index left by a crash in between only
    # takes space (model ids are not reused); deleting the model's rows is what counts.
    vec.vector_index_drop(model_id=model_id)


# -------------------------------------------------------------------------------- jobs


def _model_to_embed(dataset: Dataset, name: str | None) -> EmbeddingModel:
    if name:
        from embeddings.selectors import model_named

        model = model_named(dataset=dataset, name=name)
        if not model.is_open_clip:
            raise invalid_field("model", f"{name} is a custom model: upload its vectors instead")
        # Refuse now, not minutes later in the worker, when the weights cannot be had.
        spec_resolve(ModelSpec(model.architecture, model.weights), fallback=False)
        return model
    return embedding_model_for_spec(spec=spec_resolve(configured_spec()))


def embed_job_start(
    *,
    dataset: Dataset,
    user: Any,
    model_name: str | None = None,
    mode: str = MODE_MISSING,
    slice_id: int | None = None,
    enqueue: bool = True,
    origin: str = "api",
) -> Job:
    """Start a job that embeds a dataset's (or a slice's) items, or only those lacking a vector.

    The model is fixed now: named, or the configured one (NUCLEUS_EMBEDDING_ARCH and
    _WEIGHTS). Weights that cannot be had fail here with a message naming the ways to
    provide them (or become random ones with NUCLEUS_EMBEDDING_RANDOM_FALLBACK).
    """
    if mode not in (MODE_MISSING, MODE_ALL):
        raise invalid_field("mode", f"must be {MODE_MISSING} or {MODE_ALL}")
    if slice_id is not None and not Slice.objects.filter(pk=slice_id, dataset=dataset).exists():
        raise invalid_field("slice", "no such slice in this dataset")
    model = _model_to_embed(dataset, model_name)
    params: dict[str, Any] = {
        "model_id": model.pk,
        "model": model.name,
        "mode": mode,
        "origin": origin,
    }
    if slice_id is not None:
        params["slice_id"] = slice_id
    return job_create(kind=EMBED_JOB, dataset=dataset, user=user, params=params, enqueue=enqueue)


def embed_enqueue_missing(*, dataset: Dataset, user: Any) -> Job | None:
    """Queue embedding of a dataset's items that have no vector yet (called after ingest).

    Does nothing when such a job is already waiting, and only logs when the weights are
    unavailable: a missing model must not fail the ingest that called this.
    """
    from embeddings.clip import WeightsUnavailable

    try:
        model = embedding_model_for_spec(spec=spec_resolve(configured_spec()))
    except (WeightsUnavailable, InvalidInput) as exc:
        logger.warning("not embedding new items of dataset %s: %s", dataset.pk, exc.message)
        return None
    waiting = (
        Job.objects.filter(
            kind=EMBED_JOB,
            dataset=dataset,
            status=JobStatus.QUEUED,
            params__model_id=model.pk,
            params__mode=MODE_MISSING,
        )
        .exclude(params__has_key="slice_id")
        .first()
    )
    if waiting is not None:
        return waiting  # it has not started yet, so it will pick up the new items too
    return job_create(
        kind=EMBED_JOB,
        dataset=dataset,
        user=user,
        params={"model_id": model.pk, "model": model.name, "mode": MODE_MISSING},
    )


# ----------------------------------------------------------------------- user vectors


def vectors_upload(
    *, dataset: Dataset, model: EmbeddingModel, rows: Sequence[Any]
) -> dict[str, int]:
    """Store user-supplied vectors of a custom model by reference_id: all rows or none.

    Each row is ``{"reference_id": ..., "vector": [...]}``; vectors are L2-normalised.
    """
    if model.is_open_clip:
        raise invalid_field("model", "is an open_clip model: its vectors come from embedding jobs")
    if model.dataset_id != dataset.pk:
        raise NotFound("No such embedding model for this dataset.")
    if not isinstance(rows, list) or not rows:
        raise invalid_field("vectors", "must be a non-empty list")
    if len(rows) > settings.NUCLEUS_BULK_MAX_ROWS:
        raise invalid_field("vectors", f"must have at most {settings.NUCLEUS_BULK_MAX_ROWS} rows")
    refs = [r.get("reference_id") if isinstance(r, dict) else None for r in rows]
    # A reference id with a NUL cannot be in the database, nor be sent to it as text.
    lookup = [r for r in refs if isinstance(r, str) and "\x00" not in r]
    known = dict(dataset.items.filter(reference_id__in=lookup).values_list("reference_id", "id"))
    errors: list[dict[str, str]] = []
    item_ids: list[int] = []
    values = np.empty((len(rows), model.dimension), dtype=np.float32)
    seen: set[str] = set()
    for index, (raw, ref) in enumerate(zip(rows, refs, strict=True)):
        path = f"vectors[{index}]"
        if not isinstance(raw, dict):
            errors.append(field_error(path, "must be an object"))
            continue
        if not isinstance(ref, str) or ref not in known:
            if not isinstance(ref, str):
                message = "must be a string"
            elif "\x00" in ref:
                message = "must not contain NUL characters"
            else:
                message = f"no item {ref!r} in this dataset"
            errors.append(field_error(f"{path}.reference_id", message))
            continue
        if ref in seen:
            errors.append(field_error(f"{path}.reference_id", "appears twice in this upload"))
            continue
        vector = raw.get("vector")
        problem = _vector_problem(vector, model.dimension)
        if problem:
            errors.append(field_error(f"{path}.vector", problem))
            continue
        seen.add(ref)
        values[len(item_ids)] = np.asarray(vector, dtype=np.float32)
        item_ids.append(known[ref])
    if errors:
        raise InvalidInput(
            f"{len(errors)} of {len(rows)} rows are invalid; nothing was written.",
            fields=errors[:1000],
        )
    with transaction.atomic():
        written = vec.vectors_write(
            model=model,
            dataset=dataset,
            item_ids=item_ids,
            vectors=vec.normalize(values[: len(item_ids)]),
        )
        dataset_default_offer(dataset=dataset, model=model)
    vec.vector_index_ensure(model=model, dataset=dataset)
    return {"written": written, "rows": len(rows)}


def _vector_problem(vector: Any, dimension: int) -> str | None:
    if not isinstance(vector, list):
        return "must be a list of numbers"
    if len(vector) != dimension:
        return f"has {len(vector)} values; the model's dimension is {dimension}"
    for value in vector:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            return "must contain only finite numbers"
    if not any(vector):
        return "must not be all zeros"
    return None
