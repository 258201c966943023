"""Bulk ingest of item records (metadata + 5 boxes each, media already in storage), and
a folder ingest of real JPEG files.

Target (DESIGN.md): >= 20,000 items/s. Measures the same path ingest and the API use:
row validation (curation.bulk.validate.clean_item_record) plus the COPY-based upsert
(curation.bulk.write.records_write), in batches, on the embedded PostgreSQL.

The HTTP figure (items/s) is the path a pipeline feels: the real web server (gunicorn, as
`manage.py serve` starts it) on loopback, on the benchmark database, and the Python client
(nucleus.client.NucleusClient.items_upsert) sending --http rows of the same shape,
--http-chunk rows a request, one request after another; then the same rows again.

The folder figure (images/s) runs the real ingest job (curation/ingest/jobs.py) over a
folder of generated 800x600 JPEGs: read, decode, measure, perceptual hashes, image
quality, thumbnail, store, write. It is what the per-image work at ingest costs; the
best of --folder-runs runs into fresh datasets is reported (noise on a shared machine
only ever slows a run down), with the CPU time this process spent per image (all its
threads; the database server is another process), which contention on a shared machine
disturbs far less than wall time. Beside it, the bound: the same per-image work
(curation.media.image_decode and the SHA-256) alone on the same files, in memory, on the
job's number of threads (target: the folder ingest at >= 0.9 of it).

    .venv/bin/python bench/ingest.py [--n 100000] [--batch 10000] [--folder 300]
        [--http 50000] [--http-chunk 5000]
    .venv/bin/python bench/ingest.py --quality-compare [--folder 300] [--folder-runs 3]

--quality-compare measures only the folder figure, with image quality at ingest on and off
(NUCLEUS_INGEST_QUALITY), back to back: on, off, on, off, ... --folder-runs times each,
each run into a new dataset; it prints every run and the median of each side (the issue's
budget: quality may slow folder ingest of JPEGs by at most 10%).
"""

from __future__ import annotations

import argparse
import io
import os
import random
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from _setup import ROOT, free_port, report, setup_django

LABELS = ["car", "truck", "bus", "pedestrian", "bicycle", "traffic_light", "sign"]
WEATHER = ["clear", "rain", "fog", "snow"]


def make_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        boxes = []
        for j in range(5):
            x, y = rng.uniform(0, 500), rng.uniform(0, 300)
            boxes.append(
                {
                    "id": f"b{i}-{j}",
                    "kind": "box",
                    "label": rng.choice(LABELS),
                    "geometry": {
                        "x": x,
                        "y": y,
                        "width": rng.uniform(5, 120),
                        "height": rng.uniform(5, 120),
                    },
                }
            )
        rows.append(
            {
                "reference_id": f"frame-{i:08d}",
                "metadata": {
                    "weather": rng.choice(WEATHER),
                    "speed_kmh": round(rng.uniform(0, 130), 1),
                    "camera": rng.choice(["front", "rear", "left", "right"]),
                    "night": rng.random() < 0.3,
                },
                "annotations": boxes,
            }
        )
    return rows


