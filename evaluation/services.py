"""Writes of the evaluation app: starting and deleting runs, and the run itself (called
by the job's runner, evaluation.jobs)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from curation.bulk.write import copy_rows
from curation.errors import Conflict, field_error, invalid_field
from curation.itemsets import item_set_resolve
from curation.jobs import JobCancelled, JobContext, job_cancel, job_create
from curation.models import Annotation, Dataset, Model, Prediction
from curation.services import jobs_limit_require
from evaluation import engine
from evaluation import scope as scoping
from evaluation.confusion import confusion, confusion_sum
from evaluation.models import EvaluationMatch, EvaluationRun, Task
from evaluation.options import options_clean
from evaluation.scope import ScopeGone, scope_chunks, scope_items, scope_of
from evaluation.subsets import Subsets, slices_check
from evaluation.task_runs import classification_pass, segmentation_pass

EVALUATE_JOB = "evaluate"
# Evaluation jobs (runs, and scenario suites' jobs, which run their tests' evaluations)
# that one user may have queued or running at once, over all datasets: each holds a
# worker of the default queue for minutes at 1M items, so one user must not fill it.
MAX_ACTIVE_EVALUATION_JOBS = 3
SCENARIO_JOB = "scenario"  # evaluation.scenarios' job
EVALUATION_JOB_KINDS = (EVALUATE_JOB, SCENARIO_JOB)


def evaluation_jobs_limit(user: Any) -> None:
    """A 429 naming the limit when `user` has MAX_ACTIVE_EVALUATION_JOBS queued or running."""
    jobs_limit_require(
        user=user,
        kinds=EVALUATION_JOB_KINDS,
        most=MAX_ACTIVE_EVALUATION_JOBS,
        what="evaluation",
        hint="",
    )


# Match rows per COPY: large enough that a run's rows cost few round trips.
MATCH_BATCH = 5000


def _model(dataset: Dataset, model_id: Any) -> Model:
    model = Model.objects.filter(dataset=dataset, pk=model_id).first()
    if model is None:
        raise invalid_field("model", f"no model {model_id} in this dataset")
    return model


def _label_mapping_check(dataset: Dataset, model: Model, mapping: dict[str, str]) -> None:
    """Every label a mapping names is a label of the dataset's ground truth or of the
    model's predictions: a typo would otherwise silently map nothing."""
    named = set(mapping) | set(mapping.values())
    if not named:
        return
    known = set(
        Annotation.objects.filter(dataset=dataset, label__in=named)
        .values_list("label", flat=True)
        .distinct()
    ) | set(
        Prediction.objects.filter(model=model, label__in=named)
        .values_list("label", flat=True)
        .distinct()
    )
    for source, target in mapping.items():
        for label in (source, target):
            if label not in known:
                raise invalid_field(
                    f"options.label_mapping.{source}",
                    f"no annotation and no prediction of this model has the label {label!r}",
                )


@transaction.atomic
def evaluation_create(
    *,
    dataset: Dataset,
    user: Any,
    name: str,
    model_id: int,
    slice_id: int | None = None,
    version: int | None = None,
    query: str = "",
    options: Any = None,
    task: str = Task.DETECTION,
    enqueue: bool = True,
) -> EvaluationRun:
    """Record a run of `model_id` on the dataset (or a slice, or a slice's version number
    `version`), narrowed by a `query` when given, and queue its job. Bad input is a 400
    naming the field (an unknown `task` too), a taken name a 409.
    With ``enqueue=False`` the job is only recorded, for a caller that runs it in process
    (a scenario suite's job runs its tests' evaluations so)."""
    name = name.strip()
    if not name:
        raise invalid_field("name", "must not be blank")
    if task not in Task.values:
        raise invalid_field("task", f"must be one of {', '.join(Task.values)}")
    model = _model(dataset, model_id)
    query = query.strip()
    found = item_set_resolve(
        dataset=dataset, slice_id=slice_id, version=version, query=query, path=""
    )
    cleaned = options_clean(options, task)
    _label_mapping_check(dataset, model, cleaned["label_mapping"])
    slices_check(dataset.pk, cleaned.get("subsets", {}).get("slices", []))
    if enqueue:  # a suite's job runs its tests' evaluations itself: counted as one
        evaluation_jobs_limit(user)
    scope = scope_of(found)
    run = EvaluationRun(
        dataset=dataset,
        model=model,
        name=name,
        task=task,
        options=cleaned,
        scope=scope,
        slice=found.slice,
        version=found.version,
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )
    try:
        with transaction.atomic():
            run.save()
    except IntegrityError as exc:
        if getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None) != (
            "evaluationrun_unique_name"
        ):
            raise
        message = f"An evaluation run named {name!r} already exists."
        raise Conflict(message, fields=[field_error("name", message)]) from None
    run.job = job_create(
        kind=EVALUATE_JOB,
        dataset=dataset,
        user=user,
        params={"run_id": run.pk},
        total=1,
        enqueue=enqueue,
    )
    run.save(update_fields=["job"])
    return run


def evaluation_delete(*, run: EvaluationRun) -> None:
    """Delete a run and its matches; a run still queued or running is cancelled first."""
    if run.job is not None and not run.job.is_finished:
        job_cancel(job=run.job)
    run.delete()


def _matches_insert(run: EvaluationRun, batch: Sequence[engine.Match]) -> None:
    """COPY the rows (a 1M-item run has millions: row-by-row INSERTs cost minutes)."""
    columns = (
        "run_id",
        "item_id",
        "annotation_id",
        "prediction_id",
        "outcome",
        "label",
        "confidence",
        "iou",
        "error_type",
    )
    rows = (
        (
            run.pk,
            m.item_id,
            m.annotation_id,
            m.prediction_id,
            m.outcome,
            m.label,
            m.confidence,
            m.iou,
            m.error_type or "",
        )
        for m in batch
    )
    with connection.cursor() as cursor:
        copy_rows(cursor, EvaluationMatch._meta.db_table, columns, rows)


