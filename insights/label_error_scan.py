"""Writes of the label-error candidates: starting a scan of a finished evaluation run, and
the scan's job (chunked and resumable), which scores every item (insights.label_errors)
and COPYs its candidates."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from curation.bulk.write import copy_rows
from curation.errors import invalid_field
from curation.jobs import JobContext, job_create
from curation.models import Dataset, Job, JobStatus
from evaluation.engine import Detection, GroundTruth
from evaluation.models import EvaluationMatch, EvaluationRun, Outcome
from evaluation.scope import ScopeGone, scope_chunks, scope_items
from insights.label_errors import (
    Calibration,
    Candidate,
    calibrate,
    item_candidates,
    unexplained,
)
from insights.label_look import LOOK_TRAIN_OBJECTS, LookModel, corroborated, look_fit
from insights.label_look_scan import Objects, Window, look_objects
from insights.models import LabelErrorCandidate, LabelErrorScan
from insights.neighbours import base_rates, neighbour_candidates, neighbour_model

logger = logging.getLogger(__name__)

LABEL_ERRORS_JOB = "label_errors"
# Items whose boxes the calibration reads, spread over the run's items.
CALIBRATION_ITEMS = 20_000
CANDIDATE_BATCH = 5000


@transaction.atomic
def label_error_scan_create(
    *, dataset: Dataset, user: Any, run_id: Any, look: bool = True, enqueue: bool = True
) -> LabelErrorScan:
    """Record a scan of the finished run `run_id` and queue its job; a run of another
    dataset, or one that has not succeeded, is a 400 on `run`. `look` False leaves out
    the labels and boxes unlike their look (odd_label, odd_box): no image is read, which
    at a million items is the difference between minutes and CPU-hours (docs/insights.md)."""
    try:
        pk = int(run_id)
    except (TypeError, ValueError):
        raise invalid_field("run", "must be an evaluation run id") from None
    run = EvaluationRun.objects.filter(dataset=dataset, pk=pk).select_related("job").first()
    if run is None:
        raise invalid_field("run", f"no evaluation run {run_id} in this dataset")
    if run.job is None or run.job.status != JobStatus.SUCCEEDED:
        raise invalid_field("run", "the evaluation run has not finished successfully")
    scan = LabelErrorScan.objects.create(
        dataset=dataset,
        run=run,
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )
    scan.job = job_create(
        kind=LABEL_ERRORS_JOB,
        dataset=dataset,
        user=user,
        params={"scan_id": scan.pk, "look": bool(look)},
        enqueue=enqueue,
    )
    scan.save(update_fields=["job"])
    return scan


def _insert(scan: LabelErrorScan, batch: Sequence[Candidate]) -> None:
    """COPY the rows (a 1M-item scan has hundreds of thousands)."""
    columns = ("scan_id", "item_id", "annotation_id", "prediction_id", "type", "score", "evidence")
    rows = (
        (
            scan.pk,
            c.item_id,
            c.annotation_id,
            c.prediction_id,
            c.type,
            c.score,
            json.dumps(c.evidence, separators=(",", ":")),
        )
        for c in batch
    )
    with connection.cursor() as cursor:
        copy_rows(cursor, LabelErrorCandidate._meta.db_table, columns, rows)


def _sample(item_ids: list[int]) -> list[int]:
    step = max(1, len(item_ids) // CALIBRATION_ITEMS)
    return item_ids[::step][:CALIBRATION_ITEMS]


def _calibration(run: EvaluationRun, item_ids: list[int]) -> Calibration:
    options = run.options or {}
    return calibrate(
        _items(run, _sample(item_ids)),
        iou_threshold=float(options.get("operating_iou", 0.5)),
        confidence_threshold=float(options.get("confidence_threshold", 0.5)),
    )


def _by_item(rows: Sequence[Any]) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {}
    for row in rows:
        out.setdefault(row.item_id, []).append(row)
    return out


def _items(
    run: EvaluationRun, item_ids: list[int]
) -> Iterator[tuple[list[GroundTruth], list[Detection]]]:
    for seen in scope_chunks(run, item_ids):
        ground_truth, detections = _by_item(seen.ground_truth), _by_item(seen.detections)
        for i in seen.item_ids:
            yield ground_truth.get(i, []), detections.get(i, [])


LOOK_TURNED_OFF = (
    "Labels and boxes unlike their look: off, turned off for this scan (no image was read)."
)


def _matched(run: EvaluationRun, item_ids: list[int]) -> dict[int, int]:
    """The run's true positives among these items: prediction id -> annotation id."""
    return dict(
        EvaluationMatch.objects.filter(
            run=run, item_id__in=item_ids, outcome=Outcome.TP
        ).values_list("prediction_id", "annotation_id")
    )


