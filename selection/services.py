"""Selections: preview a recipe, create its slice (at once for a small pool, by a job for a
big one), and the job. Writes go through curation's services: the slice is
`slices.slice_create_from_items`, its first frozen version `versions.slice_version_create`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import transaction

from curation import slices, versions
from curation.errors import invalid_field
from curation.jobs import JobCancelled, JobContext, job_create
from curation.models import Dataset, Item, Job, JobStatus
from selection import selectors
from selection.engine import Outcome, select
from selection.models import Selection
from selection.recipe import Recipe, recipe_check, recipe_clean, recipe_describe

SELECTION_JOB = "selection"
# Pools up to this many items are selected in the request; bigger ones by a job. With
# diversity, a 20,000-item pool and a budget of 2,000 took 16.5 s end to end on this
# shared 2-core machine (bench/selection.py): about what a request may take.
SYNC_MAX = 20_000
PREVIEW_MAX = 200_000
PREVIEW_ITEMS = 50


@dataclass(frozen=True)
class Preview:
    recipe: dict[str, Any]
    items: list[Item]
    figures: dict[str, Any]
    item_count: int


def _run(recipe: Recipe, tick: Callable[[str], None] | None = None) -> Outcome:
    eligible = recipe_check(recipe=recipe)
    return select(recipe=recipe, eligible=eligible, tick=tick)


def selection_preview(*, dataset: Dataset, data: dict[str, Any]) -> Preview:
    """Run a recipe without writing: the first PREVIEW_ITEMS picks and the contributions."""
    recipe = recipe_clean(dataset=dataset, data={**data, "name": data.get("name") or "preview"})
    size = recipe.pool.queryset().count()
    if size > PREVIEW_MAX:
        raise invalid_field(
            "pool", f"has {size} items; a preview runs on at most {PREVIEW_MAX}: create it"
        )
    outcome = _run(recipe)
    first = [int(i) for i in outcome.ids[:PREVIEW_ITEMS]]
    return Preview(
        recipe=recipe.as_json(),
        items=selectors.thumbnails(dataset=dataset, ids=first),
        figures=outcome.figures,
        item_count=len(outcome.ids),
    )


@transaction.atomic
def _write(
    *, recipe: Recipe, outcome: Outcome, user: Any, selection: Selection | None = None
) -> Selection:
    """The slice, its first version and the selection row, in one transaction."""
    dataset = recipe.pool.dataset
    new, _ = slices.slice_create_from_items(
        dataset=dataset,
        user=user,
        name=recipe.name,
        description=recipe_describe(recipe),
        item_ids=[int(i) for i in outcome.ids],
    )
    version = versions.slice_version_create(
        slice=new, user=user, note=f"Made by selection: {recipe_describe(recipe)}"
    )
    if selection is None:
        selection = Selection(
            dataset=dataset,
            recipe=recipe.as_json(),
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
    selection.slice = new
    selection.version = version
    selection.figures = outcome.figures
    selection.item_count = len(outcome.ids)
    selection.save()
    return selection


def selection_create(*, dataset: Dataset, user: Any, data: dict[str, Any]) -> Selection:
    """Check a recipe and make its slice: now for a pool of at most SYNC_MAX items, else
    through a job (the Selection's `job`, its slice null until the job ends)."""
    recipe = recipe_clean(dataset=dataset, data=data)
    if recipe.pool.queryset().count() <= SYNC_MAX:
        return _write(recipe=recipe, outcome=_run(recipe), user=user)
    recipe_check(recipe=recipe)  # every 400 before the job is queued
    with transaction.atomic():
        selection = Selection.objects.create(
            dataset=dataset,
            recipe=recipe.as_json(),
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
        selection.job = job_create(
            kind=SELECTION_JOB,
            dataset=dataset,
            user=user,
            params={"selection_id": selection.pk, "data": _jsonable(data)},
        )
        selection.save(update_fields=["job"])
    return selection


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in data.items()
        if k in ("name", "pool", "strategies", "weights", "budget", "seed", "description")
    }


def selection_run(ctx: JobContext) -> dict[str, Any]:
    """The job: the recipe again (a name deleted meanwhile fails it with the 400's words),
    the selection, then the slice and its version in one transaction with the job's last
    checkpoint. Cancellable between rounds; a retry recomputes (deterministic, so the same
    picks) and writes once."""
    selection = Selection.objects.filter(pk=ctx.params["selection_id"]).first()
    if selection is None:
        return {"selection": None, "message": "The selection was deleted."}
    if selection.slice_id is not None:
        return {"selection": selection.pk, "slice": selection.slice_id}
    recipe = recipe_clean(dataset=selection.dataset, data=ctx.params["data"])

    def tick(_phase: str) -> None:
        # After each strategy and each round of picks (a round is 256 picks: at 1M items a
        # few seconds), one indexed read of the job's status.
        if not Job.objects.filter(pk=ctx.job.pk, status=JobStatus.RUNNING).exists():
            raise JobCancelled()

    ctx.set_total(recipe.budget)
    outcome = _run(recipe, tick)
    with ctx.checkpoint(done=len(outcome.ids), state={"written": True}):
        _write(recipe=recipe, outcome=outcome, user=selection.created_by, selection=selection)
    return {
        "selection": selection.pk,
        "slice": selection.slice_id,
        "items": len(outcome.ids),
        "seconds": outcome.figures.get("seconds", {}),
    }


def picked_ids(*, dataset: Dataset, data: dict[str, Any]) -> np.ndarray:
    """The ids a recipe picks, in order, without writing (tests and the bench)."""
    return _run(recipe_clean(dataset=dataset, data={**data, "name": data.get("name") or "x"})).ids
