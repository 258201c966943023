"""Helpers for the embedding, search and duplicate tests: a tiny open_clip model, items
with real stored images, and items with constructed vectors."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image, ImageDraw

from curation.bulk.validate import ItemRecord, Media
from curation.bulk.write import records_write
from curation.models import Dataset, Item
from embeddings import vectors as vec
from embeddings.models import EmbeddingModel, ModelKind
from embeddings.services import dataset_default_set

TINY_ARCH = "nucleus-test-tiny"
TINY_DIM = 32
TINY_CONFIG = {
    "embed_dim": TINY_DIM,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@pytest.fixture(name="tiny_clip")
def tiny_clip_fixture(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Configure a tiny random-weights open_clip architecture (fast on two CPU cores)."""
    import open_clip

    if open_clip.get_model_config(TINY_ARCH) is None:
        folder = tmp_path_factory.mktemp("clip-configs")
        (folder / f"{TINY_ARCH}.json").write_text(json.dumps(TINY_CONFIG))
        open_clip.add_model_config(folder)
    settings.NUCLEUS_EMBEDDING_ARCH = TINY_ARCH
    settings.NUCLEUS_EMBEDDING_WEIGHTS = "random"
    settings.NUCLEUS_EMBEDDING_BATCH_SIZE = 4
    settings.NUCLEUS_EMBEDDING_READERS = 2
    settings.NUCLEUS_EMBEDDING_DEVICE = "cpu"
    return TINY_ARCH


def jpeg_bytes(seed: int, size: tuple[int, int] = (96, 80)) -> bytes:
    """A small JPEG that differs from every other seed's."""
    rng = np.random.default_rng(seed)
    im = Image.new("RGB", size, tuple(int(c) for c in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(im)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, size[0] - 10)), int(rng.integers(0, size[1] - 10))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        draw.rectangle(
            [x0, y0, x0 + int(rng.integers(5, 40)), y0 + int(rng.integers(5, 40))], fill=colour
        )
    out = io.BytesIO()
    im.save(out, "JPEG", quality=90)
    return out.getvalue()


def items_with_images(
    dataset: Dataset,
    count: int,
    *,
    prefix: str = "img",
    payloads: Sequence[bytes] | None = None,
    metadata: Sequence[dict[str, Any]] | None = None,
    reference_ids: Sequence[str] | None = None,
) -> list[Item]:
    """Create items whose images are really in storage (as ingest would leave them)."""
    records = []
    for index in range(count):
        data = payloads[index] if payloads is not None else jpeg_bytes(index + 1000 * dataset.pk)
        sha = hashlib.sha256(data).hexdigest()
        key = default_storage.save(f"datasets/{dataset.pk}/media/{sha}.jpg", ContentFile(data))
        try:
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
        except OSError:  # a deliberately broken file
            width, height = 10, 10
        media = Media(
            media_key=key,
            thumbnail_key="",
            source_uri=f"test://{prefix}-{index}",
            width=width,
            height=height,
            sha256=sha,
            byte_size=len(data),
        )
        meta = json.dumps(metadata[index]) if metadata is not None else None
        ref = reference_ids[index] if reference_ids is not None else f"{prefix}-{index:05d}"
        records.append(ItemRecord(reference_id=ref, metadata=meta, media=media))
    ids = records_write(dataset=dataset, records=records).item_ids
    by_id = Item.objects.in_bulk(list(ids.values()))
    return [by_id[ids[r.reference_id]] for r in records]


def custom_model(dataset: Dataset, dimension: int, name: str = "constructed") -> EmbeddingModel:
    model = EmbeddingModel.objects.create(
        name=name, dataset=dataset, kind=ModelKind.CUSTOM, dimension=dimension
    )
    dataset_default_set(dataset=dataset, model=model)
    return model


def items_with_vectors(
    dataset: Dataset,
    model: EmbeddingModel,
    vectors: np.ndarray,
    *,
    prefix: str = "v",
    metadata: Sequence[dict[str, Any]] | None = None,
    media: Sequence[Media | None] | None = None,
    index: bool = True,
) -> list[Item]:
    """Create one item per row of `vectors` and store the rows as their vectors."""
    records = [
        ItemRecord(
            reference_id=f"{prefix}-{i:05d}",
            metadata=json.dumps(metadata[i]) if metadata is not None else None,
            media=media[i] if media is not None else None,
        )
        for i in range(len(vectors))
    ]
    result = records_write(dataset=dataset, records=records)
    ids = [result.item_ids[r.reference_id] for r in records]
    vec.vectors_write(model=model, dataset=dataset, item_ids=ids, vectors=vec.normalize(vectors))
    if index:
        vec.vector_index_ensure(model=model, dataset=dataset)
    by_id = Item.objects.in_bulk(ids)
    return [by_id[i] for i in ids]


