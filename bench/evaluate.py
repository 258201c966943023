"""Evaluation speed: our engine next to pycocotools' COCOeval and faster-coco-eval.

Target (DESIGN.md): numbers equal to pycocotools; faster than pycocotools on the same
~5,000 images; 1M items (~5 ground-truth boxes, ~8 predictions each) in <= 10 minutes
with bounded memory (the issue: peak RSS <= 4 GB).

The default run builds ~5,000 COCO-like images in memory (seeded: 80 classes, crowd
regions, all three area sizes, up to 100 detections an image, some images without
ground truth or without detections) and times the three on the same boxes, asserting
that the 12 stats agree to 1e-6 and that our matches are pycocotools' matches.

    .venv/bin/python bench/evaluate.py [--images 5000] [--seed 0]
    .venv/bin/python bench/evaluate.py --million [--n 1000000] [--reuse]
    .venv/bin/python bench/evaluate.py --segm [--images 1000]

--segm times instance segmentation (COCOeval with iouType "segm") the same way, on ~1,000
images of polygons (some in two parts) and crowd masks: ours (evaluation.segmentation,
rasterising both sides' polygons with pycocotools' mask module inside the timing), and
pycocotools and faster-coco-eval given the detections already as RLE (loadRes wants RLE),
so the comparison leans their way.

--million writes a dataset of N items (~5 ground truths, ~8 predictions each) through the
project's bulk COPY path, then runs an evaluation job on it as the worker would (loading
in chunks, writing every match) and reports its wall time and peak RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import random
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np
from _setup import items_build, report, setup_django

CLASSES = [f"class{k:02d}" for k in range(80)]
DATASET_NAME = "bench-evaluate"
TARGET_MILLION_S = 600.0
TARGET_RSS_GB = 4.0


def make_image(rng: random.Random, image: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One image's ground truth and detections, as COCO dicts (without ids)."""
    kind = image % 20  # 0: no ground truth, 1: no detections
    gts = []
    for _ in range(0 if kind == 0 else rng.randint(1, 15)):
        size = rng.choice([(4, 30), (33, 95), (100, 300)])
        w, h = rng.uniform(*size), rng.uniform(*size)
        gts.append(
            {
                "image_id": image,
                "category_id": rng.randrange(len(CLASSES)) + 1,
                "bbox": [rng.uniform(0, 600), rng.uniform(0, 400), w, h],
                "iscrowd": int(rng.random() < 0.03),
            }
        )
    dts = []
    for _ in range(0 if kind == 1 else rng.randint(0, 100)):
        if gts and rng.random() < 0.5:
            g = rng.choice(gts)
            x, y, w, h = g["bbox"]
            box = [
                x + rng.gauss(0, 0.1) * w,
                y + rng.gauss(0, 0.1) * h,
                w * rng.uniform(0.8, 1.2),
                h * rng.uniform(0.8, 1.2),
            ]
            category = g["category_id"] if rng.random() < 0.85 else rng.randrange(80) + 1
        else:
            box = [
                rng.uniform(0, 600),
                rng.uniform(0, 400),
                rng.uniform(4, 200),
                rng.uniform(4, 200),
            ]
            category = rng.randrange(len(CLASSES)) + 1
        dts.append(
            {
                "image_id": image,
                "category_id": category,
                "bbox": box,
                "score": round(rng.random(), 4),
            }
        )
    return gts, dts