def make_jpegs(folder: Path, n: int, seed: int = 0) -> None:
    """`n` 800x600 JPEGs that compress like photos: gradients, shapes, sensor noise."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ys, xs = np.mgrid[0:600, 0:800].astype(np.float32)
    for i in range(n):
        base = rng.uniform(0, 255, 3) * (0.4 + 0.6 * ys[..., None] / 600)
        base = base + rng.uniform(-60, 60, 3) * (xs[..., None] / 800)
        noise = rng.normal(0, 6, (600, 800, 3))
        pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
        im = Image.fromarray(pixels, "RGB")
        draw = ImageDraw.Draw(im)
        for _ in range(12):
            x, y = rng.uniform(0, 800), rng.uniform(0, 600)
            w, h = rng.uniform(10, 200), rng.uniform(10, 200)
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            if rng.random() < 0.5:
                draw.rectangle((x, y, x + w, y + h), fill=colour)
            else:
                draw.ellipse((x, y, x + w, y + h), fill=colour)
        out = io.BytesIO()
        im.save(out, "JPEG", quality=90)
        (folder / f"img-{i:05d}.jpg").write_bytes(out.getvalue())


def folder_ingest(folder: Path, n: int, runs: int) -> tuple[float, float]:
    """Images/s of the ingest job over `folder` and this process's CPU ms per image (best
    of `runs` each, every run into a new dataset)."""
    from django.contrib.auth.models import User

    from curation.ingest.services import ingest_enqueue
    from curation.jobs import job_run
    from curation.models import Dataset, Item, JobStatus

    user, _ = User.objects.get_or_create(username="bench")
    best, cpu_best = 0.0, float("inf")
    for run in range(runs):
        Dataset.objects.filter(owner=user, name="bench-folder").delete()
        dataset = Dataset.objects.create(owner=user, name="bench-folder")
        job = ingest_enqueue(
            dataset=dataset,
            user=user,
            source={"type": "folder", "path": str(folder)},
            trusted=True,
            enqueue=False,
        )
        start, cpu = time.perf_counter(), _cpu()
        finished = job_run(job_id=job.pk)
        elapsed, cpu = time.perf_counter() - start, _cpu() - cpu
        assert finished is not None and finished.status == JobStatus.SUCCEEDED, finished
        assert Item.objects.filter(dataset=dataset).count() == n
        print(
            f"  folder run {run + 1}: {n / elapsed:,.1f} images/s, "
            f"{cpu / n * 1000:.2f} CPU ms/image"
        )
        best, cpu_best = max(best, n / elapsed), min(cpu_best, cpu / n * 1000)
        dataset.delete()
    return best, cpu_best


def http_ingest(rows: list[dict], chunk: int) -> tuple[float, float]:
    """Items/s of the bulk items endpoint end to end, first ingest and re-run: the real
    web server (gunicorn as `manage.py serve` starts it) on loopback, on the benchmark
    database, fed by the Python client's items_upsert (`chunk` rows a request, one request
    after another, as a pipeline would send them)."""
    import requests
    from django.conf import settings
    from django.contrib.auth.models import User

    from curation.management.commands.serve import web_processes_default, web_server_argv
    from curation.models import Dataset, Item
    from curation.services import token_create
    from nucleus.client import NucleusClient, NucleusError

    user, _ = User.objects.get_or_create(username="bench")
    Dataset.objects.filter(owner=user, name="bench-http").delete()
    dataset = Dataset.objects.create(owner=user, name="bench-http")
    token, secret = token_create(user=user, name="bench-http")
    port = free_port()
    argv = web_server_argv(
        "127.0.0.1",
        port,
        processes=web_processes_default(),
        threads=settings.NUCLEUS_WEB_THREADS,
    )
    # The same environment as this process: the benchmark database, the scratch media.
    server = subprocess.Popen(argv, cwd=ROOT, env=os.environ.copy())
    base = f"http://127.0.0.1:{port}"
    client = NucleusClient(base, token=secret, retries=0)
    try:
        # Up once it answers the API (/healthz would say 503: no job workers run here).
        deadline = time.monotonic() + 120
        while True:
            try:
                client.datasets()
                break
            except (requests.RequestException, NucleusError):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the web server did not answer within 2 minutes") from None
                time.sleep(0.5)
        # Every web process loads the app and opens its database connection before the
        # measured run: a few quick requests, as many as there are processes and more.
        for _ in range(4 * web_processes_default()):
            client.datasets()
        rates = []
        for _ in range(2):  # the first ingest, then the same rows again (no changes)
            start = time.perf_counter()
            client.items_upsert(dataset.pk, rows, chunk_size=chunk)
            rates.append(len(rows) / (time.perf_counter() - start))
        assert Item.objects.filter(dataset=dataset).count() == len(rows)
    finally:
        server.terminate()
        server.wait(60)
        token.delete()
        dataset.delete()
    return rates[0], rates[1]


def decode_bound(folder: Path, runs: int) -> float:
    """Images/s of the per-image work alone on the same files: decode, measure, hash,
    perceptual hashes, image quality and thumbnail (curation.media.image_decode) plus the
    SHA-256, on the ingest job's own number of threads, the bytes already in memory (best
    of `runs`): the bound a folder ingest can at best reach."""
    import hashlib
    from concurrent.futures import ThreadPoolExecutor

    from curation.ingest.jobs import MEDIA_THREADS
    from curation.media import image_decode

    blobs = [path.read_bytes() for path in sorted(folder.glob("*.jpg"))]

    def one(data: bytes) -> str:
        image_decode(data)
        return hashlib.sha256(data).hexdigest()

    best = 0.0
    with ThreadPoolExecutor(MEDIA_THREADS) as pool:
        for run in range(runs):
            start = time.perf_counter()
            list(pool.map(one, blobs))
            rate = len(blobs) / (time.perf_counter() - start)
            print(f"  decode bound run {run + 1}: {rate:,.1f} images/s")
            best = max(best, rate)
    return best


def quality_compare(folder: Path, n: int, runs: int) -> None:
    """The folder figure with image quality on and off (NUCLEUS_INGEST_QUALITY),
    alternating, `runs` times each."""
    import statistics

    from django.conf import settings

    figures: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    folder_ingest(folder, n, 1)  # a warm-up run: imports, page cache, the database
    for _ in range(runs):
        for on in (True, False):
            settings.NUCLEUS_INGEST_QUALITY = on
            print(f"quality {'on' if on else 'off'}:")
            figures[on].append(folder_ingest(folder, n, 1))
    settings.NUCLEUS_INGEST_QUALITY = True
    rows = []
    medians = {}
    for on in (True, False):
        rates = [r for r, _ in figures[on]]
        cpus = [c for _, c in figures[on]]
        medians[on] = (statistics.median(rates), statistics.median(cpus))
        side = "quality on " if on else "quality off"
        rows.append(
            (
                f"{side}: images/s (runs)",
                ", ".join(f"{r:.1f}" for r in rates),
                "-",
                None,
            )
        )
        rows.append(
            (f"{side}: CPU ms/image (runs)", ", ".join(f"{c:.2f}" for c in cpus), "-", None)
        )
    slower = 1 - medians[True][0] / medians[False][0]
    cpu_more = medians[True][1] / medians[False][1] - 1
    rows.append(("quality's cost, images/s (medians)", f"{slower:+.1%}", "<= 10%", slower <= 0.10))
    rows.append(
        ("quality's cost, CPU ms/image (medians)", f"{cpu_more:+.1%}", "<= 10%", cpu_more <= 0.10)
    )
    report(rows)


def _cpu() -> float:
    """User and system CPU seconds of this process so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--folder", type=int, default=300, help="JPEGs to ingest (0: skip)")
    parser.add_argument("--folder-runs", type=int, default=3)
    parser.add_argument(
        "--http", type=int, default=50_000, help="items sent to the bulk endpoint (0: skip)"
    )
    parser.add_argument(
        "--http-chunk", type=int, default=5_000, help="rows per request (the client's default)"
    )
    parser.add_argument(
        "--quality-compare",
        action="store_true",
        help="only the folder figure, image quality at ingest on and off, alternating",
    )
    args = parser.parse_args()

    # Media and the import folder live in a temporary directory, never the service's own.
    scratch = Path(tempfile.mkdtemp(prefix="nucleus-bench-ingest-"))
    os.environ["NUCLEUS_MEDIA_ROOT"] = str(scratch / "media")
    os.environ["NUCLEUS_IMPORT_ROOTS"] = str(scratch / "import")
    setup_django()
    if args.quality_compare:
        make_jpegs(scratch / "import" / "jpegs", args.folder)
        quality_compare(scratch / "import" / "jpegs", args.folder, args.folder_runs)
        shutil.rmtree(scratch, ignore_errors=True)
        return
    folder_rate: float | None = None
    folder_cpu = bound = 0.0
    if args.folder:
        make_jpegs(scratch / "import" / "jpegs", args.folder)
        folder_rate, folder_cpu = folder_ingest(
            scratch / "import" / "jpegs", args.folder, args.folder_runs
        )
        bound = decode_bound(scratch / "import" / "jpegs", args.folder_runs)
    import psutil
    from django.contrib.auth.models import User
    from django.db import connection

    from curation.bulk.validate import Media, clean_item_record
    from curation.bulk.write import records_write
    from curation.models import Annotation, Dataset, Item

    user, _ = User.objects.get_or_create(username="bench")
    Dataset.objects.filter(owner=user, name="bench-ingest").delete()
    dataset = Dataset.objects.create(owner=user, name="bench-ingest")
    rows = make_rows(args.n)

    phases = {"validate": 0.0, "write": 0.0}
    # CPU time an item, which other work on a shared machine disturbs far less than wall
    # time: this process validating, this process writing (building and sending the
    # rows), and the database server's backend that runs the statements.
    cpu = {"validate": 0.0, "client": 0.0, "database": 0.0}
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = psutil.Process(cursor.fetchone()[0])

    def backend_cpu() -> float:
        times = backend.cpu_times()
        return float(times.user + times.system)

    def run() -> float:
        phases.update(validate=0.0, write=0.0)
        cpu.update(validate=0.0, client=0.0, database=-backend_cpu())
        start = time.perf_counter()
        for offset in range(0, len(rows), args.batch):
            c0 = _cpu()
            records = []
            for i, raw in enumerate(rows[offset : offset + args.batch], start=offset):
                media = Media(
                    media_key=f"datasets/{dataset.pk}/media/{i:064x}.jpg",
                    thumbnail_key=f"datasets/{dataset.pk}/thumbs/{i:064x}.webp",
                    source_uri=f"s3://bench/{i}.jpg",
                    width=640,
                    height=480,
                    sha256=f"{i:064x}",
                    byte_size=50_000,
                )
                records.append(clean_item_record(raw, media=media))
            t, c1 = time.perf_counter(), _cpu()
            records_write(dataset=dataset, records=records)
            phases["write"] += time.perf_counter() - t
            cpu["validate"] += c1 - c0
            cpu["client"] += _cpu() - c1
        cpu["database"] += backend_cpu()
        return time.perf_counter() - start

    first = run()
    first_phases = dict(phases, validate=first - phases["write"])
    first_cpu = dict(cpu)
    again = run()  # idempotent re-run: nothing changes
    items = Item.objects.filter(dataset=dataset).count()
    boxes = Annotation.objects.filter(dataset=dataset).count()
    assert items == args.n and boxes == 5 * args.n, (items, boxes)
    dataset.delete()
    print(f"{args.n} items, {boxes} boxes; batch {args.batch}")
    http: tuple[float, float] | None = None
    if args.http:
        http = http_ingest(make_rows(args.http, seed=1), args.http_chunk)
    report(
        [
            (
                "first ingest, items/s",
                f"{args.n / first:,.0f}",
                ">= 20,000",
                args.n / first >= 20_000,
            ),
            (
                "  of which validation, items/s",
                f"{args.n / first_phases['validate']:,.0f}",
                "-",
                None,
            ),
            (
                "  of which database writes, items/s",
                f"{args.n / first_phases['write']:,.0f}",
                "-",
                None,
            ),
            (
                "  CPU an item, us: validation / client writing / database",
                " / ".join(f"{first_cpu[k] / args.n * 1e6:.0f}" for k in cpu),
                "-",
                None,
            ),
            ("re-run (no changes), items/s", f"{args.n / again:,.0f}", "-", None),
            (
                "  CPU an item, us: validation / client writing / database",
                " / ".join(f"{cpu[k] / args.n * 1e6:.0f}" for k in cpu),
                "-",
                None,
            ),
        ]
        + (
            []
            if http is None
            else [
                (
                    f"HTTP bulk endpoint, {args.http:,} items, {args.http_chunk:,} a request",
                    f"{http[0]:,.0f}",
                    ">= 20,000",
                    http[0] >= 20_000,
                ),
                ("  re-run over HTTP (no changes), items/s", f"{http[1]:,.0f}", "-", None),
            ]
        )
        + (
            []
            if folder_rate is None
            else [
                (
                    f"folder ingest of {args.folder} JPEGs, images/s",
                    f"{folder_rate:,.1f}",
                    "-",
                    None,
                ),
                ("  CPU of this process, ms/image", f"{folder_cpu:,.2f}", "-", None),
                (
                    "  bound: the per-image work alone, images/s",
                    f"{bound:,.1f}",
                    "-",
                    None,
                ),
                (
                    "  folder ingest / bound",
                    f"{folder_rate / bound:.2f}",
                    ">= 0.9",
                    folder_rate / bound >= 0.9,
                ),
            ]
        )
    )
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