def clustered(n: int, dim: int, clusters: int, seed: int = 0, spread: float = 0.3) -> np.ndarray:
    """`n` unit vectors around `clusters` random centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    labels = rng.integers(0, clusters, n)
    points = centres[labels] + spread * rng.normal(size=(n, dim))
    return vec.normalize(points.astype(np.float32))


def exact_top(
    vectors: np.ndarray, query: np.ndarray, k: int, allowed: np.ndarray | None = None
) -> list[int]:
    """Row indexes of the k rows most cosine-similar to `query` (NumPy, exact)."""
    scores = vec.normalize(vectors) @ (query / np.linalg.norm(query))
    if allowed is not None:
        scores = np.where(allowed, scores, -np.inf)
    order = np.argsort(-scores, kind="stable")
    return [int(i) for i in order[:k] if np.isfinite(scores[i])]


PLANTED_DIM = 64


def fake_media(seed: int, size: tuple[int, int] = (100, 100)) -> Media:
    return Media("", "", "", size[0], size[1], hashlib.sha256(str(seed).encode()).hexdigest(), 1000)


@pytest.fixture(name="planted")
def planted_fixture(dataset: Dataset) -> dict[str, Any]:
    """40 unrelated images plus planted copies:

    n1: base 0 + two near copies (the second one is the largest image: representative)
    n2: base 1 + one near copy
    e1: base 2 + an exact copy (same bytes, so same hash and same vector)
    mixed: base 3 + an exact copy + a near copy: the exact pair is a group of its own,
        and base 3 (standing for it) heads a near group with the near copy
    x: two exact copies that have no vector at all
    """
    rng = np.random.default_rng(0)
    base = rng.normal(size=(40, PLANTED_DIM)).astype(np.float32)

    def near(i: int) -> np.ndarray:
        return base[i] + 0.02 * rng.normal(size=PLANTED_DIM).astype(np.float32)

    rows = [*base, near(0), near(0), near(1), base[2], base[3], near(3)]
    files = [fake_media(i) for i in range(40)]
    files += [
        fake_media(40),
        fake_media(41, (400, 300)),
        fake_media(42),
        fake_media(2),
        fake_media(3),
        fake_media(45),
    ]
    model = custom_model(dataset, PLANTED_DIM)
    items = items_with_vectors(dataset, model, np.stack(rows), media=files)
    records_write(
        dataset=dataset,
        records=[ItemRecord(reference_id=f"x-{i}", media=fake_media(99)) for i in range(2)],
    )
    ref = [i.reference_id for i in items]
    return {
        "model": model,
        "items": items,
        "groups": {
            frozenset({ref[0], ref[40], ref[41]}): (ref[41], "near"),
            frozenset({ref[1], ref[42]}): (ref[1], "near"),
            frozenset({ref[2], ref[43]}): (ref[2], "exact"),
            frozenset({ref[3], ref[44]}): (ref[3], "exact"),
            frozenset({ref[3], ref[45]}): (ref[3], "near"),
            frozenset({"x-0", "x-1"}): ("x-0", "exact"),
        },
    }


def planted_scores(
    dataset: Dataset, items: Sequence[Item], uniqueness: Sequence[float], name: str = "planted"
) -> EmbeddingModel:
    """A finished score run of a custom model whose items have exactly these uniqueness
    scores (representativeness 1 - uniqueness, outlier = uniqueness), with no vectors."""
    from insights.models import ItemScore, ScoreRun

    model = custom_model(dataset, 8, name=name)
    run = ScoreRun.objects.create(
        dataset=dataset, model=model, neighbors=5, status=ScoreRun.Status.FINISHED
    )
    ItemScore.objects.bulk_create(
        ItemScore(
            run=run,
            dataset=dataset,
            model=model,
            item=item,
            knn_distance=value,
            centroid_similarity=1 - value,
            uniqueness=value,
            representativeness=1 - value,
            outlier=value,
        )
        for item, value in zip(items, uniqueness, strict=True)
    )
    return model
