"""Perceptual hashes: computed at ingest, kept or reset on re-ingest, filled in by the
duplicates job (resumably) for older items, searched through an index; random weights
leave embeddings out and near groups never chain."""

from __future__ import annotations

import io
from collections import Counter
from typing import Any

import numpy as np
import pytest
from django.db import connection, transaction
from PIL import Image

from curation.bulk.validate import ItemRecord
from curation.bulk.write import records_write
from curation.jobs import job_run
from curation.media import media_phashes, media_process
from curation.models import Dataset, Item, JobStatus
from curation.phash import DETAIL_BYTES, coarse_hashes, fine_distance
from embeddings import duplicates
from embeddings import vectors as vec
from embeddings.duplicate_candidates import (
    BIT_SINCE,
    hash_pairs_sql,
    phash_index_ensure,
    phash_index_name,
)
from embeddings.duplicates import duplicates_job_start, latest_run
from embeddings.models import DuplicateGroup, DuplicateRun, EmbeddingModel, ModelKind
from tests.embedding_factories import (
    custom_model,
    fake_media,
    items_with_images,
    items_with_vectors,
    jpeg_bytes,
)


class Crash(BaseException):
    pass


def _variant(data: bytes, how: str) -> bytes:
    with Image.open(io.BytesIO(data)) as opened:
        im = opened.convert("RGB")
    w, h = im.size
    if how == "crop":
        im = im.crop((6, 5, w - 9, h - 4))
    elif how == "resize":
        im = im.resize((round(w * 0.85), round(h * 0.85)))
    out = io.BytesIO()
    im.save(out, "JPEG", quality=50)
    return out.getvalue()


def test_copies_hash_close_and_other_pictures_far() -> None:
    source = jpeg_bytes(1, (192, 160))
    hashes = {
        name: media_phashes(data)
        for name, data in {
            "source": source,
            "crop": _variant(source, "crop"),
            "resize": _variant(source, "resize"),
            "other": jpeg_bytes(2, (192, 160)),
        }.items()
    }
    assert all(h is not None and len(h[1]) == DETAIL_BYTES for h in hashes.values())
    detail = {k: h[1] for k, h in hashes.items() if h is not None}
    assert fine_distance(detail["source"], detail["resize"]) <= 20
    assert fine_distance(detail["source"], detail["crop"]) <= 52
    assert fine_distance(detail["source"], detail["other"]) > 80
    assert media_phashes(b"not an image") is None


def test_ingest_stores_the_hashes_and_a_new_image_resets_them(dataset: Dataset) -> None:
    media = media_process(dataset_id=dataset.pk, data=jpeg_bytes(1), source_uri="a.jpg")
    assert media.phash is not None and media.phash_detail is not None
    assert coarse_hashes(media.phash, media.phash_detail)[0] == media.phash
    records_write(dataset=dataset, records=[ItemRecord(reference_id="a", media=media)])
    item = Item.objects.get(dataset=dataset, reference_id="a")
    assert (item.phash, bytes(item.phash_detail)) == (media.phash, media.phash_detail)

    # Other bytes without hashes (media the client stored itself) reset them...
    records_write(dataset=dataset, records=[ItemRecord(reference_id="a", media=fake_media(1))])
    assert Item.objects.get(pk=item.pk).phash is None
    # ...the same bytes without hashes (a re-run that found them stored) keep them.
    again = media_process(dataset_id=dataset.pk, data=jpeg_bytes(1), source_uri="a.jpg")
    records_write(dataset=dataset, records=[ItemRecord(reference_id="a", media=again)])
    same = media_process(dataset_id=dataset.pk, data=jpeg_bytes(1), source_uri="a.jpg")
    same.phash = same.phash_detail = None
    records_write(dataset=dataset, records=[ItemRecord(reference_id="a", media=same)])
    assert Item.objects.get(pk=item.pk).phash == media.phash


