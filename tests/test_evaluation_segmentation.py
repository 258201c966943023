"""Instance segmentation runs (evaluation.segmentation) against pycocotools' COCOeval
with iouType "segm": seeded random worlds of polygons (some in several parts), masks as
compressed and uncompressed RLE, crowd regions, the three area sizes by mask area,
images without ground truth or without predictions, classes on one side only, more
predictions than maxDets. The 12 stats must agree to 1e-6 and the matches exactly."""

from __future__ import annotations

import contextlib
import io
import math
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from curation.models import Dataset, Item, Model, Slice, SliceItem
from curation.versions import slice_version_create
from evaluation import engine, scope, services
from evaluation.engine import Options
from evaluation.models import EvaluationMatch, EvaluationRun
from evaluation.options import options_clean
from evaluation.segmentation import SegmentationEvaluation, Shape, instances
from tests.api_helpers import add_items
from tests.test_evaluation import run_job
from tests.test_evaluation_engine import reference_matches

MODEL = "segmenter"


@dataclass
class World:
    """Shapes as the database holds them, and the same objects as COCO dicts."""

    item_ids: list[int] = field(default_factory=list)
    sizes: dict[int, tuple[int, int]] = field(default_factory=dict)
    gt: list[Shape] = field(default_factory=list)
    dt: list[Shape] = field(default_factory=list)
    coco_gt: list[dict[str, Any]] = field(default_factory=list)  # id = the first shape's pk
    coco_dt: list[dict[str, Any]] = field(default_factory=list)  # in dt order


def _polygon(rng: random.Random, cx: float, cy: float, radius: float) -> list[list[float]]:
    n = rng.randint(3, 8)
    angles = sorted(rng.uniform(0, 2 * math.pi) for _ in range(n))
    return [
        [
            round(cx + radius * rng.uniform(0.5, 1.0) * math.cos(a), 2),
            round(cy + radius * rng.uniform(0.5, 1.0) * math.sin(a), 2),
        ]
        for a in angles
    ]


def _mask(h: int, w: int, cx: float, cy: float, radius: float, compressed: bool) -> dict[str, Any]:
    """An ellipse as COCO RLE: compressed (a string) or uncompressed (run lengths)."""
    yy, xx = np.mgrid[0:h, 0:w]
    inside = ((xx - cx) / radius) ** 2 + ((yy - cy) / (radius * 0.7)) ** 2 <= 1
    if compressed:
        rle = mask_utils.encode(np.asfortranarray(inside.astype(np.uint8)))
        return {"size": [h, w], "counts": rle["counts"].decode()}
    flat = inside.flatten(order="F")
    counts, value, run = [], False, 0
    for pixel in flat:
        if pixel != value:
            counts.append(run)
            value, run = pixel, 0
        run += 1
    counts.append(run)
    return {"size": [h, w], "counts": [int(c) for c in counts]}


def random_world(seed: int, images: int = 24) -> World:
    rng = random.Random(seed)
    world = World()
    pk = 0
    gt_labels = ["car", "person", "bus", "truck"]  # truck: ground truth only
    for n in range(images):
        item = 10 * n + rng.randint(1, 9)
        h, w = rng.randint(120, 260), rng.randint(120, 260)
        world.item_ids.append(item)
        world.sizes[item] = (h, w)
        kind = n % 6  # 0: no ground truth, 1: no predictions, 2: more than maxDets
        centres = []
        for g in range(0 if kind == 0 else rng.randint(1, 6)):
            label = rng.choice(gt_labels)
            radius = rng.choice([rng.uniform(4, 14), rng.uniform(22, 45), rng.uniform(60, 90)])
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            centres.append((cx, cy, radius, label))
            crowd = rng.random() < 0.12
            coco_id = f"{item}-{g}"
            metadata = {"coco_id": coco_id, "iscrowd": int(crowd)}
            first = pk + 1
            if crowd or rng.random() < 0.15:
                rle = _mask(h, w, cx, cy, radius, compressed=rng.random() < 0.5)
                pk += 1
                world.gt.append(Shape(item, pk, "segmentation", label, {"rle": rle}, metadata))
                segmentation: Any = rle
            else:
                segmentation = []
                for _ in range(2 if rng.random() < 0.25 else 1):  # a polygon in two parts
                    part = _polygon(rng, cx + rng.uniform(-5, 5), cy, radius)
                    pk += 1
                    world.gt.append(Shape(item, pk, "polygon", label, {"vertices": part}, metadata))
                    segmentation.append([c for point in part for c in point])
            world.coco_gt.append(
                {
                    "id": first,
                    "image_id": item,
                    "label": label,
                    "iscrowd": int(crowd),
                    "segmentation": segmentation,
                }
            )
        count = 0 if kind == 1 else (110 if kind == 2 else rng.randint(1, 10))
        for _ in range(count):
            if centres and rng.random() < 0.7:
                cx, cy, radius, label = rng.choice(centres)
                cx, cy = cx + rng.uniform(-4, 4), cy + rng.uniform(-4, 4)
                radius *= rng.uniform(0.8, 1.2)
                label = label if label != "truck" and rng.random() < 0.85 else "car"
            else:
                cx, cy, radius = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(4, 60)
                label = rng.choice(["car", "person", "bus", "bike"])  # bike: predictions only
            if kind == 2:
                label = "car"
            score = round(rng.random(), 2)  # equal scores
            pk += 1
            if rng.random() < 0.2:
                rle = _mask(h, w, cx, cy, radius, compressed=True)
                world.dt.append(Shape(item, pk, "segmentation", label, {"rle": rle}, {}, score))
                coco_rle = rle
            else:
                part = _polygon(rng, cx, cy, radius)
                world.dt.append(Shape(item, pk, "polygon", label, {"vertices": part}, {}, score))
                flat = [c for point in part for c in point]
                coco_rle = mask_utils.merge(mask_utils.frPyObjects([flat], h, w))
            world.coco_dt.append(
                {"image_id": item, "label": label, "segmentation": coco_rle, "score": score}
            )
    return world