def world(images: int, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = random.Random(seed)
    gts: list[dict[str, Any]] = []
    dts: list[dict[str, Any]] = []
    for image in range(1, images + 1):
        g, d = make_image(rng, image)
        gts += g
        dts += d
    for n, g in enumerate(gts, 1):
        g.update(id=n, area=g["bbox"][2] * g["bbox"][3])
    return gts, dts


def coco_run(module: str, images: int, gts: list[dict[str, Any]], dts: list[dict[str, Any]]) -> Any:
    """evaluate + accumulate + summarize with pycocotools or faster-coco-eval, from
    dicts (indexing included: both need it)."""
    if module == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    else:
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {
            "images": [{"id": i} for i in range(1, images + 1)],
            "categories": [{"id": k} for k in range(1, len(CLASSES) + 1)],
            "annotations": [dict(g) for g in gts],
        }
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes([dict(d) for d in dts])
        quiet = {} if module == "pycocotools" else {"print_function": lambda *_: None}
        coco_eval = COCOeval(coco_gt, coco_dt, "bbox", **quiet)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return coco_eval


def ours(images: int, gts: list[dict[str, Any]], dts: list[dict[str, Any]]) -> Any:
    from evaluation import engine
    from evaluation.options import options_clean

    ground_truth = [
        engine.GroundTruth(
            g["image_id"],
            g["id"],
            CLASSES[g["category_id"] - 1],
            tuple(g["bbox"]),
            bool(g["iscrowd"]),
        )  # type: ignore[arg-type]
        for g in gts
    ]
    detections = [
        engine.Detection(
            d["image_id"], n, CLASSES[d["category_id"] - 1], tuple(d["bbox"]), d["score"]
        )  # type: ignore[arg-type]
        for n, d in enumerate(dts, 1)
    ]
    options = engine.Options.of(options_clean({"confidence_threshold": 0.0}))
    return engine.evaluate(
        item_ids=range(1, images + 1),  # type: ignore[arg-type]
        ground_truth=ground_truth,
        detections=detections,
        options=options,
    )


def coco_matches(coco_eval: Any) -> set[tuple[str, int | None, int | None]]:
    """pycocotools' matches at IoU 0.5, area all, maxDets 100 (threshold 0)."""
    images, areas = len(coco_eval.params.imgIds), len(coco_eval.params.areaRng)
    found: set[tuple[str, int | None, int | None]] = set()
    for k in range(len(coco_eval.params.catIds)):
        for e in coco_eval.evalImgs[k * areas * images : k * areas * images + images]:
            if e is None:
                continue
            taken = set()
            for d, dt_id in enumerate(e["dtIds"]):
                if not e["dtIgnore"][0][d]:
                    gt_id = int(e["dtMatches"][0][d])
                    taken.add(gt_id)
                    found.add(("tp", gt_id, dt_id) if gt_id else ("fp", None, dt_id))
            for g, gt_id in enumerate(e["gtIds"]):
                if not e["gtIgnore"][g] and gt_id not in taken:
                    found.add(("fn", gt_id, None))
    return found


def timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def bench_images(images: int, seed: int) -> list[tuple[str, str, str, bool | None]]:
    gts, dts = world(images, seed)
    print(f"{images:,} images, {len(gts):,} ground truths, {len(dts):,} detections")
    ours_s, result = timed(lambda: ours(images, gts, dts))
    print(f"  ours {ours_s:.2f} s")
    coco_s, reference = timed(lambda: coco_run("pycocotools", images, gts, dts))
    print(f"  pycocotools {coco_s:.2f} s")
    fast_s, fast = timed(lambda: coco_run("faster_coco_eval", images, gts, dts))
    print(f"  faster-coco-eval {fast_s:.2f} s")
    ours_diff = float(np.max(np.abs(np.array(result.metrics["coco_stats"]) - reference.stats)))
    fast_diff = float(np.max(np.abs(np.array(fast.stats[:12]) - reference.stats)))
    print(
        f"  stats, largest difference from pycocotools: ours {ours_diff:.1e}; "
        f"faster-coco-eval {fast_diff:.1e}"
    )
    assert ours_diff <= 1e-6, (result.metrics["coco_stats"], list(reference.stats))
    assert fast_diff <= 1e-6, (list(fast.stats), list(reference.stats))
    mine = {(m.outcome, m.annotation_id, m.prediction_id) for m in result.matches}
    assert mine == coco_matches(reference), "the matches differ from pycocotools'"
    print(f"  matches: {len(mine):,}, equal to pycocotools'")
    return [
        ("numbers equal to pycocotools", f"{ours_diff:.1e}", "<= 1e-6", ours_diff <= 1e-6),
        (f"ours, {images:,} images", f"{ours_s:.2f} s", f"< {coco_s:.2f} s", ours_s < coco_s),
        ("pycocotools COCOeval", f"{coco_s:.2f} s", "-", None),
        ("faster-coco-eval", f"{fast_s:.2f} s", "-", None),
    ]


def polygon(rng: random.Random, cx: float, cy: float, radius: float) -> list[float]:
    """A star-shaped polygon around (cx, cy), flat [x1, y1, x2, y2, ...]."""
    angles = sorted(rng.uniform(0, 2 * math.pi) for _ in range(rng.randint(5, 12)))
    return [
        round(v, 2)
        for a in angles
        for v in (
            cx + radius * rng.uniform(0.6, 1.0) * math.cos(a),
            cy + radius * rng.uniform(0.6, 1.0) * math.sin(a),
        )
    ]


def segm_world(images: int, seed: int) -> tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]:
    """Ground truth (polygons, 3% crowd masks) and detections (polygons near the ground
    truth or anywhere) on 640x480 images, as evaluation.segmentation Shapes and as COCO
    dicts (detections as compressed RLE, the only form loadRes takes)."""
    from pycocotools import mask as mask_utils

    from evaluation.segmentation import Shape

    rng = random.Random(seed)
    h, w = 480, 640
    shapes: tuple[list[Shape], list[Shape]] = ([], [])
    gts: list[dict[str, Any]] = []
    dts: list[dict[str, Any]] = []
    for image in range(1, images + 1):
        kind = image % 20  # 0: no ground truth, 1: no detections
        centres = []
        for _ in range(0 if kind == 0 else rng.randint(1, 12)):
            radius = rng.choice([rng.uniform(3, 16), rng.uniform(18, 50), rng.uniform(56, 160)])
            cx, cy, k = rng.uniform(0, w), rng.uniform(0, h), rng.randrange(len(CLASSES)) + 1
            centres.append((cx, cy, radius, k))
            crowd = rng.random() < 0.03
            parts = [polygon(rng, cx, cy, radius)]
            if not crowd and rng.random() < 0.2:
                parts.append(polygon(rng, cx + radius, cy, radius / 2))
            segmentation: Any = parts
            if crowd:
                rle = mask_utils.merge(mask_utils.frPyObjects(parts, h, w))
                segmentation = {"size": [h, w], "counts": rle["counts"].decode()}
            n = len(gts) + 1
            gts.append(
                {
                    "id": n,
                    "image_id": image,
                    "category_id": k,
                    "iscrowd": int(crowd),
                    "segmentation": segmentation,
                }
            )
            metadata = {"coco_id": n, "iscrowd": int(crowd)}
            label = CLASSES[k - 1]
            if crowd:
                geometry = {"rle": segmentation}
                shapes[0].append(Shape(image, n, "segmentation", label, geometry, metadata))
            for part in [] if crowd else parts:
                vertices = [part[i : i + 2] for i in range(0, len(part), 2)]
                shapes[0].append(
                    Shape(image, n, "polygon", label, {"vertices": vertices}, metadata)
                )
        for _ in range(0 if kind == 1 else rng.randint(0, 40)):
            if centres and rng.random() < 0.5:
                cx, cy, radius, k = rng.choice(centres)
                cx, cy = cx + rng.gauss(0, 0.1) * radius, cy + rng.gauss(0, 0.1) * radius
                radius *= rng.uniform(0.8, 1.2)
                k = k if rng.random() < 0.85 else rng.randrange(len(CLASSES)) + 1
            else:
                cx, cy, radius = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(4, 100)
                k = rng.randrange(len(CLASSES)) + 1
            flat = polygon(rng, cx, cy, radius)
            score = round(rng.random(), 4)
            rle = mask_utils.merge(mask_utils.frPyObjects([flat], h, w))
            n = len(dts) + 1
            dts.append(
                {
                    "image_id": image,
                    "category_id": k,
                    "score": score,
                    "segmentation": {"size": [h, w], "counts": rle["counts"].decode()},
                }
            )
            vertices = [flat[i : i + 2] for i in range(0, len(flat), 2)]
            shapes[1].append(
                Shape(image, n, "polygon", CLASSES[k - 1], {"vertices": vertices}, {}, score)
            )
    return shapes, gts, dts