def test_the_job_fills_in_hashes_resumably(
    dataset: Dataset, alice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = jpeg_bytes(70, (192, 160))
    payloads = [jpeg_bytes(i, (192, 160)) for i in range(8)] + [_variant(source, "resize")]
    payloads[0] = source
    items_with_images(dataset, len(payloads), payloads=payloads)  # no hashes, as before
    monkeypatch.setattr(duplicates, "_HASH_BATCH", 3)
    read: list[bytes] = []
    real = duplicates.media_phashes

    def crash_on_the_fifth(data: bytes) -> Any:
        read.append(data)
        if len(read) == 5:
            raise Crash()
        return real(data)

    monkeypatch.setattr(duplicates, "media_phashes", crash_on_the_fifth)
    job = duplicates_job_start(dataset=dataset, user=alice, model=None)
    with pytest.raises(Crash):
        job_run(job_id=job.pk)
    assert Item.objects.filter(dataset=dataset, phash__isnull=False).count() == 3

    job = job_run(job_id=job.pk)

    assert job.status == JobStatus.SUCCEEDED, job.message
    # Each batch's images are read in parallel, so how many of the crashed batch's reads
    # ran before the crash depends on the threads; what holds: every image was read, the
    # batch committed before the crash and the batch after it were read once, and only
    # the crashed batch's images were read twice at most.
    reads = Counter(read)
    assert set(reads) == set(payloads)
    assert [reads[p] for p in payloads[:3] + payloads[6:]] == [1] * 6
    assert all(1 <= reads[p] <= 2 for p in payloads[3:6])
    assert job.result["hashed"] == 9 and job.result["phash_groups"] == 1
    group = DuplicateGroup.objects.get(run=latest_run(dataset=dataset))
    assert (group.kind, group.signal, group.size) == ("near", "phash", 2)
    assert 0 <= group.distance <= 52


def test_hash_candidates_come_from_the_index_where_pgvector_has_bit(dataset: Dataset) -> None:
    """pgvector >= 0.7: an HNSW bit index; older: no index, an exact bit_count scan."""
    media = [
        media_process(dataset_id=dataset.pk, data=jpeg_bytes(i), source_uri=f"{i}.jpg")
        for i in range(30)
    ]
    records_write(
        dataset=dataset,
        records=[ItemRecord(reference_id=f"i{i}", media=m) for i, m in enumerate(media)],
    )
    indexed = vec.pgvector_version() >= BIT_SINCE
    assert phash_index_ensure(dataset=dataset) is indexed
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # 30 rows: the planner would scan
        cursor.execute(f"EXPLAIN {hash_pairs_sql(dataset.pk, 10, indexed)}", [[1], [5], 12])
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [phash_index_name(dataset.pk)])
        exists = cursor.fetchone()[0]
    assert (phash_index_name(dataset.pk) in plan, exists) == (indexed, indexed)


def test_random_weights_are_no_signal(dataset: Dataset, alice: Any) -> None:
    model = EmbeddingModel.objects.create(
        name="random", dataset=dataset, kind=ModelKind.CUSTOM, dimension=8, random_weights=True
    )
    rng = np.random.default_rng(0)
    items_with_vectors(dataset, model, np.ones((20, 8)) + 0.001 * rng.normal(size=(20, 8)))

    job = job_run(job_id=duplicates_job_start(dataset=dataset, user=alice, model=model).pk)

    assert job.result["groups"] == 0 and job.result["signals"] == ["exact", "phash"]
    assert DuplicateRun.objects.get(dataset=dataset).embedding_signal is False


def test_near_groups_do_not_chain(dataset: Dataset, alice: Any) -> None:
    """Six items on an arc, each 0.96 similar to the next and 0.84 to the one after: a
    connected component would be all six; stars around representatives are pairs."""
    step = np.arccos(0.96)
    rows = np.zeros((6, 16), dtype=np.float32)
    rows[:, 0], rows[:, 1] = np.cos(step * np.arange(6)), np.sin(step * np.arange(6))
    model = custom_model(dataset, 16)
    sizes = [(400, 300)] + [(100, 100)] * 5  # the first is picked as a representative first
    items_with_vectors(dataset, model, rows, media=[fake_media(i, s) for i, s in enumerate(sizes)])

    job = job_run(job_id=duplicates_job_start(dataset=dataset, user=alice, model=model).pk)

    groups = {
        frozenset(g.members.values_list("item__reference_id", flat=True)): g
        for g in DuplicateGroup.objects.filter(run=latest_run(dataset=dataset))
    }
    assert set(groups) == {
        frozenset({"v-00000", "v-00001"}),
        frozenset({"v-00002", "v-00003"}),
        frozenset({"v-00004", "v-00005"}),
    }
    assert all(g.signal == "embedding" and g.distance <= 0.05 for g in groups.values())
    assert job.result["embedding_groups"] == 3