def reference(world: World, options: Options) -> COCOeval:
    """pycocotools on the COCO dicts: ground-truth areas are the masks' (COCO.annToRLE)."""
    labels = sorted({a["label"] for a in world.coco_gt} | {d["label"] for d in world.coco_dt})
    category = {label: k for k, label in enumerate(labels, 1)}
    coco_gt = COCO()
    coco_gt.dataset = {
        "images": [
            {"id": i, "height": world.sizes[i][0], "width": world.sizes[i][1]}
            for i in world.item_ids
        ],
        "categories": [{"id": category[label]} for label in labels],
        "annotations": [
            {**{k: v for k, v in a.items() if k != "label"}, "category_id": category[a["label"]]}
            for a in world.coco_gt
        ],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt.createIndex()
        for ann in coco_gt.dataset["annotations"]:
            ann["area"] = float(mask_utils.area(coco_gt.annToRLE(ann)))
        if world.coco_dt:
            coco_dt = coco_gt.loadRes(
                [
                    {
                        **{k: v for k, v in d.items() if k != "label"},
                        "category_id": category[d["label"]],
                    }
                    for d in world.coco_dt
                ]
            )
        else:
            coco_dt = COCO()
            coco_dt.dataset = {**coco_gt.dataset, "annotations": []}
            coco_dt.createIndex()
        coco_eval = COCOeval(coco_gt, coco_dt, "segm")
        p = coco_eval.params
        p.iouThrs = np.array(options.iou_thresholds)
        p.maxDets = list(options.max_dets)
        p.areaRng = [list(options.area_ranges[a]) for a in engine.AREA_NAMES]
        p.useCats = 0 if options.class_agnostic else 1
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return coco_eval


def check(world: World, raw: dict[str, Any]) -> engine.Result:
    options = Options.of(options_clean(raw))
    found = instances(world.sizes, world.gt, world.dt)  # type: ignore[arg-type]
    assert found.left_out == 0
    ours = engine.evaluate(
        item_ids=world.item_ids,
        ground_truth=found.ground_truth,
        detections=found.detections,
        options=options,
        kind=SegmentationEvaluation,
    )
    coco = reference(world, options)
    assert np.max(np.abs(np.array(ours.metrics["coco_stats"]) - coco.stats)) <= 1e-6
    # loadRes numbers the detections 1..n in their order; ours are the shapes' pks.
    pks = {n: d.pk for n, d in enumerate(world.dt, 1)}
    expected = {(o, g, pks[d] if d else None) for o, g, d in reference_matches(coco, options)}
    matches = {(m.outcome, m.annotation_id, m.prediction_id) for m in ours.matches}
    assert len(matches) == len(ours.matches)
    assert matches == expected
    return ours


OPTION_SETS: list[dict[str, Any]] = [
    {"confidence_threshold": 0.0},
    {"confidence_threshold": 0.4, "operating_iou": 0.75},
    {"max_dets": [2, 5, 20], "iou_thresholds": [0.3, 0.5, 0.9], "operating_iou": 0.3},
    {"class_agnostic": True, "confidence_threshold": 0.0},
]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("raw", OPTION_SETS, ids=[str(i) for i in range(len(OPTION_SETS))])
def test_masks_give_pycocotools_segm_stats_and_matches(seed: int, raw: dict[str, Any]) -> None:
    world = random_world(200 + seed)
    result = check(world, raw)
    # The edge cases are in the data, so that the equality covers them.
    assert any(s.metadata.get("iscrowd") for s in world.gt)
    assert len({s.metadata["coco_id"] for s in world.gt}) < len(world.gt)  # parts
    assert result.metrics["ignored"]["beyond_max_dets"] > 0
    assert {"bike", "truck"} <= {c["label"] for c in result.metrics["per_class"]}
    areas = [
        g["area"] for g in reference(world, Options.of(options_clean(raw))).cocoGt.anns.values()
    ]
    assert min(areas) < 32**2 < 96**2 < max(areas)


def test_small_batches_give_the_numbers_of_large_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    from evaluation import matching

    monkeypatch.setattr(matching, "BATCH_ELEMENTS", 1)  # one (image, class) group a batch
    check(random_world(7, images=12), {"confidence_threshold": 0.0})


def test_polygons_of_an_item_without_a_size_are_left_out_and_counted() -> None:
    square = {"vertices": [[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]]}
    rle = _mask(20, 20, 5, 5, 4, compressed=True)
    found = instances(
        {1: None, 2: (30, 30)},
        [
            Shape(1, 1, "polygon", "car", square, {}),
            Shape(1, 2, "segmentation", "car", {"rle": rle}, {}),  # its own size: used
            Shape(2, 3, "segmentation", "car", {"rle": rle}, {}),  # not the image's size
            # Malformed strings (pycocotools would give garbage, or loop merging them).
            Shape(2, 5, "segmentation", "car", {"rle": {"size": [30, 30], "counts": "abc"}}, {}),
            Shape(2, 6, "segmentation", "car", {"rle": {"size": [30, 30], "counts": "zz"}}, {}),
        ],
        [Shape(2, 4, "polygon", "car", square, {}, 0.5)],
    )
    assert [g.annotation_id for g in found.ground_truth] == [2]
    assert [d.prediction_id for d in found.detections] == [4]
    assert found.detections[0].area == 100.0
    assert found.left_out == 4


def _rows(world: World) -> list[dict[str, Any]]:
    rows = []
    for item in world.item_ids:

        def shape(s: Shape) -> dict[str, Any]:
            return {
                "id": f"s{s.pk}",
                "kind": s.kind,
                "label": s.label,
                "geometry": s.geometry,
                "metadata": s.metadata,
            }

        rows.append(
            {
                "reference_id": f"img{item}",
                "annotations": [shape(s) for s in world.gt if s.item_id == item],
                "predictions": [
                    {**shape(s), "model": MODEL, "confidence": s.confidence}
                    for s in world.dt
                    if s.item_id == item
                ],
            }
        )
    return rows


def test_a_segmentation_run_through_the_job_gives_pycocotools_numbers(
    dataset: Dataset, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the database: stored polygons and masks, read in chunks of 5 items, the
    items' sizes from their rows; pycocotools on the same shapes."""
    world = random_world(11)
    ids = add_items(dataset, *_rows(world))
    for item in world.item_ids:
        h, w = world.sizes[item]
        Item.objects.filter(pk=ids[f"img{item}"]).update(width=w, height=h)
    # The reference's image ids are the stored items'.
    stored = World(
        item_ids=sorted(ids.values()),
        sizes={ids[f"img{i}"]: s for i, s in world.sizes.items()},
        coco_gt=[{**a, "image_id": ids[f"img{a['image_id']}"]} for a in world.coco_gt],
        coco_dt=[{**d, "image_id": ids[f"img{d['image_id']}"]} for d in world.coco_dt],
    )
    monkeypatch.setattr(scope, "CHUNK_ITEMS", 5)
    model = Model.objects.get(dataset=dataset, name=MODEL)
    run = run_job(
        services.evaluation_create(
            dataset=dataset,
            user=alice,
            name="segm",
            model_id=model.pk,
            task="segmentation",
            options={"confidence_threshold": 0.0},
        )
    )
    coco = reference(stored, Options.of(options_clean({})))
    assert run.task == "segmentation"
    assert np.max(np.abs(np.array(run.metrics["coco_stats"]) - coco.stats)) <= 1e-6
    rows = EvaluationMatch.objects.filter(run=run)
    assert rows.filter(outcome="tp").exists() and rows.filter(outcome="fn").exists()
    assert run.counts["ground_truth"] == len(world.coco_gt)
    assert run.counts["predictions"] == len(world.coco_dt)
    assert sum(run.metrics["confusion"]["matrix"][-1]) > 0  # unmatched predictions
    assert any("max_dets" in w for w in run.warnings)

    # A frozen version: its shapes and item sizes as they were frozen, the same numbers.
    everything = Slice.objects.create(dataset=dataset, name="all")
    SliceItem.objects.bulk_create(SliceItem(slice=everything, item_id=i) for i in ids.values())
    slice_version_create(slice=everything, user=alice)
    Item.objects.filter(dataset=dataset).update(width=None, height=None)
    frozen = run_job(
        services.evaluation_create(
            dataset=dataset,
            user=alice,
            name="segm v1",
            model_id=model.pk,
            task="segmentation",
            slice_id=everything.pk,
            version=1,
            options={"confidence_threshold": 0.0},
        )
    )
    assert frozen.metrics["coco_stats"] == run.metrics["coco_stats"]
    assert frozen.counts == run.counts


def test_a_dataset_without_polygons_finishes_with_a_warning(dataset: Dataset, alice: User) -> None:
    box = {"x": 0.0, "y": 0.0, "width": 50.0, "height": 50.0}
    add_items(
        dataset,
        {
            "reference_id": "a.jpg",
            "annotations": [{"id": "g", "kind": "box", "label": "car", "geometry": box}],
            "predictions": [
                {"kind": "box", "label": "car", "geometry": box, "confidence": 0.9, "model": MODEL}
            ],
        },
    )
    model = Model.objects.get(dataset=dataset, name=MODEL)
    run: EvaluationRun = run_job(
        services.evaluation_create(
            dataset=dataset, user=alice, name="segm", model_id=model.pk, task="segmentation"
        )
    )
    assert run.metrics["coco_stats"] == [-1.0] * 12
    assert any("no polygon or mask predictions" in w for w in run.warnings)
    assert any("no (non-crowd) ground-truth polygons or masks" in w for w in run.warnings)


def test_tide_errors_of_a_segmentation_run_use_the_masks_iou_not_the_boxes() -> None:
    """Two triangles halving one square: their boxes are the same (box IoU 1), their masks
    barely touch (mask IoU about 0). The prediction is a false positive by masks, and
    TIDE, on masks, calls it background and the ground truth missed; on boxes it would
    have found a same-class ground truth at IoU 1 (not background)."""
    lower = {"vertices": [[0.0, 0.0], [40.0, 0.0], [40.0, 40.0]]}
    upper = {"vertices": [[0.0, 0.0], [40.0, 40.0], [0.0, 40.0]]}
    found = instances(
        {1: (50, 50)},
        [Shape(1, 1, "polygon", "car", lower, {})],
        [Shape(1, 2, "polygon", "car", upper, {}, 0.9)],
    )
    result = engine.evaluate(
        item_ids=[1],
        ground_truth=found.ground_truth,
        detections=found.detections,
        options=Options.of(options_clean({})),
        kind=SegmentationEvaluation,
    )
    types = {(m.outcome, m.error_type) for m in result.matches}
    assert types == {("fp", "background"), ("fn", "missed")}
    boxes = engine.evaluate(
        item_ids=[1],
        ground_truth=found.ground_truth,
        detections=found.detections,
        options=Options.of(options_clean({})),
    )
    assert {m.outcome for m in boxes.matches} == {"tp"}  # the same shapes, as boxes


def test_a_segmentation_runs_subsets_score_as_runs_over_each_subset_alone(
    dataset: Dataset, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = random_world(12, images=12)
    rows = _rows(world)
    for n, row in enumerate(rows):
        row["metadata"] = {"weather": ["rain", "sun"][n % 2]}
    ids = add_items(dataset, *rows)
    for item in world.item_ids:
        h, w = world.sizes[item]
        Item.objects.filter(pk=ids[f"img{item}"]).update(width=w, height=h)
    monkeypatch.setattr(scope, "CHUNK_ITEMS", 5)
    model = Model.objects.get(dataset=dataset, name=MODEL)

    def segm(name: str, **kw: Any) -> EvaluationRun:
        return run_job(
            services.evaluation_create(
                dataset=dataset,
                user=alice,
                name=name,
                model_id=model.pk,
                task="segmentation",
                **kw,
            )
        )

    run = segm("by weather", options={"subsets": {"metadata": ["weather"]}})
    found = {r["query"]: r for r in run.metrics["subsets"]}
    assert set(found) == {'metadata.weather = "rain"', 'metadata.weather = "sun"'}
    for query, row in found.items():
        alone = segm(f"alone {query}", query=query)
        assert row["map"] == pytest.approx(alone.metrics["map"], abs=1e-12)
        point = alone.metrics["operating_point"]
        assert (row["tp"], row["fp"], row["fn"]) == (point["tp"], point["fp"], point["fn"])
