"""Evaluation runs give pycocotools' numbers and pycocotools' matches.

Each dataset is random (seeded), written through the project's own bulk path, and
evaluated by the job; the expected numbers come from pycocotools run directly on the same
boxes as the test built them, never from what the service stored.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval, Params

from curation.errors import InvalidInput
from curation.ingest.services import ingest_enqueue
from curation.jobs import job_run
from curation.models import Annotation, Dataset, JobStatus, Model, Prediction, Slice, SliceItem
from curation.versions import slice_version_create
from evaluation import services
from evaluation.engine import STAT_NAMES
from evaluation.models import EvaluationMatch, EvaluationRun
from evaluation.options import COCO_IOU_THRESHOLDS, options_clean
from tests.api_helpers import add_items
from tests.ingest_support import write_image

MODEL = "detector"


@dataclass
class World:
    """What a test built: boxes by client id, as plain data."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    gt: list[dict[str, Any]] = field(default_factory=list)  # ref, id, label, box, crowd
    dt: list[dict[str, Any]] = field(default_factory=list)  # ref, id, label, box, score


def _size(rng: random.Random) -> tuple[float, float]:
    """A width and height in quarters of a pixel (exact in binary: stored boxes come back
    bit for bit), small, medium or large by COCO's areas."""
    low, high = rng.choice([(4, 24), (40, 80), (110, 260)])
    return rng.randint(low * 4, high * 4) / 4, rng.randint(low * 4, high * 4) / 4


def random_world(seed: int, images: int = 60) -> World:
    rng = random.Random(seed)
    world = World()
    gt_labels = ["car", "person", "bus", "truck"]  # truck: ground truth only
    dt_labels = ["car", "person", "bus", "bike"]  # bike: predictions only
    for i in range(images):
        ref = f"img{i:03d}.jpg"
        gts: list[dict[str, Any]] = []
        dts: list[dict[str, Any]] = []
        kind = i % 6  # 0: no ground truth, 1: no predictions, 2: more than maxDets
        for _ in range(0 if kind == 0 else rng.randint(1, 7)):
            w, h = _size(rng)
            box = (rng.randint(0, 1600) / 4, rng.randint(0, 1600) / 4, w, h)
            gts.append(
                {
                    "ref": ref,
                    "id": f"gt{len(world.gt) + len(gts)}",
                    "label": rng.choice(gt_labels),
                    "box": box,
                    "crowd": rng.random() < 0.08,
                }
            )
        count = 0 if kind == 1 else (120 if kind == 2 else rng.randint(1, 12))
        for _ in range(count):
            if gts and rng.random() < 0.6:
                g = rng.choice(gts)
                x, y, w, h = g["box"]
                box = (
                    max(0.0, x + rng.randint(-20, 20) / 4),
                    max(0.0, y + rng.randint(-20, 20) / 4),
                    max(1.0, w + rng.randint(-24, 24) / 4),
                    max(1.0, h + rng.randint(-24, 24) / 4),
                )
                label = g["label"] if g["label"] != "truck" and rng.random() < 0.8 else "car"
            else:
                w, h = _size(rng)
                box = (rng.randint(0, 1600) / 4, rng.randint(0, 1600) / 4, w, h)
                label = rng.choice(dt_labels)
            if kind == 2:
                label = "car"  # maxDets counts per image and class
            dts.append(
                {
                    "ref": ref,
                    "id": f"dt{len(world.dt) + len(dts)}",
                    "label": label,
                    "box": box,
                    "score": round(rng.random(), 6),
                }
            )
        world.gt += gts
        world.dt += dts
        world.rows.append(
            {
                "reference_id": ref,
                "annotations": [_shape(g, metadata={"iscrowd": int(g["crowd"])}) for g in gts],
                "predictions": [
                    {**_shape(d), "model": MODEL, "confidence": d["score"]} for d in dts
                ],
            }
        )
    return world


def _shape(obj: dict[str, Any], **extra: Any) -> dict[str, Any]:
    x, y, w, h = obj["box"]
    return {
        "id": obj["id"],
        "kind": "box",
        "label": obj["label"],
        "geometry": {"x": x, "y": y, "width": w, "height": h},
        **extra,
    }


