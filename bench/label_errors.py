"""Label-error candidates measured on the demo's planted errors, next to cleanlab.

Generates the demo dataset (curation/demo: truth.json lists its planted `label_errors`),
writes it into a benchmark database through the bulk COPY path (its JPEG files stored
under the items' media keys), evaluates its model
(demo-detector) and runs the label-error scan job; then, on the same boxes, cleanlab's
object-detection label quality scores (cleanlab.object_detection.rank
.get_label_quality_scores, one score per image, lower = more likely wrong; the demo model
gives one confidence per box, so each box's per-class array holds it in its class only, as
cleanlab's docs describe for detectors without class probabilities).

Both rankings are ranked lists of images (ours: an item's score is its best candidate's),
and an error counts as found at K when its image is among the first K. recall@25/50/100
and the wall times of both are printed with the target (recall@50 >= 0.9 and at least
cleanlab's).

    .venv/bin/python bench/label_errors.py [--count 2000] [--seed 0]
    .venv/bin/python bench/label_errors.py --million [--n 1000000]   # time and memory only
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
from _setup import ROOT, items_build, peak_rss_gb, peak_rss_reset, report, setup_django

DATASET_NAME = "label-errors-demo"
MILLION_NAME = "label-errors-million"


def _run_job(job_id: int | None) -> Any:
    from curation.jobs import job_run
    from curation.models import JobStatus

    assert job_id is not None
    job = job_run(job_id=job_id)
    assert job is not None and job.status == JobStatus.SUCCEEDED, job and job.message
    return job


def evaluate_and_scan(dataset: Any, model_name: str) -> tuple[Any, float, float]:
    from curation.models import Model
    from evaluation.services import evaluation_create
    from insights.label_error_scan import label_error_scan_create

    model = Model.objects.get(dataset=dataset, name=model_name)
    started = time.perf_counter()
    run = evaluation_create(
        dataset=dataset, user=None, name=f"bench {time.time()}", model_id=model.pk, enqueue=False
    )
    _run_job(run.job_id)
    evaluated = time.perf_counter() - started
    started = time.perf_counter()
    scan = label_error_scan_create(dataset=dataset, user=None, run_id=run.pk, enqueue=False)
    _run_job(scan.job_id)
    return scan, evaluated, time.perf_counter() - started


def our_ranking(scan: Any) -> list[str]:
    """Reference ids of the items, best candidate first."""
    from django.db.models import Max

    from insights.models import LabelErrorCandidate

    rows = (
        LabelErrorCandidate.objects.filter(scan=scan)
        .values("item__reference_id")
        .annotate(best=Max("score"))
        .order_by("-best", "item__reference_id")
    )
    return [r["item__reference_id"] for r in rows]


def cleanlab_ranking(rows: list[dict[str, Any]], classes: list[str]) -> tuple[list[str], float]:
    from cleanlab.object_detection.rank import get_label_quality_scores

    index = {c: k for k, c in enumerate(classes)}

    def corners(g: dict[str, float]) -> list[float]:
        return [g["x"], g["y"], g["x"] + g["width"], g["y"] + g["height"]]

    labels, predictions = [], []
    for row in rows:
        boxes = [a for a in row["annotations"] if a["kind"] == "box"]
        labels.append(
            {
                "bboxes": np.array(
                    [corners(a["geometry"]) for a in boxes], dtype=np.float32
                ).reshape(-1, 4),
                "labels": np.array([index[a["label"]] for a in boxes], dtype=np.int64),
            }
        )
        per_class: list[list[list[float]]] = [[] for _ in classes]
        for p in row["predictions"]:
            per_class[index[p["label"]]].append([*corners(p["geometry"]), p["confidence"]])
        # An array of K arrays (np.array would stack equal shapes into one 3-d array).
        per_image = np.empty(len(classes), dtype=object)
        for k, c in enumerate(per_class):
            per_image[k] = np.array(c, dtype=np.float32).reshape(-1, 5)
        predictions.append(per_image)
    started = time.perf_counter()
    scores = get_label_quality_scores(labels, predictions, verbose=False)
    seconds = time.perf_counter() - started
    order = np.argsort(scores, kind="stable")
    return [rows[int(i)]["reference_id"] for i in order], seconds


def detector_visible(rows: list[dict[str, Any]], truth: dict[str, Any]) -> set[str]:
    """The planted errors the model's predictions can reveal at all: a wrong label with a
    prediction of its true class on the object (IoU >= 0.5), a bad or missing box with a
    prediction (any class) on the object's true box (IoU >= 0.5). The others (objects the
    demo's detector missed, or confused the same way as the planted label) leave no trace in
    the predictions: only the look can find them, so this fraction bounds what any
    prediction-based ranking (cleanlab's included) can recall."""
    from insights.label_errors import iou_matrix

    def box(g: dict[str, float]) -> tuple[float, float, float, float]:
        return (g["x"], g["y"], g["width"], g["height"])

    by_ref = {r["reference_id"]: r for r in rows}
    out = set()
    for e in truth["label_errors"]:
        row = by_ref[e["reference_id"]]
        if e["type"] == "wrong_label":
            ann = next(a for a in row["annotations"] if a["id"] == e["annotation_id"])
            target, preds = (
                ann["geometry"],
                [p for p in row["predictions"] if p["label"] == e["true_label"]],
            )
        else:
            target, preds = e["true_geometry"], row["predictions"]
        ious = iou_matrix([box(target)], [box(p["geometry"]) for p in preds])[0]
        if any(v >= 0.5 for v in ious):
            out.add(e["reference_id"])
    return out


def misses_print(scan: Any, truth: dict[str, Any], ranking: list[str], k: int = 50) -> None:
    """Each planted error outside our first k: its rank, its object's size and the item's
    three best candidates, to see which signal failed."""
    from insights.models import LabelErrorCandidate

    rank = {ref: r + 1 for r, ref in enumerate(ranking)}
    for e in truth["label_errors"]:
        ref = e["reference_id"]
        if rank.get(ref, k + 1) <= k:
            continue
        said = [
            f"{c.type} {c.score:.3f}"
            for c in LabelErrorCandidate.objects.filter(scan=scan, item__reference_id=ref).order_by(
                "-score"
            )[:3]
        ]
        true = e.get("true_geometry") or e.get("geometry") or {}
        size = (true.get("width", 0) * true.get("height", 0)) ** 0.5
        print(
            f"missed {e['type']:<11} {ref} rank {rank.get(ref, '-')}"
            f" size {size:.0f} label {e.get('true_label') or e.get('label')}: {'; '.join(said)}"
        )


def recall_at(ranking: list[str], planted: set[str], k: int) -> float:
    return len(planted & set(ranking[:k])) / len(planted) if planted else 0.0


def images_store(dataset: Any, folder: Path, rows: list[dict[str, Any]]) -> None:
    """Put the demo's JPEG files where the items' media keys point (items_build writes
    placeholders), so that the scan's appearance features read real pixels."""
    from curation.media import storage_put
    from curation.models import Item

    keys = dict(Item.objects.filter(dataset=dataset).values_list("reference_id", "media_key"))
    for row in rows:
        storage_put(keys[row["reference_id"]], (folder / row["image"]).read_bytes())


def bench_demo(count: int, seed: int) -> list[tuple[str, str, str, bool | None]]:
    from curation.demo.dataset import demo_generate

    folder = ROOT / "var" / "bench" / f"demo-{seed}-{count}"
    demo = demo_generate(folder=folder, count=count, seed=seed, progress=print)
    rows = [json.loads(line) for line in demo.manifest.read_text().splitlines()]
    truth = json.loads((folder / "truth.json").read_text())
    planted = {e["reference_id"] for e in truth["label_errors"]}
    kinds: dict[str, int] = {}
    for e in truth["label_errors"]:
        kinds[e["type"]] = kinds.get(e["type"], 0) + 1
    print(f"planted: {len(planted)} errors {kinds}")
    dataset = items_build(DATASET_NAME, len(rows), 1000, lambda i, _rng: rows[i])
    images_store(dataset, folder, rows)
    scan, eval_s, ours_s = evaluate_and_scan(dataset, truth["model"])
    ours = our_ranking(scan)
    theirs, cleanlab_s = cleanlab_ranking(rows, truth["classes"])
    misses_print(scan, truth, ours)
    visible = detector_visible(rows, truth)
    out: list[tuple[str, str, str, bool | None]] = []
    for k in (25, 50, 100):
        a, b = recall_at(ours, planted, k), recall_at(theirs, planted, k)
        target = ">= 0.9, >= cleanlab" if k == 50 else "-"
        met = (a >= 0.9 and a >= b) if k == 50 else None
        out.append((f"recall@{k}: ours", f"{a:.2f}", target, met))
        out.append((f"recall@{k}: cleanlab", f"{b:.2f}", "-", None))
    for t in sorted(kinds):
        refs = {e["reference_id"] for e in truth["label_errors"] if e["type"] == t}
        out.append(
            (
                f"recall@50 of {t}: ours / cleanlab",
                f"{recall_at(ours, refs, 50):.2f} / {recall_at(theirs, refs, 50):.2f}",
                "-",
                None,
            )
        )
    out.append(
        (
            "planted errors the predictions can reveal",
            f"{len(visible) / len(planted):.2f}",
            "-",
            None,
        )
    )
    out.append(
        (
            "recall@50 of those / of the others: ours",
            f"{recall_at(ours, visible, 50):.2f} / {recall_at(ours, planted - visible, 50):.2f}",
            "-",
            None,
        )
    )
    out.append(("evaluation job (before the scan)", f"{eval_s:.2f} s", "-", None))
    out.append(("label-error scan job: ours", f"{ours_s:.2f} s", "-", None))
    out.append(("get_label_quality_scores: cleanlab", f"{cleanlab_s:.2f} s", "-", None))
    return out


def million_row(i: int, rng: random.Random) -> dict[str, Any]:
    """~5 ground truths and ~8 predictions an item, a few of them wrong."""
    classes = ("car", "truck", "bus", "pedestrian", "bicycle")
    annotations, predictions = [], []
    for k in range(rng.randint(2, 8)):
        w, h = rng.uniform(20, 200), rng.uniform(20, 200)
        x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
        label = rng.choice(classes)
        annotations.append(
            {
                "id": f"{i}-g{k}",
                "kind": "box",
                "label": label,
                "geometry": {"x": x, "y": y, "width": w, "height": h},
            }
        )
        if rng.random() < 0.85:
            said = label if rng.random() > 0.05 else rng.choice(classes)
            dx = rng.gauss(0, 0.05) * w
            predictions.append(
                {
                    "id": f"{i}-p{k}",
                    "kind": "box",
                    "label": said,
                    "model": "m",
                    "confidence": round(rng.uniform(0.3, 0.99), 3),
                    "geometry": {
                        "x": max(0.0, min(640 - w, x + dx)),
                        "y": y,
                        "width": w,
                        "height": h,
                    },
                }
            )
    for k in range(rng.randint(0, 4)):
        predictions.append(
            {
                "id": f"{i}-f{k}",
                "kind": "box",
                "label": rng.choice(classes),
                "model": "m",
                "confidence": round(rng.uniform(0.02, 0.6), 3),
                "geometry": {
                    "x": rng.uniform(0, 500),
                    "y": rng.uniform(0, 380),
                    "width": 40.0,
                    "height": 40.0,
                },
            }
        )
    return {"reference_id": f"m-{i:08d}", "annotations": annotations, "predictions": predictions}


def bench_million(n: int, reuse: bool) -> list[tuple[str, str, str, bool | None]]:
    from curation.models import Dataset, Item, Job

    dataset = Dataset.objects.filter(name=MILLION_NAME).first()
    out: list[tuple[str, str, str, bool | None]] = []
    if not (reuse and dataset is not None and Item.objects.filter(dataset=dataset).count() == n):
        started = time.perf_counter()
        dataset = items_build(MILLION_NAME, n, 10_000, million_row)
        built = time.perf_counter() - started
        print(f"\nbuilt {n:,} items in {built:.0f} s")
        out.append((f"building the dataset (bulk COPY), {n:,} items", f"{built:.0f} s", "-", None))
    print(f"load average before the jobs: {os.getloadavg()}")
    before = peak_rss_gb()
    peak_rss_reset()  # from here VmHWM counts the jobs alone, where Linux allows it
    scan, eval_s, scan_s = evaluate_and_scan(dataset, "m")
    print(f"load average after the jobs: {os.getloadavg()}")
    rss = peak_rss_gb()
    out.append(("peak RSS before the jobs (Django, the build)", f"{before:.2f} GB", "-", None))
    scan.refresh_from_db()
    counts = ", ".join(f"{k} {v:,}" for k, v in sorted(scan.counts.items())) if scan.counts else ""
    stages = Job.objects.get(pk=scan.job_id).result.get("timings", {})
    return [
        *out,
        (f"evaluation job, {n:,} items", f"{eval_s:.0f} s", "-", None),
        (f"label-error scan job, {n:,} items", f"{scan_s:.0f} s", "<= 600 s", scan_s <= 600),
        *((f"  scan stage: {k}", f"{v:.0f} s", "-", None) for k, v in stages.items()),
        ("peak RSS during the two jobs", f"{rss:.2f} GB", "<= 4 GB", rss <= 4),
        (
            "candidates",
            str(sum((scan.counts or {}).values())) + (f" ({counts})" if counts else ""),
            "-",
            None,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="demo items")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--million", action="store_true")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()
    setup_django("nucleus_bench_label_errors")
    if args.million:
        report(bench_million(args.n, args.reuse))
    else:
        report(bench_demo(args.count, args.seed))


if __name__ == "__main__":
    Path(ROOT / "var" / "bench").mkdir(parents=True, exist_ok=True)
    main()
