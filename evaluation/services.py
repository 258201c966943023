"""Writes of the evaluation app: starting and deleting runs, and the run itself (called
by the job's runner, evaluation.jobs)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from curation.errors import Conflict, field_error, invalid_field
from curation.itemsets import item_set_resolve
from curation.jobs import JobContext, job_cancel, job_create
from curation.models import Annotation, Dataset, Model, Prediction
from evaluation import engine
from evaluation.confusion import confusion, confusion_sum
from evaluation.models import EvaluationMatch, EvaluationRun, Task
from evaluation.options import options_clean
from evaluation.scope import ScopeGone, scope_chunks, scope_items, scope_of
from evaluation.subsets import Subsets, slices_check
from evaluation.task_runs import classification_pass, segmentation_pass

EVALUATE_JOB = "evaluate"
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
    table = EvaluationMatch._meta.db_table
    columns = (
        "run_id, item_id, annotation_id, prediction_id, outcome, label, confidence, iou, error_type"
    )
    with (
        connection.cursor() as cursor,
        connection.wrap_database_errors,
        cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
    ):
        for m in batch:
            copy.write_row(
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
            )


def evaluation_execute(ctx: JobContext) -> dict[str, Any]:
    """The job: evaluate the run's scope, writing every match, then its metrics.

    The scope is read and matched in chunks of items (evaluation.scope), each chunk's
    matches written as it is done, so memory holds one chunk whatever the run's size.
    Everything is written inside the job's one checkpoint (one transaction): an
    interruption leaves no match and no metric, and the next attempt, matching the same
    data the same way, writes each once.
    """
    run = (
        EvaluationRun.objects.select_related("dataset", "slice", "version")
        .filter(pk=ctx.params["run_id"])
        .first()
    )
    if run is None:
        return {"run": None, "message": "The run was deleted."}
    if ctx.state.get("written"):
        return {"run": run.pk}  # the checkpoint committed; only the job's end was lost
    try:
        item_ids = scope_items(run)
    except ScopeGone as exc:
        raise RuntimeError(str(exc)) from None
    if run.task != Task.DETECTION:
        return _task_execute(ctx, run, item_ids)
    options = engine.Options.of(run.options)
    evaluation = engine.Evaluation(options)
    parts: list[dict[str, Any]] = []  # the confusion matrix of each chunk (a few labels)
    counts = {"items": len(item_ids), "ground_truth": 0, "predictions": 0, "matches": 0}
    with ctx.checkpoint(done=1, state={"written": True}):
        # Nothing is there unless a run was written by hand: the checkpoint is all or none.
        EvaluationMatch.objects.filter(run=run).delete()
        subsets = Subsets.of(run, item_ids)
        for seen in scope_chunks(run, item_ids):
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
            for start in range(0, len(matches), MATCH_BATCH):
                _matches_insert(run, matches[start : start + MATCH_BATCH])
        result = evaluation.result()
        result.metrics["confusion"] = confusion_sum(parts, options)
        if subsets is not None:
            result.metrics["subsets"] = subsets.rows(result.metrics["subsets"])
            result.warnings += subsets.warnings()
        EvaluationRun.objects.filter(pk=run.pk).update(
            metrics=result.metrics,
            warnings=result.warnings,
            counts=counts,
            finished=timezone.now(),
        )
    return {"run": run.pk, "map": result.metrics["map"], **counts}


def _task_execute(ctx: JobContext, run: EvaluationRun, item_ids: list[int]) -> dict[str, Any]:
    """evaluation_execute for a segmentation or classification run: the same checkpoint
    (all or none), its pass (evaluation.task_runs) writing each chunk's matches."""

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
