"""The demo dataset on disk: JPEG files, a JSONL manifest and truth.json, made once per seed."""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from PIL import Image

from curation.demo.items import CLASSES, MODEL_NAME, reference_id, render_to
from curation.demo.planted import near_duplicate, plant_label_error, renamed_shapes, truth_plan

GENERATOR_VERSION = 1
MARKER = ".demo-complete.json"

# Smallest process pool worth its start-up cost.
PARALLEL_FROM = 200


@dataclass
class DemoResult:
    folder: Path
    manifest: Path
    count: int
    generated: bool  # False when a complete dataset for the same seed and count was there
    seconds: float


def demo_is_complete(folder: Path, *, seed: int, count: int) -> bool:
    marker = folder / MARKER
    try:
        found = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    wanted = {"generator": GENERATOR_VERSION, "seed": seed, "count": count}
    return (
        found == wanted
        and (folder / "manifest.jsonl").is_file()
        and (folder / "truth.json").is_file()
    )


def _map(fn: Callable[[Any], Any], tasks: list[Any], workers: int) -> Iterator[Any]:
    if workers <= 1 or len(tasks) < PARALLEL_FROM:
        return map(fn, tasks)
    # spawn, not fork: the caller may hold database connections and threads.
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))
    try:
        return iter(list(pool.map(fn, tasks, chunksize=max(1, len(tasks) // (workers * 8)))))
    finally:
        pool.shutdown()


def demo_generate(
    *,
    folder: Path,
    count: int = 2000,
    seed: int = 0,
    workers: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> DemoResult:
    """Write the demo dataset into `folder`, unless a complete one for seed/count is there."""
    if count < 1:
        raise ValueError("count must be at least 1")
    started = time.monotonic()
    folder = folder.resolve()
    manifest = folder / "manifest.jsonl"
    if demo_is_complete(folder, seed=seed, count=count):
        return DemoResult(folder, manifest, count, False, time.monotonic() - started)
    say = progress or (lambda _msg: None)
    (folder / MARKER).unlink(missing_ok=True)
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    workers = workers if workers is not None else min(4, os.cpu_count() or 1)

    exact_of, near_of, error_count = truth_plan(seed, count)
    originals = [i for i in range(count) if i not in exact_of and i not in near_of]
    say(f"drawing {len(originals)} scenes into {folder}")
    rows: dict[int, dict[str, Any]] = {}
    for row in _map(render_to, [(seed, i, str(folder)) for i in originals], workers):
        rows[int(row["reference_id"].split("-")[1])] = row

    truth: dict[str, Any] = {
        "generator": GENERATOR_VERSION,
        "seed": seed,
        "count": count,
        "model": MODEL_NAME,
        "classes": list(CLASSES),
        "exact_duplicates": [],
        "near_duplicates": [],
        "label_errors": [],
    }
    say(f"planting {len(exact_of)} exact and {len(near_of)} near duplicates")
    for index, source in sorted(exact_of.items()):
        src = rows[source]
        ref = reference_id(index)
        shutil.copyfile(folder / src["image"], images / f"{ref}.jpg")
        rows[index] = {
            **src,
            "reference_id": ref,
            "image": f"images/{ref}.jpg",
            "annotations": renamed_shapes(src["annotations"], ref, src["reference_id"]),
            "predictions": renamed_shapes(src["predictions"], ref, src["reference_id"]),
        }
        truth["exact_duplicates"].append({"reference_id": ref, "duplicate_of": src["reference_id"]})
    for index, source in sorted(near_of.items()):
        row, entry = near_duplicate((seed, rows[source], index, str(folder)))
        rows[index] = row
        truth["near_duplicates"].append(entry)

    # Label errors go on originals that no duplicate copies, so each is planted once.
    rng = random.Random(f"nucleus-demo:{seed}:errors")
    copied = set(exact_of.values()) | set(near_of.values())
    candidates = [i for i in originals if i not in copied and rows[i]["annotations"]]
    for index in sorted(rng.sample(candidates, min(error_count, len(candidates)))):
        row = rows[index]
        with Image.open(folder / row["image"]) as opened:
            size = opened.size
        truth["label_errors"].append(plant_label_error(rng, row, size))

    wanted = {Path(rows[i]["image"]).name for i in range(count)}
    for stale in images.glob("*.jpg"):
        if stale.name not in wanted:
            stale.unlink()
    tmp = manifest.with_suffix(".jsonl.tmp")
    with tmp.open("w") as out:
        for i in range(count):
            out.write(json.dumps(rows[i], separators=(",", ":")) + "\n")
    tmp.replace(manifest)
    (folder / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    (folder / MARKER).write_text(
        json.dumps({"generator": GENERATOR_VERSION, "seed": seed, "count": count})
    )
    seconds = time.monotonic() - started
    say(f"wrote {count} images and {manifest.name} in {seconds:.1f} s")
    return DemoResult(folder, manifest, count, True, seconds)
