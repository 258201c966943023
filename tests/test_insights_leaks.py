"""Leaks between splits on constructed data whose answer is known: an exact copy in both
splits leaks, a perceptual-hash near copy leaks, an item in both splits leaks, an item in
one split only does not; one click takes the leaking items out of one side."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from PIL import Image
from rest_framework.test import APIClient

from curation.jobs import job_run
from curation.media import media_phashes
from curation.models import Dataset, Item, JobStatus, Slice
from curation.services import slice_create, tag_add
from embeddings import vectors as vec
from embeddings.models import EmbeddingModel
from insights.leaks import latest_report, leaks_job_start, leaks_remove
from insights.models import LeakPair
from tests.api_helpers import error_paths
from tests.embedding_factories import custom_model, items_with_images, jpeg_bytes

SIZE = (192, 160)
DIM = 16


def resized(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as opened:
        im = opened.convert("RGB")
    out = io.BytesIO()
    im.resize((round(im.width * 0.85), round(im.height * 0.85))).save(out, "JPEG", quality=60)
    return out.getvalue()


def hashed(items: list[Item], payloads: list[bytes]) -> None:
    """The perceptual hashes ingest would have stored."""
    for item, data in zip(items, payloads, strict=True):
        found = media_phashes(data)
        assert found is not None
        Item.objects.filter(pk=item.pk).update(phash=found[0], phash_detail=found[1])


@pytest.fixture(name="splits")
def splits_fixture(dataset: Dataset) -> dict[str, Any]:
    """train: t0..t3; test: an exact copy of t0, a resized copy of t1, t2 itself (tagged
    both), and u6, a picture of its own. t3 is only in train."""
    pictures = [jpeg_bytes(seed, SIZE) for seed in range(1, 6)]
    payloads = [pictures[0], pictures[1], pictures[2], pictures[3]]
    payloads += [pictures[0], resized(pictures[1]), pictures[4]]
    refs = ["t0", "t1", "t2", "t3", "copy-of-t0", "resized-t1", "u6"]
    items = items_with_images(dataset, len(payloads), payloads=payloads, reference_ids=refs)
    hashed(items, payloads)
    tag_add(dataset=dataset, name="train", reference_ids=["t0", "t1", "t2", "t3"])
    tag_add(dataset=dataset, name="test", reference_ids=["copy-of-t0", "resized-t1", "t2", "u6"])
    return {"items": {i.reference_id: i for i in items}}


def report_pairs(dataset: Dataset) -> set[tuple[str, str, str]]:
    report = latest_report(dataset=dataset)
    return set(
        LeakPair.objects.filter(report=report).values_list(
            "item_a__reference_id", "item_b__reference_id", "evidence"
        )
    )


def run_leaks(dataset: Dataset, user: Any, a: str, b: str, model: Any = None) -> dict[str, Any]:
    job = job_run(job_id=leaks_job_start(dataset=dataset, user=user, a=a, b=b, model=model).pk)
    assert job is not None and job.status == JobStatus.SUCCEEDED, job and job.message
    return dict(job.result)


def test_copies_across_the_splits_leak_and_the_rest_does_not(
    dataset: Dataset, alice: User, splits: dict[str, Any]
) -> None:
    result = run_leaks(dataset, alice, "train", "tag:test")
    assert report_pairs(dataset) == {
        ("t0", "copy-of-t0", "exact"),
        ("t1", "resized-t1", "phash"),
        ("t2", "t2", "same_item"),
    }
    assert (result["pairs"], result["exact"], result["phash"], result["same_item"]) == (3, 1, 1, 1)
    assert result["signals"] == ["same_item", "exact", "phash"]  # no model: no embeddings
    phash = LeakPair.objects.get(evidence="phash")
    assert 0 < phash.distance <= 52


def test_removing_from_one_side_untags_the_leaking_items(
    dataset: Dataset, alice: User, splits: dict[str, Any]
) -> None:
    run_leaks(dataset, alice, "train", "test")
    result = leaks_remove(report=latest_report(dataset=dataset), side="b")
    assert result["removed"] == 3 and result["removed_from"] == "tag:test"
    test = set(
        Item.objects.filter(tag_links__tag__name="test").values_list("reference_id", flat=True)
    )
    train = set(
        Item.objects.filter(tag_links__tag__name="train").values_list("reference_id", flat=True)
    )
    assert test == {"u6"} and train == {"t0", "t1", "t2", "t3"}
    run_leaks(dataset, alice, "train", "test")
    assert report_pairs(dataset) == set()


def test_a_slice_side_loses_its_leaking_members(
    dataset: Dataset, alice: User, splits: dict[str, Any]
) -> None:
    train, _ = slice_create(
        dataset=dataset, user=alice, name="train split", reference_ids=["t0", "t1", "t2", "t3"]
    )
    run_leaks(dataset, alice, "slice:train split", "test")
    assert len(report_pairs(dataset)) == 3
    leaks_remove(report=latest_report(dataset=dataset), side="a")
    kept = Slice.objects.get(pk=train.pk).items.values_list("reference_id", flat=True)
    assert set(kept) == {"t3"}


def test_embedding_neighbours_leak_only_with_real_weights(
    dataset: Dataset, alice: User, splits: dict[str, Any]
) -> None:
    items = splits["items"]
    model = custom_model(dataset, DIM)
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(len(items), DIM)).astype(np.float32)
    order = list(items)
    # u6 (test) is, to this model, almost the same as t3 (train only): a semantic copy.
    rows[order.index("u6")] = rows[order.index("t3")] + 0.01 * rng.normal(size=DIM)
    vec.vectors_write(
        model=model,
        dataset=dataset,
        item_ids=[items[r].pk for r in order],
        vectors=vec.normalize(rows),
    )
    vec.vector_index_ensure(model=model, dataset=dataset)
    result = run_leaks(dataset, alice, "train", "test", model=model)
    assert ("t3", "u6", "embedding") in report_pairs(dataset)
    assert result["embedding"] == 1 and len(report_pairs(dataset)) == 4

    EmbeddingModel.objects.filter(pk=model.pk).update(random_weights=True)
    model.refresh_from_db()
    result = run_leaks(dataset, alice, "train", "test", model=model)
    assert "embedding" not in result["signals"] and len(report_pairs(dataset)) == 3


# ------------------------------------------------------------------------------- API


def api(dataset: Dataset) -> str:
    return f"/api/v1/datasets/{dataset.pk}/insights/leaks"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"a": "nope", "b": "test"}, "a"),
        ({"a": "train", "b": "slice:test"}, "b"),  # test is a tag, not a slice
        ({"a": "train", "b": "tag:train"}, "b"),  # the same side twice
        ({"a": "train"}, "b"),
    ],
)
def test_bad_sides_are_a_400_naming_the_field(
    dataset: Dataset,
    bob: User,
    splits: dict[str, Any],
    client_for: Callable[[User | None], APIClient],
    body: dict[str, str],
    field: str,
) -> None:
    response = client_for(bob).post(api(dataset), body, format="json")
    assert error_paths(response) == [field]


def test_viewers_read_curators_act_strangers_see_nothing(
    dataset: Dataset,
    alice: User,
    bob: User,
    victor: User,
    charlie: User,
    splits: dict[str, Any],
    client_for: Callable[[User | None], APIClient],
) -> None:
    viewer, curator, stranger = client_for(victor), client_for(bob), client_for(charlie)
    assert viewer.get(api(dataset)).status_code == 404  # no report yet
    assert viewer.post(api(dataset), {"a": "train", "b": "test"}, format="json").status_code == 403
    assert (
        stranger.post(api(dataset), {"a": "train", "b": "test"}, format="json").status_code == 404
    )
    started = curator.post(api(dataset), {"a": "train", "b": "test"}, format="json")
    assert started.status_code == 202, started.content
    job_run(job_id=started.json()["id"])

    page = viewer.get(api(dataset)).json()
    assert page["report"]["a"] == "tag:train" and page["report"]["pair_count"] == 3
    assert {(p["a"], p["b"], p["evidence"]) for p in page["pairs"]} == {
        ("t0", "copy-of-t0", "exact"),
        ("t1", "resized-t1", "phash"),
        ("t2", "t2", "same_item"),
    }
    assert page["pairs"][0]["evidence"] == "same_item"  # strongest first
    assert stranger.get(api(dataset)).status_code == 404

    remove = f"{api(dataset)}/remove"
    assert viewer.post(remove, {"side": "b"}, format="json").status_code == 403
    assert error_paths(curator.post(remove, {"side": "c"}, format="json")) == ["side"]
    done = curator.post(remove, {"side": "b"}, format="json")
    assert done.status_code == 200 and done.json()["removed"] == 3
    assert viewer.get(api(dataset)).json()["pairs"] == []


class Crash(BaseException):
    pass


def test_the_job_resumes_where_it_stopped(
    dataset: Dataset, alice: User, splits: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from embeddings import duplicate_candidates
    from insights import leaks

    more = [jpeg_bytes(seed, SIZE) for seed in range(100, 700)]
    refs = [f"extra-{i}" for i in range(len(more))]
    extra = items_with_images(dataset, len(more), payloads=more, reference_ids=refs)
    hashed(extra, more)
    tag_add(dataset=dataset, name="train", reference_ids=refs)  # train: 604 items, 2 batches
    asked: list[list[int]] = []
    real = duplicate_candidates.hash_pairs

    def crash_on_second_batch(search: Any, batch: Any, candidates: int) -> Any:
        asked.append([i for i, _, _ in batch])
        if len(asked) == 2:
            raise Crash()
        return real(search, batch, candidates)

    monkeypatch.setattr(leaks.candidates, "hash_pairs", crash_on_second_batch)
    job = leaks_job_start(dataset=dataset, user=alice, a="train", b="test", model=None)
    with pytest.raises(Crash):
        job_run(job_id=job.pk)
    finished = job_run(job_id=job.pk)
    assert finished is not None and finished.status == JobStatus.SUCCEEDED, finished.message
    assert not set(asked[0]) & {i for batch in asked[2:] for i in batch}
    assert report_pairs(dataset) == {
        ("t0", "copy-of-t0", "exact"),
        ("t1", "resized-t1", "phash"),
        ("t2", "t2", "same_item"),
    }
