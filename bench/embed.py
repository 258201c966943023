"""Embedding pipeline throughput from JPEG files against the model's forward pass alone.

Target (DESIGN.md): the whole pipeline (storage read, JPEG decode, resize, batching,
forward pass, bulk write and checkpoint per batch) reaches >= 90% of the forward pass's
own images/s on the same batches, so decoding and I/O are never the bottleneck; on a GPU,
ViT-B-32 from JPEG files >= 5,000 images/s. Weights are random (speed does not depend
on them; no download needed).

    .venv/bin/python bench/embed.py [--n 256] [--arch ViT-B-32] [--size 640x480]
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from _setup import report, setup_django
from PIL import Image, ImageDraw, ImageFilter


def photo_like(seed: int, size: tuple[int, int]) -> bytes:
    """A JPEG with gradients, shapes and noise: about the size of a real photo's."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack(
        [
            (x / w) * rng.uniform(50, 255),
            (y / h) * rng.uniform(50, 255),
            np.full((h, w), rng.uniform(0, 255)),
        ],
        axis=-1,
    )
    noisy = np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
    im = Image.fromarray(noisy)
    draw = ImageDraw.Draw(im)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        draw.ellipse(
            [x0, y0, x0 + int(rng.integers(10, w // 3)), y0 + int(rng.integers(10, h // 3))],
            fill=tuple(int(c) for c in rng.integers(0, 255, 3)),
        )
    out = io.BytesIO()
    im.filter(ImageFilter.SMOOTH).save(out, "JPEG", quality=90)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n", type=int, default=0, help="images (default: 256 on CPU, 20000 on GPU)"
    )
    parser.add_argument("--arch", default="ViT-B-32")
    parser.add_argument("--size", default="640x480", help="JPEG size, WxH")
    parser.add_argument("--batch", type=int, default=0, help="batch size (default: the service's)")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))

    media = tempfile.mkdtemp(prefix="nucleus-bench-embed-")
    os.environ["NUCLEUS_MEDIA_ROOT"] = media
    os.environ["NUCLEUS_EMBEDDING_ARCH"] = args.arch
    os.environ["NUCLEUS_EMBEDDING_WEIGHTS"] = "random"
    if args.batch:
        os.environ["NUCLEUS_EMBEDDING_BATCH_SIZE"] = str(args.batch)
    setup_django("nucleus_bench_embed")
    import hashlib

    import torch
    from django.contrib.auth.models import User
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from curation.bulk.validate import ItemRecord, Media
    from curation.bulk.write import records_write
    from curation.jobs import JobContext
    from curation.models import Dataset, Job, JobStatus
    from embeddings import pipeline
    from embeddings.clip import configured_spec, encoder_for
    from embeddings.imaging import pixels_decode
    from embeddings.models import EmbeddingModel
    from embeddings.services import embed_job_start

    encoder = encoder_for(configured_spec())
    n = args.n or (20_000 if encoder.device.startswith("cuda") else 256)
    batch = pipeline.batch_size(encoder.device)
    print(
        f"{args.arch} on {encoder.device} (torch threads {torch.get_num_threads()}), "
        f"{n} JPEGs of {size[0]}x{size[1]}, batch {batch}, {pipeline.reader_count()} reader threads"
    )

    user, _ = User.objects.get_or_create(username="bench")
    Dataset.objects.filter(owner=user, name="bench-embed").delete()
    dataset = Dataset.objects.create(owner=user, name="bench-embed")
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        files = list(pool.map(lambda i: photo_like(i, size), range(n)))
    records = []
    for i, data in enumerate(files):
        sha = hashlib.sha256(data).hexdigest()
        key = default_storage.save(f"datasets/{dataset.pk}/media/{sha}.jpg", ContentFile(data))
        records.append(
            ItemRecord(
                reference_id=f"img-{i:06d}",
                media=Media(key, "", "", size[0], size[1], sha, len(data)),
            )
        )
    records_write(dataset=dataset, records=records)
    print(f"  {n} files, {sum(map(len, files)) / n / 1024:.0f} KiB each on average")

    # The model alone, on batches decoded beforehand.
    pixels = np.stack([pixels_decode(data, encoder.image_size) for data in files])
    encoder.encode_pixels(pixels[:batch])  # warm-up
    start = time.perf_counter()
    for offset in range(0, n, batch):
        encoder.encode_pixels(pixels[offset : offset + batch])
    if encoder.device.startswith("cuda"):
        torch.cuda.synchronize()
    forward = n / (time.perf_counter() - start)

    # The whole pipeline, as a job runs it.
    job = embed_job_start(dataset=dataset, user=user, mode="all", enqueue=False)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    job.refresh_from_db()
    model = EmbeddingModel.objects.get(pk=job.params["model_id"])
    start = time.perf_counter()
    result = pipeline.embed_run(JobContext(job), encoder=encoder, model=model, dataset=dataset)
    whole = n / (time.perf_counter() - start)
    assert result["embedded"] == n, result

    ratio = whole / forward
    rows: list[tuple[str, str, str, bool | None]] = [
        ("forward pass alone", f"{forward:,.0f} img/s", "-", None),
        ("pipeline from JPEG files", f"{whole:,.0f} img/s", "-", None),
        ("pipeline / forward", f"{ratio:.2f}", ">= 0.90", ratio >= 0.9),
    ]
    if encoder.device.startswith("cuda") and args.arch == "ViT-B-32":
        rows.append(
            ("GPU ViT-B-32 pipeline", f"{whole:,.0f} img/s", ">= 5,000 img/s", whole >= 5000)
        )
    report(rows)
    Dataset.objects.filter(pk=dataset.pk).delete()


if __name__ == "__main__":
    main()
