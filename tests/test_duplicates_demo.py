"""The duplicates job against the demo's planted truth, with random embedding weights:
every exact pair found, near recall >= 0.9, false groups <= 1% of the items.

With random weights every pair of vectors scores about 0.999; grouping by embedding once
chained 1,987 of 2,000 demo items into one group that swallowed the exact pairs. The
perceptual hash finds the copies without weights, and groups never chain.

NUCLEUS_DEMO_DUPLICATES="2000:0,1,2,3" measures other sizes and seeds (the figures in
docs/embeddings.md); the default keeps the test under a minute on two cores.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from curation.demo.dataset import demo_generate
from curation.jobs import job_run
from curation.models import Dataset, JobStatus
from embeddings import vectors as vec
from embeddings.duplicates import duplicates_job_start, latest_run
from embeddings.models import DuplicateGroup, EmbeddingModel, ModelKind
from tests.embedding_factories import items_with_images

COUNT, _, SEEDS = os.environ.get("NUCLEUS_DEMO_DUPLICATES", "1000:0,1").partition(":")


def measured(dataset: Dataset, truth: dict[str, Any]) -> dict[str, Any]:
    """Exact and near pairs found, and groups that pair no planted copy with its source."""
    run = latest_run(dataset=dataset)
    groups = [
        (g.kind, g.signal, set(g.members.values_list("item__reference_id", flat=True)))
        for g in DuplicateGroup.objects.filter(run=run).prefetch_related("members__item")
    ]

    def found(pairs: list[dict[str, Any]], kind: str) -> int:
        return sum(
            1
            for p in pairs
            if any(k == kind and {p["reference_id"], p["duplicate_of"]} <= m for k, _, m in groups)
        )

    planted = [
        {p["reference_id"], p["duplicate_of"]}
        for p in truth["exact_duplicates"] + truth["near_duplicates"]
    ]
    false = [m for _, _, m in groups if not any(p <= m for p in planted)]
    return {
        "exact": found(truth["exact_duplicates"], "exact"),
        "exact_planted": len(truth["exact_duplicates"]),
        "near": found(truth["near_duplicates"], "near"),
        "near_planted": len(truth["near_duplicates"]),
        "false_groups": len(false),
        "groups": len(groups),
        "largest": max((len(m) for _, _, m in groups), default=0),
        "signals": sorted({s for k, s, _ in groups if k == "near"}),
    }


@pytest.mark.parametrize("seed", [int(s) for s in SEEDS.split(",")])
def test_it_finds_the_demos_planted_duplicates_with_random_weights(
    dataset: Dataset, alice: Any, tmp_path: Path, seed: int
) -> None:
    count = int(COUNT)
    folder = tmp_path / "demo"
    demo_generate(folder=folder, count=count, seed=seed, workers=2)
    truth = json.loads((folder / "truth.json").read_text())
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    # As the demo's ingest left them before hashes existed: the job computes them.
    items = items_with_images(
        dataset,
        len(rows),
        payloads=[(folder / r["image"]).read_bytes() for r in rows],
        reference_ids=[r["reference_id"] for r in rows],
    )
    # Random weights: every pair about 0.999 similar, which would chain everything.
    model = EmbeddingModel.objects.create(
        name="random", dataset=dataset, kind=ModelKind.CUSTOM, dimension=8, random_weights=True
    )
    rng = np.random.default_rng(seed)
    vectors = np.ones((len(items), 8), dtype=np.float32) + 0.01 * rng.normal(size=(len(items), 8))
    vec.vectors_write(
        model=model, dataset=dataset, item_ids=[i.pk for i in items], vectors=vec.normalize(vectors)
    )

    job = job_run(job_id=duplicates_job_start(dataset=dataset, user=alice, model=model).pk)

    assert job.status == JobStatus.SUCCEEDED, job.message
    figures = measured(dataset, truth)
    print(f"\ndemo {count} items, seed {seed}: {figures}")
    assert figures["exact"] == figures["exact_planted"] > 0
    assert figures["near"] >= 0.9 * figures["near_planted"]
    assert figures["false_groups"] <= 0.01 * count
    assert figures["signals"] == ["phash"]
    assert job.result["hashed"] == count
