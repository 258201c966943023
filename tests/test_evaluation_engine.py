"""The NumPy engine (evaluation.matching) against pycocotools' COCOeval, without the
database: many seeded random worlds, each with the edge cases COCO handles (crowd
regions, ground truth ignored by area, more detections than maxDets, images without
ground truth or without detections, classes on one side only, equal scores, duplicate
boxes whose IoUs tie), under COCO's and other options, class-agnostic too. The stats
must agree to 1e-6, precision and recall arrays to 1e-12 and every match exactly.

(A file of its own: tests/test_evaluation.py, which goes through the job and the
database, is near the size limit.)
"""

from __future__ import annotations

import contextlib
import io
import random
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from curation.models import Dataset
from evaluation import engine, scope
from evaluation.engine import Detection, GroundTruth, Options
from evaluation.options import options_clean
from tests.api_helpers import add_items
from tests.test_evaluation import (
    World,
    expected_matches,
    pycocotools_eval,
    random_world,
    run_job,
    start,
    stored_matches,
)

LABELS = ["bus", "car", "person", "truck", "bike"]


def random_boxes(
    seed: int, images: int = 40
) -> tuple[list[int], list[GroundTruth], list[Detection]]:
    rng = random.Random(seed)
    item_ids = sorted(rng.sample(range(1, 10 * images), images))
    gts: list[GroundTruth] = []
    dts: list[Detection] = []
    for n, item in enumerate(item_ids):
        kind = n % 7  # 0: nothing, 1: no ground truth, 2: no detections, 3: a crowd of them
        mine: list[GroundTruth] = []
        for _ in range(0 if kind in (0, 1) else rng.randint(1, 9)):
            w, h = rng.uniform(2, 200), rng.uniform(2, 200)
            box = (rng.uniform(0, 400), rng.uniform(0, 400), w, h)
            label = rng.choice(LABELS[:4])  # bike: detections only
            mine.append(GroundTruth(item, len(gts) + len(mine) + 1, label, box, rng.random() < 0.1))
            if rng.random() < 0.1:  # the same box twice: IoUs tie
                mine.append(GroundTruth(item, len(gts) + len(mine) + 1, label, box))
        gts += mine
        count = {0: 0, 2: 0, 3: 150}.get(kind, rng.randint(1, 30))
        for _ in range(count):
            if mine and rng.random() < 0.7:
                g = rng.choice(mine)
                x, y, w, h = g.box
                box = (
                    x + rng.uniform(-0.2, 0.2) * w,
                    y + rng.uniform(-0.2, 0.2) * h,
                    w * rng.uniform(0.7, 1.3),
                    h * rng.uniform(0.7, 1.3),
                )
                if rng.random() < 0.1:
                    box = g.box  # IoU exactly 1
                label = g.label if rng.random() < 0.8 else rng.choice(LABELS)
            else:
                box = (
                    rng.uniform(0, 400),
                    rng.uniform(0, 400),
                    rng.uniform(2, 150),
                    rng.uniform(2, 150),
                )
                label = rng.choice(LABELS)
            label = "car" if kind == 3 else label
            # Two decimals: many equal scores, in one image and across images.
            dts.append(Detection(item, len(dts) + 1, label, box, round(rng.random(), 2)))
    rng.shuffle(dts)  # insertion order is not score or image order
    # Detection ids are their position in the list, as pycocotools' loadRes numbers them.
    dts = [Detection(d.item_id, n, d.label, d.box, d.score) for n, d in enumerate(dts, 1)]
    return item_ids, gts, dts