def segm_coco(
    module: str, images: int, gts: list[dict[str, Any]], dts: list[dict[str, Any]]
) -> Any:
    """COCOeval("segm") with pycocotools or faster-coco-eval (ground-truth areas are the
    masks', set beforehand as a COCO file would hold them)."""
    if module == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    else:
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {
            "images": [{"id": i, "height": 480, "width": 640} for i in range(1, images + 1)],
            "categories": [{"id": k} for k in range(1, len(CLASSES) + 1)],
            "annotations": [dict(g) for g in gts],
        }
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes([dict(d) for d in dts])
        quiet = {} if module == "pycocotools" else {"print_function": lambda *_: None}
        coco_eval = COCOeval(coco_gt, coco_dt, "segm", **quiet)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return coco_eval


def bench_segm(images: int, seed: int) -> list[tuple[str, str, str, bool | None]]:
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    from evaluation import engine
    from evaluation.options import options_clean
    from evaluation.segmentation import SegmentationEvaluation, instances

    (gt_shapes, dt_shapes), gts, dts = segm_world(images, seed)
    index = COCO()
    index.dataset = {
        "images": [{"id": i, "height": 480, "width": 640} for i in range(1, images + 1)]
    }
    with contextlib.redirect_stdout(io.StringIO()):
        index.createIndex()
    for g in gts:
        g["area"] = float(mask_utils.area(index.annToRLE(g)))
    print(f"segm: {images:,} images, {len(gts):,} ground truths, {len(dts):,} detections")

    def run_ours() -> Any:
        found = instances({i: (480, 640) for i in range(1, images + 1)}, gt_shapes, dt_shapes)
        return engine.evaluate(
            item_ids=list(range(1, images + 1)),
            ground_truth=found.ground_truth,
            detections=found.detections,
            options=engine.Options.of(options_clean({"confidence_threshold": 0.0})),
            kind=SegmentationEvaluation,
        )

    ours_s, result = timed(run_ours)
    print(f"  ours {ours_s:.2f} s (rasterising both sides included)")
    coco_s, reference = timed(lambda: segm_coco("pycocotools", images, gts, dts))
    print(f"  pycocotools {coco_s:.2f} s")
    fast_s, fast = timed(lambda: segm_coco("faster_coco_eval", images, gts, dts))
    print(f"  faster-coco-eval {fast_s:.2f} s")
    ours_diff = float(np.max(np.abs(np.array(result.metrics["coco_stats"]) - reference.stats)))
    fast_diff = float(np.max(np.abs(np.array(fast.stats[:12]) - reference.stats)))
    print(
        f"  stats, largest difference from pycocotools: ours {ours_diff:.1e}; "
        f"faster-coco-eval {fast_diff:.1e}"
    )
    assert ours_diff <= 1e-6, (result.metrics["coco_stats"], list(reference.stats))
    mine = {(m.outcome, m.annotation_id, m.prediction_id) for m in result.matches}
    assert mine == coco_matches(reference), "the matches differ from pycocotools'"
    print(f"  matches: {len(mine):,}, equal to pycocotools'")
    return [
        ("segm numbers equal to pycocotools", f"{ours_diff:.1e}", "<= 1e-6", ours_diff <= 1e-6),
        (f"segm ours, {images:,} images", f"{ours_s:.2f} s", f"< {coco_s:.2f} s", ours_s < coco_s),
        ("segm pycocotools COCOeval", f"{coco_s:.2f} s", "-", None),
        ("segm faster-coco-eval", f"{fast_s:.2f} s", "-", None),
        ("segm faster-coco-eval vs pycocotools", f"{fast_diff:.1e}", "-", None),
    ]


