"""The embedding job: every item once, the right dimension, resumable, per-item errors."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image

from curation.jobs import job_run
from curation.models import Dataset, JobStatus, Slice, SliceItem
from curation.slices import slice_create_from_query
from embeddings import pipeline
from embeddings.models import DatasetSearchDefault, Embedding, EmbeddingModel
from embeddings.services import embed_job_start
from tests.embedding_factories import TINY_DIM, items_with_images, tiny_clip_fixture  # noqa: F401

pytestmark = pytest.mark.usefixtures("tiny_clip")


class Crash(BaseException):
    """Stands for the worker being killed: job_run does not catch it."""


def vectors_of(dataset: Dataset) -> dict[int, np.ndarray]:
    rows = Embedding.objects.filter(dataset=dataset).values_list("item_id", "vector")
    return {item_id: np.asarray(vector, dtype=np.float32) for item_id, vector in rows}


def test_it_embeds_every_item_once_with_the_models_dimension(dataset: Dataset, alice: Any) -> None:
    items = items_with_images(dataset, 10)
    job = embed_job_start(dataset=dataset, user=alice)
    job = job_run(job_id=job.pk)

    assert job.status == JobStatus.SUCCEEDED, job.message
    assert (job.progress_done, job.progress_total) == (10, 10)
    assert job.result["embedded"] == 10 and job.result["random_weights"] is True
    stored = vectors_of(dataset)
    assert set(stored) == {i.pk for i in items}
    assert Embedding.objects.filter(dataset=dataset).count() == 10
    for vector in stored.values():
        assert vector.shape == (TINY_DIM,)
        assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-4
    model = EmbeddingModel.objects.get(pk=job.params["model_id"])
    assert model.dimension == TINY_DIM and model.random_weights
    assert DatasetSearchDefault.objects.get(dataset=dataset).model == model


def test_it_embeds_only_items_without_a_vector_on_a_second_run(
    dataset: Dataset, alice: Any
) -> None:
    items_with_images(dataset, 6)
    job_run(job_id=embed_job_start(dataset=dataset, user=alice).pk)
    before = vectors_of(dataset)
    items_with_images(dataset, 3, prefix="late")

    job = job_run(job_id=embed_job_start(dataset=dataset, user=alice).pk)

    assert job.result["embedded"] == 3 and job.progress_total == 3
    after = vectors_of(dataset)
    assert len(after) == 9
    for item_id, vector in before.items():
        assert np.array_equal(after[item_id], vector)


def test_it_gives_an_image_the_same_vector_in_every_run(dataset: Dataset, alice: Any) -> None:
    items = items_with_images(dataset, 3)
    job_run(job_id=embed_job_start(dataset=dataset, user=alice).pk)
    first = vectors_of(dataset)
    job = job_run(job_id=embed_job_start(dataset=dataset, user=alice, mode="all").pk)

    assert job.result["embedded"] == 3
    second = vectors_of(dataset)
    for item in items:
        assert np.allclose(first[item.pk], second[item.pk], atol=1e-5)
    assert len({tuple(np.round(v, 4)) for v in second.values()}) == 3


def test_it_resumes_after_a_crash_without_redoing_committed_batches(
    dataset: Dataset, alice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = items_with_images(dataset, 10)  # batches of 4: 4 + 4 + 2
    written: list[list[int]] = []
    real_write = pipeline.vec.vectors_write

    def crash_on_second_batch(**kwargs: Any) -> int:
        if len(written) == 1:
            written.append([])
            raise Crash()
        written.append(list(kwargs["item_ids"]))
        return real_write(**kwargs)

    monkeypatch.setattr(pipeline.vec, "vectors_write", crash_on_second_batch)
    job = embed_job_start(dataset=dataset, user=alice)
    with pytest.raises(Crash):
        job_run(job_id=job.pk)

    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING
    assert job.progress_done == 4
    assert set(vectors_of(dataset)) == {i.pk for i in items[:4]}

    monkeypatch.setattr(
        pipeline.vec,
        "vectors_write",
        lambda **kw: (written.append(list(kw["item_ids"])), real_write(**kw))[1],
    )
    job = job_run(job_id=job.pk)

    assert job.status == JobStatus.SUCCEEDED and job.attempts == 2
    assert job.progress_done == 10
    resumed = [i for batch in written[2:] for i in batch]
    assert sorted(resumed) == [i.pk for i in items[4:]]  # nothing committed is redone
    assert set(vectors_of(dataset)) == {i.pk for i in items}
    assert Embedding.objects.filter(dataset=dataset).count() == 10


def test_it_embeds_only_the_slice_it_is_given(dataset: Dataset, alice: Any) -> None:
    items = items_with_images(dataset, 6)
    part = Slice.objects.create(dataset=dataset, name="part")
    SliceItem.objects.bulk_create([SliceItem(slice=part, item=i) for i in items[:2]])

    job = job_run(job_id=embed_job_start(dataset=dataset, user=alice, slice_id=part.pk).pk)

    assert job.result["embedded"] == 2
    assert set(vectors_of(dataset)) == {items[0].pk, items[1].pk}


def test_it_embeds_the_items_a_dynamic_slice_matches(dataset: Dataset, alice: Any) -> None:
    metadata = [{"weather": "rain" if i % 3 == 0 else "sun"} for i in range(6)]
    items = items_with_images(dataset, 6, metadata=metadata)
    rain, _ = slice_create_from_query(
        dataset=dataset, user=alice, name="rain", query='metadata.weather = "rain"'
    )

    job = job_run(job_id=embed_job_start(dataset=dataset, user=alice, slice_id=rain.pk).pk)

    assert job.result["embedded"] == 2
    assert set(vectors_of(dataset)) == {items[0].pk, items[3].pk}


def test_a_job_whose_slice_was_deleted_fails_saying_so(dataset: Dataset, alice: Any) -> None:
    items_with_images(dataset, 2)
    part = Slice.objects.create(dataset=dataset, name="part")
    job = embed_job_start(dataset=dataset, user=alice, slice_id=part.pk)
    part.delete()

    job = job_run(job_id=job.pk)

    assert job.status == JobStatus.FAILED and "was deleted" in job.message
    assert vectors_of(dataset) == {}


def test_it_embeds_an_image_of_an_extreme_aspect_ratio(dataset: Dataset, alice: Any) -> None:
    out = io.BytesIO()
    Image.new("RGB", (10, 100_000), (0, 90, 200)).save(out, "PNG")  # ~100 KB, 1M pixels
    [item] = items_with_images(dataset, 1, payloads=[out.getvalue()])

    job = job_run(job_id=embed_job_start(dataset=dataset, user=alice).pk)

    assert job.error_count == 0, job.errors
    assert set(vectors_of(dataset)) == {item.pk}


def test_it_records_unreadable_images_and_embeds_the_rest(dataset: Dataset, alice: Any) -> None:
    good = items_with_images(dataset, 3)
    bad = items_with_images(dataset, 1, prefix="bad", payloads=[b"not an image at all"])
    default_storage.delete(items_with_images(dataset, 1, prefix="gone")[0].media_key)

    job = job_run(job_id=embed_job_start(dataset=dataset, user=alice).pk)

    assert job.status == JobStatus.SUCCEEDED
    assert job.error_count == 2 and job.result["failed"] == 2
    assert {e["reference_id"] for e in job.errors} == {bad[0].reference_id, "gone-00000"}
    assert set(vectors_of(dataset)) == {i.pk for i in good}


def test_it_reads_the_thumbnail_when_it_is_big_enough(dataset: Dataset, alice: Any) -> None:
    [item] = items_with_images(dataset, 1)
    out = io.BytesIO()
    Image.new("RGB", (256, 213), (10, 200, 30)).save(out, "WEBP")
    thumb = default_storage.save(
        f"datasets/{dataset.pk}/thumbs/x.webp", ContentFile(out.getvalue())
    )
    default_storage.delete(item.media_key)  # only the thumbnail can be read now
    type(item).objects.filter(pk=item.pk).update(thumbnail_key=thumb, width=1200, height=1000)

    job = job_run(job_id=embed_job_start(dataset=dataset, user=alice).pk)

    assert job.error_count == 0, job.errors
    assert set(vectors_of(dataset)) == {item.pk}


@pytest.mark.django_db(transaction=True)
def test_it_builds_the_search_index_concurrently_once_the_job_has_committed(
    dataset: Dataset, alice: Any
) -> None:
    from embeddings import vectors as vec
    from embeddings.search import search_vector

    items_with_images(dataset, 6)
    job = job_run(job_id=embed_job_start(dataset=dataset, user=alice).pk)

    model = EmbeddingModel.objects.get(pk=job.params["model_id"])
    assert vec.index_state(model.pk, dataset.pk)[0] is True
    query = vectors_of(dataset)[job.dataset.items.order_by("id").first().pk]
    result = search_vector(dataset=dataset, model=model, vector=query, limit=3)
    assert result.strategy == "hnsw" and len(result.hits) == 3
    assert result.hits[0].score > 0.9999
    vec.vector_index_drop(model_id=model.pk)