def pycocotools_eval(
    world: World, item_ids: dict[str, int], refs: list[str] | None = None, use_cats: bool = True
) -> Any:
    """COCOeval run directly on the world's boxes (categories: every label on either side;
    matched whatever the labels without `use_cats`)."""
    refs = sorted(item_ids) if refs is None else refs
    chosen = set(refs)
    gt = [g for g in world.gt if g["ref"] in chosen]
    dt = [d for d in world.dt if d["ref"] in chosen]
    labels = sorted({g["label"] for g in gt} | {d["label"] for d in dt})
    category = {label: k for k, label in enumerate(labels, 1)}
    coco_gt = COCO()
    coco_gt.dataset = {
        "images": [{"id": item_ids[r]} for r in refs],
        "categories": [{"id": category[label]} for label in labels],
        "annotations": [
            {
                "id": n,
                "image_id": item_ids[g["ref"]],
                "category_id": category[g["label"]],
                "bbox": list(g["box"]),
                "area": g["box"][2] * g["box"][3],
                "iscrowd": int(g["crowd"]),
            }
            for n, g in enumerate(gt, 1)
        ],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(
            [
                {
                    "image_id": item_ids[d["ref"]],
                    "category_id": category[d["label"]],
                    "bbox": list(d["box"]),
                    "score": d["score"],
                }
                for d in dt
            ]
        )
        coco_eval = COCOeval(coco_gt, coco_dt, "bbox")
        coco_eval.params.useCats = int(use_cats)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    coco_eval.gt_list, coco_eval.dt_list = gt, dt  # to name what its ids mean
    return coco_eval


def expected_matches(coco_eval: Any, threshold: float) -> set[tuple[str, str | None, str | None]]:
    """(outcome, ground-truth id, prediction id) at IoU 0.5, area all, maxDets 100, read
    from pycocotools' own per-image evaluation."""
    found: set[tuple[str, str | None, str | None]] = set()
    images = len(coco_eval.params.imgIds)
    areas = len(coco_eval.params.areaRng)
    gts, dts = coco_eval.gt_list, coco_eval.dt_list
    for k in range(len(coco_eval.params.catIds)):
        for e in coco_eval.evalImgs[k * areas * images : k * areas * images + images]:
            if e is None:
                continue
            taken = set()
            for d, dt_id in enumerate(e["dtIds"]):
                gt_id = int(e["dtMatches"][0][d])
                if e["dtIgnore"][0][d] or e["dtScores"][d] < threshold:
                    continue
                if gt_id:
                    taken.add(gt_id)
                    found.add(("tp", gts[gt_id - 1]["id"], dts[dt_id - 1]["id"]))
                else:
                    found.add(("fp", None, dts[dt_id - 1]["id"]))
            for g, gt_id in enumerate(e["gtIds"]):
                if not e["gtIgnore"][g] and gt_id not in taken:
                    found.add(("fn", gts[gt_id - 1]["id"], None))
    return found


def stored_matches(run: EvaluationRun) -> set[tuple[str, str | None, str | None]]:
    gt_ids = dict(Annotation.objects.filter(dataset=run.dataset).values_list("id", "annotation_id"))
    dt_ids = dict(Prediction.objects.filter(model=run.model).values_list("id", "prediction_id"))
    rows = list(EvaluationMatch.objects.filter(run=run))
    found = {
        (
            m.outcome,
            gt_ids.get(m.annotation_id) if m.annotation_id else None,
            dt_ids.get(m.prediction_id) if m.prediction_id else None,
        )
        for m in rows
    }
    assert len(found) == len(rows), "a match is stored twice"
    return found


def assert_ious_are_pycocotools(run: EvaluationRun, world: World) -> None:
    """Each TP's IoU is pycocotools' IoU of its two boxes."""
    gt_ids = dict(Annotation.objects.filter(dataset=run.dataset).values_list("id", "annotation_id"))
    dt_ids = dict(Prediction.objects.filter(model=run.model).values_list("id", "prediction_id"))
    gt_boxes = {g["id"]: g["box"] for g in world.gt}
    dt_boxes = {d["id"]: d["box"] for d in world.dt}
    tps = EvaluationMatch.objects.filter(run=run, outcome="tp")
    assert tps.exists()
    for m in tps:
        d = np.array([dt_boxes[dt_ids[m.prediction_id]]])
        g = np.array([gt_boxes[gt_ids[m.annotation_id]]])
        assert m.iou == pytest.approx(mask_utils.iou(d, g, [0])[0][0], abs=1e-12)
        assert m.iou >= 0.5


def run_job(run: EvaluationRun) -> EvaluationRun:
    assert run.job_id is not None
    job = job_run(job_id=run.job_id)
    assert job is not None and job.status == JobStatus.SUCCEEDED, job and job.message
    run.refresh_from_db()
    return run


def start(dataset: Dataset, user: User, name: str = "run", **kw: Any) -> EvaluationRun:
    model = Model.objects.get(dataset=dataset, name=MODEL)
    return services.evaluation_create(
        dataset=dataset, user=user, name=name, model_id=model.pk, **kw
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_run_gives_pycocotools_stats_and_matches(
    dataset: Dataset, alice: User, seed: int
) -> None:
    world = random_world(seed)
    item_ids = add_items(dataset, *world.rows)
    run = run_job(start(dataset, alice, options={"confidence_threshold": 0.0}))
    reference = pycocotools_eval(world, item_ids)

    assert np.max(np.abs(np.array(run.metrics["coco_stats"]) - reference.stats)) <= 1e-6
    for name, value in zip(STAT_NAMES, reference.stats, strict=True):
        assert run.metrics[name] == pytest.approx(value, abs=1e-6), name
    assert stored_matches(run) == expected_matches(reference, threshold=0.0)
    assert_ious_are_pycocotools(run, world)
    # The edge cases are in the data, so that the equality covers them.
    assert {"bike", "truck"} <= {c["label"] for c in run.metrics["per_class"]}
    assert any(g["crowd"] for g in world.gt)
    assert run.metrics["ignored"]["beyond_max_dets"] > 0
    assert run.metrics["ignored"]["matched_crowd"] >= 0
    assert any("max_dets" in w for w in run.warnings)
    assert any("bike" in w for w in run.warnings)


def test_the_operating_point_counts_only_confident_predictions(
    dataset: Dataset, alice: User
) -> None:
    world = random_world(4)
    item_ids = add_items(dataset, *world.rows)
    run = run_job(start(dataset, alice, options={"confidence_threshold": 0.6}))
    reference = pycocotools_eval(world, item_ids)
    expected = expected_matches(reference, threshold=0.6)
    assert stored_matches(run) == expected

    point = run.metrics["operating_point"]
    tp, fp, fn = (sum(1 for m in expected if m[0] == o) for o in ("tp", "fp", "fn"))
    assert (point["tp"], point["fp"], point["fn"]) == (tp, fp, fn)
    assert point["precision"] == pytest.approx(tp / (tp + fp))
    assert point["recall"] == pytest.approx(tp / (tp + fn))
    assert point["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    by_class = {c["label"]: c for c in run.metrics["per_class"]}
    assert sum(c["tp"] for c in by_class.values()) == tp
    assert by_class["bike"]["tp"] == 0 and by_class["bike"]["ap"] == -1


def test_per_class_numbers_are_pycocotools_precision_and_recall(
    dataset: Dataset, alice: User
) -> None:
    world = random_world(5)
    item_ids = add_items(dataset, *world.rows)
    run = run_job(start(dataset, alice))
    reference = pycocotools_eval(world, item_ids)
    precision, recall = reference.eval["precision"], reference.eval["recall"]
    for k, row in enumerate(run.metrics["per_class"]):
        p = precision[:, :, k, 0, -1]
        ap = np.mean(p[p > -1]) if (p > -1).any() else -1
        assert row["ap"] == pytest.approx(ap, abs=1e-12)
        p50 = precision[0, :, k, 0, -1]
        assert row["ap50"] == pytest.approx(np.mean(p50[p50 > -1]) if (p50 > -1).any() else -1)
        r = recall[:, k, 0, -1]
        assert row["ar"] == pytest.approx(np.mean(r[r > -1]) if (r > -1).any() else -1)
        assert row["pr_curve"] == pytest.approx(list(precision[0, :, k, 0, -1]))
        assert len(row["pr_curve"]) == 101


def test_the_best_f1_threshold_beats_every_other_threshold(dataset: Dataset, alice: User) -> None:
    world = random_world(6, images=30)
    add_items(dataset, *world.rows)
    run = run_job(start(dataset, alice, options={"confidence_threshold": 0.0}))
    best = run.metrics["best_f1"]
    rows = list(EvaluationMatch.objects.filter(run=run))
    positives = sum(1 for m in rows if m.outcome in ("tp", "fn"))
    for threshold in sorted({m.confidence for m in rows if m.confidence is not None}):
        tp = sum(1 for m in rows if m.outcome == "tp" and m.confidence >= threshold)
        fp = sum(1 for m in rows if m.outcome == "fp" and m.confidence >= threshold)
        f1 = 2 * tp / (tp + fp + positives)
        assert f1 <= best["f1"] + 1e-12
        if threshold == best["confidence"]:
            assert f1 == pytest.approx(best["f1"])


def test_a_label_mapping_counts_a_prediction_label_as_a_ground_truth_label(
    dataset: Dataset, alice: User
) -> None:
    box = {"x": 0.0, "y": 0.0, "width": 50.0, "height": 50.0}
    add_items(
        dataset,
        {
            "reference_id": "a.jpg",
            "annotations": [{"id": "g", "kind": "box", "label": "car", "geometry": box}],
            "predictions": [
                {"kind": "box", "label": "van", "geometry": box, "confidence": 0.9, "model": MODEL}
            ],
        },
    )
    plain = run_job(start(dataset, alice, name="plain"))
    mapped = run_job(
        start(dataset, alice, name="mapped", options={"label_mapping": {"van": "car"}})
    )
    assert plain.metrics["map"] == 0.0
    assert mapped.metrics["map"] == pytest.approx(1.0)
    assert list(EvaluationMatch.objects.filter(run=mapped).values_list("outcome", "label")) == [
        ("tp", "car")
    ]


def test_class_agnostic_matching_ignores_labels(dataset: Dataset, alice: User) -> None:
    box = {"x": 0.0, "y": 0.0, "width": 50.0, "height": 50.0}
    add_items(
        dataset,
        {
            "reference_id": "a.jpg",
            "annotations": [{"id": "g", "kind": "box", "label": "car", "geometry": box}],
            "predictions": [
                {"kind": "box", "label": "bus", "geometry": box, "confidence": 0.9, "model": MODEL}
            ],
        },
    )
    run = run_job(start(dataset, alice, options={"class_agnostic": True}))
    assert run.metrics["map"] == pytest.approx(1.0)
    (match,) = EvaluationMatch.objects.filter(run=run)
    assert (match.outcome, match.label, match.iou) == ("tp", "car", 1.0)


def test_the_confusion_matrix_is_pycocotools_class_agnostic_matching(
    dataset: Dataset, alice: User
) -> None:
    world = random_world(4)
    item_ids = add_items(dataset, *world.rows)
    run = run_job(start(dataset, alice, options={"confidence_threshold": 0.3}))
    reference = pycocotools_eval(world, item_ids, use_cats=False)
    label = {o["id"]: o["label"] for o in world.gt + world.dt}
    expected: dict[tuple[str, str], int] = {}
    for _outcome, gt_id, dt_id in expected_matches(reference, threshold=0.3):
        truth = label[gt_id] if gt_id else "background"
        predicted = label[dt_id] if dt_id else "background"
        expected[truth, predicted] = expected.get((truth, predicted), 0) + 1
    confusion = run.metrics["confusion"]
    axis = [*confusion["labels"], "background"]
    found = {
        (truth, predicted): confusion["matrix"][i][j]
        for i, truth in enumerate(axis)
        for j, predicted in enumerate(axis)
        if confusion["matrix"][i][j]
    }
    assert found == expected
    assert any(t != p and "background" not in (t, p) for t, p in found)  # confusions exist
    assert (confusion["iou"], confusion["confidence"]) == (0.5, 0.3)


def test_without_predictions_or_ground_truth_a_run_finishes_with_a_warning(
    dataset: Dataset, alice: User
) -> None:
    box = {"x": 0.0, "y": 0.0, "width": 50.0, "height": 50.0}
    add_items(
        dataset,
        {
            "reference_id": "a.jpg",
            "annotations": [{"id": "g", "kind": "box", "label": "car", "geometry": box}],
        },
        {
            "reference_id": "b.jpg",
            "predictions": [
                {"kind": "box", "label": "car", "geometry": box, "confidence": 0.9, "model": "m2"}
            ],
        },
    )
    Model.objects.create(dataset=dataset, name=MODEL)  # no predictions at all
    empty = run_job(start(dataset, alice, name="no predictions"))
    # pycocotools with ground truth and no detection: AP and AR 0, -1 where no ground truth.
    assert empty.metrics["coco_stats"] == [0.0, 0.0, 0.0, -1.0, 0.0, -1.0, 0, 0, 0, -1, 0, -1]
    assert any("no box predictions" in w for w in empty.warnings)
    assert list(EvaluationMatch.objects.filter(run=empty).values_list("outcome", flat=True)) == [
        "fn"
    ]

    only_b = Slice.objects.create(dataset=dataset, name="b only")
    SliceItem.objects.create(slice=only_b, item=dataset.items.get(reference_id="b.jpg"))
    model = Model.objects.get(dataset=dataset, name="m2")
    no_gt = run_job(
        services.evaluation_create(
            dataset=dataset, user=alice, name="no gt", model_id=model.pk, slice_id=only_b.pk
        )
    )
    assert no_gt.metrics["coco_stats"] == [-1.0] * 12
    assert any("no (non-crowd) ground-truth" in w for w in no_gt.warnings)
    assert list(EvaluationMatch.objects.filter(run=no_gt).values_list("outcome", flat=True)) == [
        "fp"
    ]

    nothing = Slice.objects.create(dataset=dataset, name="empty")
    none = run_job(
        services.evaluation_create(
            dataset=dataset, user=alice, name="nothing", model_id=model.pk, slice_id=nothing.pk
        )
    )
    assert none.metrics["coco_stats"] == [-1.0] * 12 and none.warnings
    assert none.counts == {"items": 0, "ground_truth": 0, "predictions": 0, "matches": 0}


def test_a_slice_run_scores_its_items_and_a_version_run_its_frozen_ground_truth(
    dataset: Dataset, alice: User
) -> None:
    world = random_world(7, images=24)
    item_ids = add_items(dataset, *world.rows)
    chosen = sorted(item_ids)[::2]
    part = Slice.objects.create(dataset=dataset, name="half")
    SliceItem.objects.bulk_create([SliceItem(slice=part, item_id=item_ids[r]) for r in chosen])
    version = slice_version_create(slice=part, user=alice)
    # After freezing, the live ground truth changes: the version's run does not see it.
    Annotation.objects.filter(dataset=dataset).update(label="changed")

    reference = pycocotools_eval(world, item_ids, refs=chosen)
    frozen = run_job(start(dataset, alice, name="v1", slice_id=part.pk, version=version.number))
    assert frozen.scope == {"kind": "version", "slice": part.pk, "slice_name": "half", "version": 1}
    assert np.max(np.abs(np.array(frozen.metrics["coco_stats"]) - reference.stats)) <= 1e-6
    live = run_job(start(dataset, alice, name="live", slice_id=part.pk))
    assert live.counts["items"] == len(chosen)
    assert {c["label"] for c in live.metrics["per_class"]} >= {"changed"}


class Killed(BaseException):
    """The worker dies (not an error the job could record)."""


def test_a_run_killed_while_writing_matches_writes_each_match_once_when_resumed(
    dataset: Dataset, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = random_world(8, images=30)
    add_items(dataset, *world.rows)
    clean = run_job(start(dataset, alice, name="clean"))
    run = start(dataset, alice, name="killed")
    insert = services._matches_insert
    calls = []

    def dying(target: EvaluationRun, batch: Any) -> None:
        calls.append(len(batch))
        insert(target, batch)
        if len(calls) == 2:
            raise Killed()

    monkeypatch.setattr(services, "MATCH_BATCH", 10)
    monkeypatch.setattr(services, "_matches_insert", dying)
    with pytest.raises(Killed):
        job_run(job_id=run.job_id)
    assert calls == [10, 10]  # two batches were written, then rolled back with the step
    assert not EvaluationMatch.objects.filter(run=run).exists()
    run.refresh_from_db()
    assert run.metrics == {} and run.job is not None and run.job.status == JobStatus.RUNNING

    monkeypatch.setattr(services, "_matches_insert", insert)
    run = run_job(run)
    assert run.job is not None and run.job.attempts == 2
    assert EvaluationMatch.objects.filter(run=run).count() == clean.counts["matches"] > 20
    assert stored_matches(run) == stored_matches(clean)
    assert run.metrics == clean.metrics


def test_options_default_to_cocos_and_bad_ones_name_their_field() -> None:
    options = options_clean(None)
    assert options["iou_thresholds"] == COCO_IOU_THRESHOLDS
    coco = Params(iouType="bbox")  # pycocotools' own defaults
    assert list(coco.iouThrs) == options["iou_thresholds"]
    assert coco.maxDets == options["max_dets"]
    assert coco.areaRng == [options["area_ranges"][a] for a in ("all", "small", "medium", "large")]
    assert (options["confidence_threshold"], options["operating_iou"]) == (0.5, 0.5)
    bad = {
        "options.iou_thresholds[1]": {"iou_thresholds": [0.5, 1.0]},
        "options.iou_thresholds[0]": {"iou_thresholds": [0]},
        "options.max_dets": {"max_dets": [10, 1, 100]},
        "options.area_ranges.huge": {"area_ranges": {"huge": [0, 1]}},
        "options.confidence_threshold": {"confidence_threshold": 1.5},
        "options.operating_iou": {"operating_iou": 0.52},
        "options.class_agnostic": {"class_agnostic": "yes"},
        "options.colour": {"colour": 1},
    }
    for path, raw in bad.items():
        with pytest.raises(InvalidInput) as caught:
            options_clean(raw)
        assert [f["path"] for f in caught.value.fields] == [path]


def test_a_coco_file_ingested_with_a_crowd_region_scores_as_pycocotools_scores_the_file(
    dataset: Dataset, alice: User, import_root: Path
) -> None:
    """COCO ingest keeps `iscrowd` in the box's metadata; a run treats that box as COCO
    does. The file's areas are its boxes' (the run measures boxes)."""
    root = import_root / "coco"
    for name in ("a.jpg", "b.jpg"):
        write_image(root / name, size=(200, 100))
    anns = [
        (1, 10, 1, [2, 3, 40, 30], 0),
        (2, 10, 2, [100, 0, 90, 90], 1),  # a crowd of people
        (3, 11, 2, [10, 10, 20, 40], 0),
        (4, 11, 1, [60, 20, 30, 30], 0),
    ]
    coco = {
        "images": [
            {"id": 10, "file_name": "a.jpg", "width": 200, "height": 100},
            {"id": 11, "file_name": "b.jpg", "width": 200, "height": 100},
        ],
        "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}],
        "annotations": [
            {
                "id": i,
                "image_id": im,
                "category_id": c,
                "bbox": b,
                "area": b[2] * b[3],
                "iscrowd": z,
            }
            for i, im, c, b, z in anns
        ],
    }
    (root / "instances.json").write_text(json.dumps(coco))
    job = ingest_enqueue(
        dataset=dataset, user=alice, source={"type": "coco", "path": str(root / "instances.json")}
    )
    assert (finished := job_run(job_id=job.pk)) and finished.status == JobStatus.SUCCEEDED
    results = [
        {"image_id": 10, "category_id": 1, "bbox": [3, 3, 40, 29], "score": 0.9},
        {"image_id": 10, "category_id": 2, "bbox": [120, 10, 30, 60], "score": 0.8},  # in crowd
        {"image_id": 10, "category_id": 2, "bbox": [0, 60, 20, 20], "score": 0.7},  # nothing
        {"image_id": 11, "category_id": 2, "bbox": [10, 12, 20, 40], "score": 0.6},
    ]
    label = {1: "car", 2: "person"}
    add_items(
        dataset,
        *(
            {
                "reference_id": ref,
                "predictions": [
                    {
                        "kind": "box",
                        "label": label[r["category_id"]],
                        "geometry": dict(
                            zip(("x", "y", "width", "height"), r["bbox"], strict=True)
                        ),
                        "confidence": r["score"],
                        "model": MODEL,
                    }
                    for r in results
                    if r["image_id"] == image
                ],
            }
            for ref, image in (("a.jpg", 10), ("b.jpg", 11))
        ),
    )
    run = run_job(start(dataset, alice))

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(root / "instances.json"))
        coco_eval = COCOeval(coco_gt, coco_gt.loadRes(results), "bbox")
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    assert np.max(np.abs(np.array(run.metrics["coco_stats"]) - coco_eval.stats)) <= 1e-6
    outcomes = sorted(
        EvaluationMatch.objects.filter(run=run).values_list("outcome", "label", "confidence")
    )
    assert outcomes == [
        ("fn", "car", None),  # b's car: nothing predicted; the crowd is never a miss
        ("fp", "person", 0.7),
        ("tp", "car", 0.9),
        ("tp", "person", 0.6),
    ]
    assert run.metrics["ignored"]["matched_crowd"] == 1


def test_each_subset_scores_as_a_run_over_that_subset_alone(
    dataset: Dataset, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    from curation.services import tag_add
    from evaluation import scope

    monkeypatch.setattr(scope, "CHUNK_ITEMS", 7)  # subsets that span chunks

    world = random_world(6)
    for i, row in enumerate(world.rows):
        row["metadata"] = {"weather": ["rain", "sun", "fog"][i % 3], "night": i % 2 == 0}
    item_ids = add_items(dataset, *world.rows)
    refs = sorted(item_ids)
    tag_add(dataset=dataset, name="reviewed", reference_ids=refs[:25])
    night = Slice.objects.create(dataset=dataset, name="night", created_by=alice)
    SliceItem.objects.bulk_create(
        [SliceItem(slice=night, item_id=item_ids[r]) for r in refs[10:40]]
    )
    run = run_job(
        start(
            dataset,
            alice,
            options={
                "subsets": {"metadata": ["weather", "night"], "tags": True, "slices": [night.pk]}
            },
        )
    )
    rows = {r["query"]: r for r in run.metrics["subsets"]}
    assert set(rows) == {
        'metadata.weather = "fog"',
        'metadata.weather = "rain"',
        'metadata.weather = "sun"',
        "metadata.night = true",
        "metadata.night = false",
        'tag = "reviewed"',
        'slice = "night"',
    }
    for query, row in rows.items():
        # The same numbers as a run whose scope is that subset: the expected values come
        # from a second, independent job over those items only.
        alone = run_job(start(dataset, alice, name=f"alone {query}", query=query))
        assert row["items"] == alone.counts["items"], query
        assert row["map"] == pytest.approx(alone.metrics["map"], abs=1e-12), query
        assert row["map_50"] == pytest.approx(alone.metrics["map_50"], abs=1e-12), query
        point = alone.metrics["operating_point"]
        for key in ("tp", "fp", "fn", "precision", "recall", "f1"):
            assert row[key] == point[key], (query, key)
    assert rows['slice = "night"']["items"] == 30
    assert rows['tag = "reviewed"']["items"] == 25


def test_bad_subsets_name_their_field(dataset: Dataset, alice: User) -> None:
    add_items(dataset, *random_world(7, images=3).rows)
    other = Dataset.objects.create(name="other", owner=alice)
    elsewhere = Slice.objects.create(dataset=other, name="x", created_by=alice)
    for subsets, path in [
        ([], "options.subsets"),
        ({"weather": ["x"]}, "options.subsets.weather"),
        ({"metadata": "weather"}, "options.subsets.metadata"),
        ({"metadata": ["ok", 3]}, "options.subsets.metadata[1]"),
        ({"tags": "yes"}, "options.subsets.tags"),
        ({"slices": ["a"]}, "options.subsets.slices[0]"),
        ({"slices": [elsewhere.pk]}, "options.subsets.slices[0]"),
    ]:
        with pytest.raises(InvalidInput) as caught:
            start(dataset, alice, options={"subsets": subsets})
        assert [f["path"] for f in caught.value.fields] == [path], subsets


def test_stored_matches_carry_their_error_type(dataset: Dataset, alice: User) -> None:
    world = random_world(8)
    add_items(dataset, *world.rows)
    run = run_job(start(dataset, alice, options={"confidence_threshold": 0.0}))
    typed = EvaluationMatch.objects.filter(run=run).values_list("outcome", "error_type")
    by_outcome: dict[str, set[str]] = {}
    for outcome, error_type in typed:
        by_outcome.setdefault(outcome, set()).add(error_type)
    assert by_outcome["tp"] == {""}
    assert by_outcome["fp"] <= {"classification", "localization", "both", "duplicate", "background"}
    assert len(by_outcome["fp"]) >= 3
    assert "missed" in by_outcome["fn"]
    counts = {t["type"]: t["count"] for t in run.metrics["errors"]["types"]}
    for name, count in counts.items():
        assert count == EvaluationMatch.objects.filter(run=run, error_type=name).count(), name
    assert sum(run.metrics["score_histograms"]["fp"]) >= run.metrics["operating_point"]["fp"]