def inside(x: float, y: float, w: float, h: float) -> dict[str, float]:
    """A box moved (and cut) into the 640x480 image, as ingest requires."""
    w, h = round(min(w, 640.0), 2), round(min(h, 480.0), 2)
    return {
        "x": round(min(max(x, 0.0), 640.0 - w), 2),
        "y": round(min(max(y, 0.0), 480.0 - h), 2),
        "width": w,
        "height": h,
    }


def million_row(i: int, rng: random.Random) -> dict[str, Any]:
    """An item with ~5 ground-truth boxes (3% crowd) and ~8 predictions (half near one)."""
    annotations = []
    for j in range(rng.randint(3, 7)):
        size = rng.choice([(8, 30), (33, 95), (100, 250)])
        annotations.append(
            {
                "id": f"a{i}-{j}",
                "label": rng.choice(CLASSES[:20]),
                "geometry": inside(
                    rng.uniform(0, 600), rng.uniform(0, 400), rng.uniform(*size), rng.uniform(*size)
                ),
                "metadata": {"iscrowd": int(rng.random() < 0.03)},
            }
        )
    predictions = []
    for j in range(rng.randint(6, 10)):
        if rng.random() < 0.5:
            near = rng.choice(annotations)
            g = near["geometry"]
            label = near["label"] if rng.random() < 0.85 else None
            geometry = inside(
                g["x"] + rng.gauss(0, 0.1) * g["width"],
                g["y"] + rng.gauss(0, 0.1) * g["height"],
                g["width"] * rng.uniform(0.8, 1.2),
                g["height"] * rng.uniform(0.8, 1.2),
            )
        else:
            label = None
            geometry = inside(
                rng.uniform(0, 600), rng.uniform(0, 400), rng.uniform(8, 200), rng.uniform(8, 200)
            )
        predictions.append(
            {
                "id": f"p{i}-{j}",
                "model": "detector",
                "label": label or rng.choice(CLASSES[:20]),
                "confidence": round(rng.random(), 4),
                "geometry": geometry,
            }
        )
    return {
        "reference_id": f"frame-{i:08d}",
        "annotations": annotations,
        "predictions": predictions,
    }


