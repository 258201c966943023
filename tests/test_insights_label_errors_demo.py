"""Label-error candidates against the demo's planted errors (truth.json): the share found
among the first items of the ranking stays above a floor measured on this demo, and the
demo's evaluation run is scanned by itself when it finishes (and its model's uncertainty queued).

A third of the demo's planted errors sit on objects its model does not detect at all (no
prediction there), which no score built on its predictions can see; the images are
stored, so odd_label (insights/label_look.py: the labels against the objects' look)
sees the wrong labels among them. docs/insights.md gives the figures at 2,000 items
(bench/label_errors.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db.models import Max

from curation.demo.dataset import demo_generate
from curation.jobs import job_run
from curation.media import storage_put
from curation.models import Dataset, Item, Job, JobStatus, Model
from evaluation.demo import DEMO_RUN_NAME
from evaluation.services import evaluation_create
from insights.models import LabelErrorCandidate, LabelErrorScan
from tests.api_helpers import add_items

COUNT = 1000
# Measured at COUNT = 1000, seed 0: 9 of 12 planted errors among the first 50 items
# (0.75; 6 of 12 before odd_label); the floor allows one fewer.
FLOOR_AT_50 = 0.66


@pytest.mark.django_db
def test_planted_errors_rank_first(tmp_path: Path, dataset: Dataset, alice: User) -> None:
    demo = demo_generate(folder=tmp_path / "demo", count=COUNT, seed=0)
    rows = [json.loads(line) for line in demo.manifest.read_text().splitlines()]
    images = {row["reference_id"]: tmp_path / "demo" / row.pop("image") for row in rows}
    truth = json.loads((tmp_path / "demo" / "truth.json").read_text())
    planted = {e["reference_id"] for e in truth["label_errors"]}
    for start in range(0, len(rows), 250):
        add_items(dataset, *rows[start : start + 250])
    # The images where the scan reads them (odd_label's features come from the pixels).
    items = list(Item.objects.filter(dataset=dataset))
    for item in items:
        item.media_key = f"datasets/{dataset.pk}/media/{item.reference_id}.jpg"
        storage_put(item.media_key, images[item.reference_id].read_bytes())
    Item.objects.bulk_update(items, ["media_key"])
    model = Model.objects.get(dataset=dataset, name=truth["model"])
    # The demo's own run: its end queues the scan (insights.label_error_scan.demo_label_errors).
    run = evaluation_create(
        dataset=dataset, user=alice, name=DEMO_RUN_NAME, model_id=model.pk, enqueue=False
    )
    assert run.job_id is not None
    done = job_run(job_id=run.job_id)
    assert done is not None and done.status == JobStatus.SUCCEEDED
    scan = LabelErrorScan.objects.get(run=run)
    assert scan.job_id is not None
    done = job_run(job_id=scan.job_id)
    assert done is not None and done.status == JobStatus.SUCCEEDED, done and done.message
    ranking = [
        r["item__reference_id"]
        for r in LabelErrorCandidate.objects.filter(scan=scan)
        .values("item__reference_id")
        .annotate(best=Max("score"))
        .order_by("-best", "item__reference_id")
    ]
    found = len(planted & set(ranking[:50])) / len(planted)
    assert found >= FLOOR_AT_50, (found, sorted(planted - set(ranking[:50])))
    # The demo's model's uncertainty was queued with the scan.
    assert Job.objects.filter(kind="uncertainty", params={"model_id": model.pk}).count() == 1