def _windows(
    ground_truth: dict[int, list[GroundTruth]],
    detections: dict[int, list[Detection]],
    matched: dict[int, int],
    item_ids: list[int],
) -> dict[int, list[Window]]:
    """The boxes of the predictions no ground truth explains, by item: where the look
    checks for an object (`missing`)."""
    out: dict[int, list[Window]] = {}
    for i in item_ids:
        found = unexplained(ground_truth.get(i, []), detections.get(i, []), matched)
        if found:
            out[i] = [(d.prediction_id, d.box) for d in found]
    return out


def _look_train(run: EvaluationRun, item_ids: list[int]) -> tuple[LookModel | None, str, Objects]:
    """Train the classifiers of labels and boxes unlike their look on the objects of a
    sample of the run's items (at most LOOK_TRAIN_OBJECTS); the sample's objects are
    returned too, so that their features are not computed twice."""
    sample = Objects()
    for seen in scope_chunks(run, _sample(item_ids)):
        left = LOOK_TRAIN_OBJECTS - len(sample)
        if left <= 0:
            break
        ground_truth = _by_item(seen.ground_truth)
        windows = _windows(
            ground_truth, _by_item(seen.detections), _matched(run, seen.item_ids), seen.item_ids
        )
        sample.extend(
            look_objects(ground_truth, seen.item_ids, moved=True, limit=left, windows=windows)
        )
    _, annotation_ids, look, fit, moved_fit = sample.arrays()
    model, reason = look_fit(
        annotation_ids=annotation_ids,
        labels=sample.labels,
        look=look,
        fit=fit,
        moved_fit=moved_fit,
        background=sample.background_array(),
    )
    sample.background = []  # only the training needs them
    if sample.unreadable:
        reason += f" {sample.unreadable:,} sampled items with boxes had no readable image."
    return model, reason, sample


def _look_candidates(
    model: LookModel,
    cache: Objects | None,
    ground_truth: dict[int, list[GroundTruth]],
    windows: dict[int, list[Window]],
    item_ids: list[int],
) -> tuple[list[Candidate], dict[int, float]]:
    """Candidates of labels and boxes unlike their look among these items' objects, and
    the likelihood ratio that each of the `windows` holds an object (by prediction id):
    the training sample's features where this run of the job computed them, else read
    now."""
    cached = set(cache.item_ids) | set(cache.window_item_ids) if cache is not None else set()
    objects = cache.take(set(item_ids) & cached) if cache is not None else Objects()
    todo = [i for i in item_ids if i not in cached]
    objects.extend(look_objects(ground_truth, todo, windows=windows))
    item_array, annotation_ids, look, fit, _ = objects.arrays()
    ratios = model.object_ratios(objects.window_array())
    return model.score(
        item_ids=item_array,
        annotation_ids=annotation_ids,
        labels=objects.labels,
        look=look,
        fit=fit,
    ), dict(zip(objects.window_prediction_ids, ratios.tolist(), strict=True))