def million_build(n: int, batch: int = 10_000) -> Any:
    """The --million dataset through the bulk COPY path (replacing an older one)."""
    from django.db import connection

    start = time.perf_counter()
    dataset = items_build(DATASET_NAME, n, batch, million_row)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE curation_item, curation_annotation, curation_prediction")
    print(f"\nbuilt {n:,} items in {time.perf_counter() - start:.1f} s")
    return dataset


def million_evaluate(dataset_id: int) -> None:
    """One evaluation job on the dataset, as the worker runs it (a process of its own, so
    that its peak RSS is the job's): prints its wall time, counts and peak RSS."""
    from django.contrib.auth.models import User

    from curation.jobs import job_run
    from curation.models import Dataset, Model
    from evaluation import services

    dataset = Dataset.objects.get(pk=dataset_id)
    model = Model.objects.get(dataset=dataset, name="detector")
    user = User.objects.get(username="bench")
    run = services.evaluation_create(
        dataset=dataset, user=user, name=f"bench {time.time():.0f}", model_id=model.pk
    )
    assert run.job_id is not None
    start = time.perf_counter()
    job = job_run(job_id=run.job_id)
    seconds = time.perf_counter() - start
    assert job is not None and job.status == "succeeded", job and job.message
    run.refresh_from_db()
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"RESULT {seconds:.1f} {rss_gb:.3f} {run.metrics['map']:.4f} {run.counts}")


def bench_million(n: int, reuse: bool) -> list[tuple[str, str, str, bool | None]]:
    from curation.models import Dataset, Item

    dataset = Dataset.objects.filter(owner__username="bench", name=DATASET_NAME).first()
    if not (reuse and dataset and Item.objects.filter(dataset=dataset).count() == n):
        dataset = million_build(n)
    done = subprocess.run(
        [sys.executable, __file__, "--evaluate-dataset", str(dataset.pk)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    _, seconds, rss, map_, *counts = line.split(" ", 4)
    print(f"{n:,} items: mAP {map_}, {counts[0]}")
    return [
        (
            f"evaluation job, {n:,} items",
            f"{float(seconds):.0f} s",
            f"<= {TARGET_MILLION_S:.0f} s",
            float(seconds) <= TARGET_MILLION_S,
        ),
        (
            "peak RSS of the job's process",
            f"{float(rss):.2f} GB",
            f"<= {TARGET_RSS_GB:.0f} GB",
            float(rss) <= TARGET_RSS_GB,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, help="images (default 5,000; with --segm 1,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--million", action="store_true", help="the 1M-item job through the database"
    )
    parser.add_argument("--n", type=int, default=1_000_000, help="items of --million")
    parser.add_argument(
        "--reuse", action="store_true", help="keep an existing --million dataset of N items"
    )
    parser.add_argument(
        "--segm", action="store_true", help="instance segmentation (default 1,000 images)"
    )
    parser.add_argument("--evaluate-dataset", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    setup_django("nucleus_bench_evaluate")
    if args.evaluate_dataset:
        million_evaluate(args.evaluate_dataset)
    elif args.segm:
        report(bench_segm(args.images or 1000, args.seed))
    elif args.million:
        report(bench_million(args.n, args.reuse))
    else:
        report(bench_images(args.images or 5000, args.seed))


if __name__ == "__main__":
    main()