def reference(
    item_ids: list[int], gts: list[GroundTruth], dts: list[Detection], options: Options
) -> COCOeval:
    labels = sorted({g.label for g in gts} | {d.label for d in dts})
    category = {label: k for k, label in enumerate(labels, 1)}
    coco_gt = COCO()
    coco_gt.dataset = {
        "images": [{"id": i} for i in item_ids],
        "categories": [{"id": category[label]} for label in labels],
        "annotations": [
            {
                "id": n,
                "image_id": g.item_id,
                "category_id": category[g.label],
                "bbox": list(g.box),
                "area": g.box[2] * g.box[3],
                "iscrowd": int(g.crowd),
            }
            for n, g in enumerate(gts, 1)
        ],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt.createIndex()
        if dts:
            coco_dt = coco_gt.loadRes(
                [
                    {
                        "image_id": d.item_id,
                        "category_id": category[d.label],
                        "bbox": list(d.box),
                        "score": d.score,
                    }
                    for d in dts
                ]
            )
        else:  # loadRes fails on an empty list: an index without annotations
            coco_dt = COCO()
            coco_dt.dataset = {**coco_gt.dataset, "annotations": []}
            coco_dt.createIndex()
        coco_eval = COCOeval(coco_gt, coco_dt, "bbox")
        p = coco_eval.params
        p.iouThrs = np.array(options.iou_thresholds)
        p.maxDets = list(options.max_dets)
        p.areaRng = [list(options.area_ranges[a]) for a in engine.AREA_NAMES]
        p.useCats = 0 if options.class_agnostic else 1
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return coco_eval


def reference_matches(
    coco_eval: COCOeval, options: Options
) -> set[tuple[str, int | None, int | None]]:
    """(outcome, ground truth id, detection id) from COCO's evalImgs at the operating IoU,
    area "all", the largest maxDets, above the confidence threshold."""
    p = coco_eval.params
    t = int(np.argmin(np.abs(p.iouThrs - options.operating_iou)))
    images, areas = len(p.imgIds), len(p.areaRng)
    found: set[tuple[str, int | None, int | None]] = set()
    for k in range(len(p.catIds) if p.useCats else 1):
        for e in coco_eval.evalImgs[k * areas * images : k * areas * images + images]:
            if e is None:
                continue
            taken = set()
            for d, dt_id in enumerate(e["dtIds"]):
                if e["dtIgnore"][t][d] or e["dtScores"][d] < options.confidence_threshold:
                    continue
                gt_id = int(e["dtMatches"][t][d])
                taken.add(gt_id)
                found.add(("tp", gt_id, dt_id) if gt_id else ("fp", None, dt_id))
            for g, gt_id in enumerate(e["gtIds"]):
                if not e["gtIgnore"][g] and gt_id not in taken:
                    found.add(("fn", gt_id, None))
    return found


def check(
    item_ids: list[int], gts: list[GroundTruth], dts: list[Detection], raw: dict[str, Any]
) -> engine.Result:
    options = Options.of(options_clean(raw))
    ours = engine.evaluate(item_ids=item_ids, ground_truth=gts, detections=dts, options=options)
    coco = reference(item_ids, gts, dts, options)
    assert np.max(np.abs(np.array(ours.metrics["coco_stats"]) - coco.stats)) <= 1e-6
    matches = {(m.outcome, m.annotation_id, m.prediction_id) for m in ours.matches}
    assert len(matches) == len(ours.matches)
    assert matches == reference_matches(coco, options)
    return ours


def arrays(
    item_ids: list[int], gts: list[GroundTruth], dts: list[Detection], raw: dict[str, Any]
) -> None:
    """Precision and recall, all of them, as COCOeval.accumulate leaves them."""
    options = Options.of(options_clean(raw))
    evaluation = engine.Evaluation(options)
    evaluation.add(item_ids, gts, dts)
    evaluation.result()
    coco = reference(item_ids, gts, dts, options)
    assert evaluation.precision.shape == coco.eval["precision"].shape
    assert np.max(np.abs(evaluation.precision - coco.eval["precision"])) <= 1e-12
    assert np.max(np.abs(evaluation.recall - coco.eval["recall"])) <= 1e-12


OPTION_SETS: list[dict[str, Any]] = [
    {"confidence_threshold": 0.0},
    {"confidence_threshold": 0.3, "operating_iou": 0.75},
    {"max_dets": [2, 5, 20], "confidence_threshold": 0.5},
    {"iou_thresholds": [0.3, 0.5, 0.9], "operating_iou": 0.3, "confidence_threshold": 0.1},
    {"area_ranges": {"all": [100.0, 30000.0], "small": [0.0, 2000.0]}, "confidence_threshold": 0.2},
    {"class_agnostic": True, "confidence_threshold": 0.0},
    {"class_agnostic": True, "max_dets": [1, 3, 10], "area_ranges": {"all": [50.0, 1e10]}},
]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("raw", OPTION_SETS, ids=[str(i) for i in range(len(OPTION_SETS))])
def test_the_engine_gives_pycocotools_stats_and_matches(seed: int, raw: dict[str, Any]) -> None:
    item_ids, gts, dts = random_boxes(100 + seed)
    result = check(item_ids, gts, dts, raw)
    # The edge cases are there, so that the equality covers them.
    assert any(g.crowd for g in gts) and result.metrics["ignored"]["beyond_max_dets"] > 0
    assert result.metrics["ignored"]["matched_crowd"] > 0
    arrays(item_ids, gts, dts, raw)


def test_chunks_of_items_give_the_numbers_of_one_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    item_ids, gts, dts = random_boxes(7, images=60)
    for raw in OPTION_SETS:
        options = Options.of(options_clean(raw))
        whole = engine.evaluate(
            item_ids=item_ids, ground_truth=gts, detections=dts, options=options
        )
        with monkeypatch.context() as patch:
            patch.setattr(engine, "CHUNK_ITEMS", 7)
            chunked = check(item_ids, gts, dts, raw)
        assert chunked.metrics == whole.metrics
        assert sorted(map(repr, chunked.matches)) == sorted(map(repr, whole.matches))


def test_small_batches_give_the_numbers_of_large_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    from evaluation import matching

    item_ids, gts, dts = random_boxes(8)
    monkeypatch.setattr(matching, "BATCH_ELEMENTS", 1)  # one (image, class) group a batch
    check(item_ids, gts, dts, {"confidence_threshold": 0.0})
    check(item_ids, gts, dts, {"class_agnostic": True})


def test_no_boxes_or_one_side_only() -> None:
    box = (0.0, 0.0, 10.0, 10.0)
    nothing = engine.evaluate(
        item_ids=[1, 2], ground_truth=[], detections=[], options=Options.of(options_clean({}))
    )
    assert nothing.metrics["coco_stats"] == [-1.0] * 12 and nothing.matches == []
    check([1, 2], [GroundTruth(1, 1, "car", box)], [], {})
    check([1, 2], [], [Detection(2, 1, "car", box, 0.9)], {"confidence_threshold": 0.0})
    check([1], [GroundTruth(1, 1, "car", box, crowd=True)], [Detection(1, 1, "car", box, 0.9)], {})


def test_a_run_loaded_in_chunks_with_a_label_mapping_gives_pycocotools_numbers(
    dataset: Dataset, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the database: the job reads the scope in chunks (of 7 items here) and maps
    labels as it reads; pycocotools runs on the same boxes with the labels mapped."""
    world = random_world(9)
    item_ids = add_items(dataset, *world.rows)
    monkeypatch.setattr(scope, "CHUNK_ITEMS", 7)
    mapped = World(
        world.rows,
        world.gt,
        [{**d, "label": "bus" if d["label"] == "bike" else d["label"]} for d in world.dt],
    )
    run = run_job(
        start(dataset, alice, options={"label_mapping": {"bike": "bus"}, "confidence_threshold": 0})
    )
    reference = pycocotools_eval(mapped, item_ids)
    assert np.max(np.abs(np.array(run.metrics["coco_stats"]) - reference.stats)) <= 1e-6
    assert stored_matches(run) == expected_matches(reference, threshold=0.0)
    assert "bike" not in {c["label"] for c in run.metrics["per_class"]}
    assert run.counts["items"] == len(item_ids) > 7