def evaluation_execute(ctx: JobContext) -> dict[str, Any]:
    """The job: evaluate the run's scope, writing every match, then its metrics.

    The scope is read and matched in chunks of items (evaluation.scope), each chunk's
    matches written in a checkpoint of its own (one transaction with the job's progress,
    `through` = the last item id written), so memory holds one chunk whatever the run's
    size, and a cancel waits at most for the chunk being written. The metrics are written
    last, with `finished`, in a final checkpoint: until then the run has no metrics and
    readers take it for unfinished (the eval[] field, the matches API and the grid's
    outcome views ignore its rows).

    Cancelled: the job stops at its next checkpoint and deletes the rows it had written,
    so a cancelled run has no matches and no metrics. Interrupted (a worker killed, the
    database restarted): the next attempt matches every chunk again, as the metrics need
    them all, but writes only the matches of items past `through`, so each is written once.
    """
    run = (
        EvaluationRun.objects.select_related("dataset", "slice", "version")
        .filter(pk=ctx.params["run_id"])
        .first()
    )
    if run is None:
        return {"run": None, "message": "The run was deleted."}
    if ctx.state.get("written"):
        return {"run": run.pk}  # the last checkpoint committed; only the job's end was lost
    try:
        item_ids = scope_items(run)
    except ScopeGone as exc:
        raise RuntimeError(str(exc)) from None
    if run.task != Task.DETECTION:
        return _task_execute(ctx, run, item_ids)
    try:
        return _evaluate_chunks(ctx, run, item_ids)
    except JobCancelled:
        # Whatever the earlier chunks wrote goes: a cancelled run keeps no partial rows.
        EvaluationMatch.objects.filter(run=run).delete()
        raise


def _evaluate_chunks(ctx: JobContext, run: EvaluationRun, item_ids: list[int]) -> dict[str, Any]:
    """A detection run, a checkpoint per chunk (evaluation_execute)."""
    options = engine.Options.of(run.options)
    evaluation = engine.Evaluation(options)
    parts: list[dict[str, Any]] = []  # the confusion matrix of each chunk (a few labels)
    counts = {"items": len(item_ids), "ground_truth": 0, "predictions": 0, "matches": 0}
    chunks = -(-len(item_ids) // scoping.CHUNK_ITEMS)
    ctx.set_total(chunks + 1)
    # None: nothing written yet (rows written by hand, if any, are replaced).
    through: int | None = ctx.state.get("through")
    subsets = Subsets.of(run, item_ids)
    for number, seen in enumerate(scope_chunks(run, item_ids), start=1):
        members = subsets.chunk(seen.item_ids) if subsets is not None else None
        matches = evaluation.add(seen.item_ids, seen.ground_truth, seen.detections, members)
        parts.append(
            confusion(
                item_ids=seen.item_ids,
                ground_truth=seen.ground_truth,
                detections=seen.detections,
                options=options,
            )
        )
        counts["ground_truth"] += len(seen.ground_truth)
        counts["predictions"] += len(seen.detections)
        counts["matches"] += len(matches)
        last = seen.item_ids[-1]
        if through is not None and last <= through:
            continue  # an earlier attempt wrote this chunk
        fresh = [m for m in matches if through is None or m.item_id > through]
        with ctx.checkpoint(done=number, state={"through": last}):
            if through is None:
                EvaluationMatch.objects.filter(run=run).delete()
            for start in range(0, len(fresh), MATCH_BATCH):
                _matches_insert(run, fresh[start : start + MATCH_BATCH])
        through = last
    result = evaluation.result()
    result.metrics["confusion"] = confusion_sum(parts, options)
    if subsets is not None:
        result.metrics["subsets"] = subsets.rows(result.metrics["subsets"])
        result.warnings += subsets.warnings()
    with ctx.checkpoint(done=chunks + 1, state={"written": True, "through": through}):
        if through is None:  # no items: rows written by hand, if any, go
            EvaluationMatch.objects.filter(run=run).delete()
        EvaluationRun.objects.filter(pk=run.pk).update(
            metrics=result.metrics,
            warnings=result.warnings,
            counts=counts,
            finished=timezone.now(),
        )
    return {"run": run.pk, "map": result.metrics["map"], **counts}


def _task_execute(ctx: JobContext, run: EvaluationRun, item_ids: list[int]) -> dict[str, Any]:
    """evaluation_execute for a segmentation or classification run: one checkpoint (all
    or none; a cancel waits for it), its pass (evaluation.task_runs) writing each chunk's
    matches."""

    def write(matches: Sequence[engine.Match]) -> None:
        for start in range(0, len(matches), MATCH_BATCH):
            _matches_insert(run, matches[start : start + MATCH_BATCH])

    run_pass = segmentation_pass if run.task == Task.SEGMENTATION else classification_pass
    with ctx.checkpoint(done=1, state={"written": True}):
        EvaluationMatch.objects.filter(run=run).delete()
        result, counts = run_pass(run, item_ids, write)
        EvaluationRun.objects.filter(pk=run.pk).update(
            metrics=result.metrics,
            warnings=result.warnings,
            counts=counts,
            finished=timezone.now(),
        )
    headline = "accuracy" if run.task == Task.CLASSIFICATION else "map"
    return {"run": run.pk, headline: result.metrics[headline], **counts}