def label_error_execute(ctx: JobContext) -> dict[str, Any]:
    """The job: calibrate on a sample of the run's items, then score every item, chunk by
    chunk (evaluation.scope's chunks), each chunk's candidates and the job's progress
    committed together; a resumed job continues after the last item it committed."""
    scan = (
        LabelErrorScan.objects.select_related("run", "run__dataset")
        .filter(pk=ctx.params["scan_id"])
        .first()
    )
    if scan is None:
        return {"scan": None, "message": "The scan was deleted."}
    run = scan.run
    try:
        item_ids = scope_items(run)
    except ScopeGone as exc:
        raise RuntimeError(str(exc)) from None
    ctx.set_total(len(item_ids))
    # Where this process's time went (bench/label_errors.py prints it; a resumed job's
    # result shows its own part only).
    timings = dict.fromkeys(("calibration", "reads", "scoring", "writes"), 0.0)
    clock = time.monotonic()
    state = dict(ctx.state)
    cache: Objects | None = None
    if "calibration" not in state:
        calibration = _calibration(run, item_ids)
        if ctx.params.get("look", True):
            look_model, look_reason, cache = _look_train(run, item_ids)
        else:
            look_model, look_reason = None, LOOK_TURNED_OFF
        state = {
            "calibration": calibration.to_state(),
            "look": look_model.to_state() if look_model is not None else None,
            "after": 0,
        }
        with ctx.checkpoint(done=0, state=state):
            LabelErrorCandidate.objects.filter(scan=scan).delete()
            summary = {
                **calibration.summary(),
                "neighbours": neighbour_model(run.dataset)[1],
                "look": look_reason,
            }
            LabelErrorScan.objects.filter(pk=scan.pk).update(calibration=summary)
    calibration = Calibration.from_state(state["calibration"])
    look = LookModel.from_state(state["look"]) if state.get("look") else None
    neighbours, _ = neighbour_model(run.dataset)
    base = base_rates(run.dataset) if neighbours is not None else {}
    todo = [i for i in item_ids if i > int(state["after"])]
    done = len(item_ids) - len(todo)
    timings["calibration"] = time.monotonic() - clock
    clock = time.monotonic()
    for seen in scope_chunks(run, todo):
        ground_truth = _by_item(seen.ground_truth)
        detections = _by_item(seen.detections)
        matched = _matched(run, seen.item_ids)
        timings["reads"] += time.monotonic() - clock
        clock = time.monotonic()
        odd: list[Candidate] = []
        looks: dict[int, float] | None = None
        if look is not None:
            windows = _windows(ground_truth, detections, matched, seen.item_ids)
            odd, looks = _look_candidates(look, cache, ground_truth, windows, seen.item_ids)
        found: list[Candidate] = []
        for item_id in seen.item_ids:
            found += item_candidates(
                item_id,
                ground_truth.get(item_id, []),
                detections.get(item_id, []),
                matched,
                calibration,
                looks,
            )
        if look is not None:
            # odd_box only corroborates the detector's bad_box (insights.label_look).
            found = corroborated(found, odd) + [c for c in odd if c.type != "odd_box"]
        if neighbours is not None:
            found += neighbour_candidates(
                dataset=run.dataset, model=neighbours, item_ids=seen.item_ids, base=base
            )
        done += len(seen.item_ids)
        state = {**state, "after": seen.item_ids[-1]}
        timings["scoring"] += time.monotonic() - clock
        clock = time.monotonic()
        with ctx.checkpoint(done=done, state=state):
            for start in range(0, len(found), CANDIDATE_BATCH):
                _insert(scan, found[start : start + CANDIDATE_BATCH])
        timings["writes"] += time.monotonic() - clock
        clock = time.monotonic()
    counts = dict(
        LabelErrorCandidate.objects.filter(scan=scan)
        .values("type")
        .annotate(n=Count("id"))
        .values_list("type", "n")
    )
    LabelErrorScan.objects.filter(pk=scan.pk).update(counts=counts, finished=timezone.now())
    timings = {k: round(v, 3) for k, v in timings.items()}
    return {"scan": scan.pk, "run": run.pk, **counts, "timings": timings}


def demo_label_errors(sender: Any, job: Job, **kwargs: Any) -> LabelErrorScan | None:
    """Receiver of curation.signals.job_succeeded: scan the demo's evaluation run once it
    has finished (evaluation.demo queues it after the demo's ingest), once, and compute its
    model's uncertainty."""
    from evaluation.demo import DEMO_RUN_NAME
    from evaluation.services import EVALUATE_JOB

    run_id = (job.params or {}).get("run_id")
    if job.kind != EVALUATE_JOB or job.dataset is None or not isinstance(run_id, int):
        return None
    run = EvaluationRun.objects.filter(pk=run_id).first()
    if run is None or run.name != DEMO_RUN_NAME:
        return None
    if LabelErrorScan.objects.filter(run=run).exists():
        return None
    from insights.uncertainty import uncertainty_start

    scan = label_error_scan_create(dataset=job.dataset, user=job.created_by, run_id=run.pk)
    uncertainty_start(dataset=job.dataset, user=job.created_by, model_id=run.model_id)
    logger.info("queued the demo's label-error scan %s (job %s)", scan.pk, scan.job_id)
    return scan


def label_errors_save(
    *,
    dataset: Dataset,
    user: Any,
    scan: LabelErrorScan,
    type: str | None,
    limit: int,
    save_as: str,
    name: str,
) -> tuple[str, Any, int]:
    """Make the items of a ranked list (the first `limit` candidates of `type`, or of every
    type) a static slice or a tag named `name`. Returns ("slice"|"tag", it, items added)."""
    from curation.slices import slice_create_from_items, tag_add_matching
    from insights.label_error_selectors import candidates_of

    if save_as not in ("slice", "tag"):
        raise invalid_field("as", "must be slice or tag")
    if not 1 <= limit <= 10_000:
        raise invalid_field("limit", "must be between 1 and 10000")
    ids: list[int] = []
    for item_id in candidates_of(scan=scan, type=type).values_list("item_id", flat=True)[:limit]:
        if item_id not in ids:
            ids.append(item_id)
    if save_as == "slice":
        created, added = slice_create_from_items(
            dataset=dataset,
            user=user,
            name=name,
            description=f"Label-error candidates ({type or 'all types'}), the first {limit} "
            f"of scan {scan.pk} (run {scan.run.name})",
            item_ids=ids,
        )
        return "slice", created, added
    tag, added = tag_add_matching(dataset=dataset, name=name, item_ids=ids)
    return "tag", tag, added
