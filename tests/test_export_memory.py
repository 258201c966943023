"""Streaming exports keep memory flat: a subprocess exporting 10x the items peaks at
about the same resident memory (a generous bound, never a time). The peak is the
kernel's VmHWM, reset after Django starts, so imports do not mask the export."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from curation.bulk.validate import clean_item_record
from curation.bulk.write import records_write
from curation.models import Dataset

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
SMALL, LARGE = 2_000, 20_000
# Exporting LARGE items writes well over 2 * BOUND_KB; buffering it would blow the bound.
BOUND_KB = 10 * 1024

CHILD = """
import sys
import django
django.setup()
from curation.export.coco import coco_chunks
from curation.export.jsonl import jsonl_chunks
from curation.export.sources import export_source
from curation.export.yolo import yolo_chunks
from curation.storage import MediaUrls
from curation.models import Dataset
dataset = Dataset.objects.get(pk=int(sys.argv[1]))
source = export_source(dataset=dataset)
urls = MediaUrls()
# Reset the peak (VmHWM) so that imports and setup do not hide what the export uses.
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
written = 0
# Batches of 250: the small export already fills the pipeline of batches in flight (the
# fetcher threads' work), so any growth past it would be growth with the export's size.
write = {"jsonl": jsonl_chunks, "coco": coco_chunks, "yolo": yolo_chunks}
for chunk in write[sys.argv[2]](source, urls=urls, batch_size=250):
    written += len(chunk)
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(int(status["VmHWM"].split()[0]), written)
"""


def _ring(n: int) -> list[list[float]]:
    return [
        [
            round(320 + 100 * math.cos(2 * math.pi * k / n), 2),
            round(240 + 100 * math.sin(2 * math.pi * k / n), 2),
        ]
        for k in range(n)
    ]


def _fill(dataset: Dataset, count: int) -> None:
    ring = _ring(48)
    note = "n" * 600
    for start in range(0, count, 5000):
        records = [
            clean_item_record(
                {
                    "reference_id": f"img-{i:06d}",
                    "metadata": {"note": note, "index": i},
                    "annotations": [
                        {
                            "id": f"{i}-b",
                            "kind": "box",
                            "label": f"l{i % 5}",
                            "geometry": {"x": 1.0, "y": 2.0, "width": 30.0, "height": 40.0},
                        },
                        {
                            "id": f"{i}-p",
                            "kind": "polygon",
                            "label": "ring",
                            "geometry": {"vertices": ring},
                        },
                    ],
                }
            )
            for i in range(start, min(count, start + 5000))
        ]
        records_write(dataset=dataset, records=records)
    dataset.items.update(width=640, height=480, media_key="datasets/x/media/a.jpg")


def _peak(dataset: Dataset, fmt: str) -> tuple[int, int]:
    env = {
        **os.environ,
        "NUCLEUS_DB_NAME": connection.settings_dict["NAME"],
        "DJANGO_SETTINGS_MODULE": "nucleus.settings",
    }
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(dataset.pk), fmt],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    peak_kb, written = out.stdout.split()[-2:]
    return int(peak_kb), int(written)


def test_peak_memory_does_not_grow_with_the_export(alice: Any) -> None:
    small = Dataset.objects.create(name="small", owner=alice)
    large = Dataset.objects.create(name="large", owner=alice)
    _fill(small, SMALL)
    _fill(large, LARGE)
    for fmt in ("jsonl", "coco", "yolo"):
        small_peak, small_written = _peak(small, fmt)
        large_peak, large_written = _peak(large, fmt)
        print(fmt, small_peak, large_peak, large_peak - small_peak, large_written)
        assert large_written > 9 * small_written, fmt
        assert large_written > 2 * BOUND_KB * 1024, f"{fmt}: too small to tell flat from growing"
        assert large_peak - small_peak < BOUND_KB, (fmt, small_peak, large_peak, large_written)
