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

--million writes a dataset of N items (~5 ground truths, ~8 predictions each) through the
project's bulk COPY path, then runs an evaluation job on it as the worker would (loading
in chunks, writing every match) and reports its wall time and peak RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import time
from typing import Any

import numpy as np
from _setup import report, setup_django

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--million", action="store_true", help="the 1M-item job through the database"
    )
    parser.add_argument("--n", type=int, default=1_000_000, help="items of --million")
    parser.add_argument(
        "--reuse", action="store_true", help="keep an existing --million dataset of N items"
    )
    args = parser.parse_args()
    setup_django("nucleus_bench_evaluate")
    if args.million:
        from _evaluate_million import bench_million

        report(bench_million(args.n, args.reuse))
    else:
        report(bench_images(args.images, args.seed))


if __name__ == "__main__":
    main()
