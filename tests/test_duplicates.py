"""Duplicate groups found by the job match what was planted; groups become tags or slices."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection, transaction

from curation.jobs import job_run
from curation.models import Dataset, Item, JobStatus, Slice, Tag
from embeddings import duplicate_candidates as candidates
from embeddings import duplicates
from embeddings import vectors as vec
from embeddings.duplicate_candidates import near_pairs_sql
from embeddings.duplicates import duplicates_apply, duplicates_job_start, latest_run
from embeddings.models import DuplicateGroup, DuplicateRun, EmbeddingModel
from embeddings.search import search_item
from embeddings.services import embed_job_start
from tests.embedding_factories import (  # noqa: F401
    clustered,
    custom_model,
    items_with_images,
    items_with_vectors,
    planted_fixture,
    tiny_clip_fixture,
)

DIM = 64


class Crash(BaseException):
    pass


def found_groups(dataset: Dataset) -> dict[frozenset[str], tuple[str, str]]:
    run = latest_run(dataset=dataset)
    out = {}
    for group in DuplicateGroup.objects.filter(run=run).select_related("representative"):
        members = frozenset(group.members.values_list("item__reference_id", flat=True))
        assert group.size == len(members)
        out[members] = (group.representative.reference_id, group.kind)
    return out


def test_it_finds_the_planted_exact_and_near_duplicates(
    dataset: Dataset, alice: Any, planted: dict[str, Any]
) -> None:
    job = duplicates_job_start(dataset=dataset, user=alice, model=planted["model"])
    job = job_run(job_id=job.pk)

    assert job.status == JobStatus.SUCCEEDED, job.message
    assert found_groups(dataset) == planted["groups"]
    assert job.result["exact_groups"] == 3 and job.result["near_groups"] == 3
    assert job.result["embedding_groups"] == 3 and job.result["phash_groups"] == 0
    exact = DuplicateGroup.objects.get(representative__reference_id="v-00003", kind="exact")
    near = DuplicateGroup.objects.get(representative__reference_id="v-00003", kind="near")
    assert (exact.signal, exact.distance) == ("exact", 0.0)
    assert near.signal == "embedding" and 0 < near.distance <= 0.05
    flags = {
        m.item.reference_id: (m.same_hash, m.similarity, m.signal)
        for m in near.members.select_related("item")
    }
    assert flags["v-00045"][0] is False and flags["v-00045"][2] == "embedding"
    assert all(s is not None and s >= 0.95 for _, s, _ in flags.values())


def test_it_finds_only_exact_copies_without_embeddings(
    dataset: Dataset, alice: Any, planted: dict[str, Any]
) -> None:
    job_run(job_id=duplicates_job_start(dataset=dataset, user=alice, model=None).pk)

    groups = found_groups(dataset)
    assert set(groups) == {
        frozenset({"v-00002", "v-00043"}),
        frozenset({"v-00003", "v-00044"}),
        frozenset({"x-0", "x-1"}),
    }


def test_it_keeps_a_threshold_of_one_to_identical_vectors(
    dataset: Dataset, alice: Any, planted: dict[str, Any]
) -> None:
    job_run(
        job_id=duplicates_job_start(
            dataset=dataset, user=alice, model=planted["model"], threshold=1.0
        ).pk
    )

    assert frozenset({"v-00000", "v-00040", "v-00041"}) not in found_groups(dataset)


def test_it_resumes_after_a_crash_without_repeating_finished_batches(
    dataset: Dataset, alice: Any, planted: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(duplicates, "_BATCH", 10)
    asked: list[list[int]] = []
    real = candidates.near_pairs

    def crash_on_second_batch(run: Any, model: Any, item_ids: Any) -> Any:
        asked.append(list(item_ids))
        if len(asked) == 2:
            raise Crash()
        return real(run, model, item_ids)

    monkeypatch.setattr(candidates, "near_pairs", crash_on_second_batch)
    job = duplicates_job_start(dataset=dataset, user=alice, model=planted["model"])
    with pytest.raises(Crash):
        job_run(job_id=job.pk)
    assert job_run(job_id=job.pk).status == JobStatus.SUCCEEDED

    first_batch = set(asked[0])
    assert not first_batch & {i for batch in asked[2:] for i in batch}
    assert found_groups(dataset) == planted["groups"]
    assert DuplicateRun.objects.filter(dataset=dataset).count() == 1


def test_it_turns_groups_into_a_tag_and_a_keep_one_slice(
    dataset: Dataset, alice: Any, planted: dict[str, Any]
) -> None:
    job_run(job_id=duplicates_job_start(dataset=dataset, user=alice, model=planted["model"]).pk)
    extras = {m for members, (rep, _) in planted["groups"].items() for m in members if m != rep}

    tagged = duplicates_apply(
        dataset=dataset, user=alice, target="tag", name="duplicate", select="extras"
    )
    again = duplicates_apply(
        dataset=dataset, user=alice, target="tag", name="duplicate", select="extras"
    )
    kept = duplicates_apply(
        dataset=dataset, user=alice, target="slice", name="deduplicated", select="keep_one"
    )

    tag = Tag.objects.get(dataset=dataset, name="duplicate")
    assert set(tag.items.values_list("reference_id", flat=True)) == extras
    assert tagged["added"] == len(extras) and again["added"] == 0
    deduplicated = Slice.objects.get(dataset=dataset, name="deduplicated")
    everything = set(Item.objects.filter(dataset=dataset).values_list("reference_id", flat=True))
    assert set(deduplicated.items.values_list("reference_id", flat=True)) == everything - extras
    assert kept["added"] == len(everything) - len(extras)


def test_it_tags_the_members_of_chosen_groups_only(
    dataset: Dataset, alice: Any, planted: dict[str, Any]
) -> None:
    job_run(job_id=duplicates_job_start(dataset=dataset, user=alice, model=planted["model"]).pk)
    group = DuplicateGroup.objects.get(representative__reference_id="v-00041")

    duplicates_apply(
        dataset=dataset, user=alice, target="tag", name="n1", select="members", group_ids=[group.pk]
    )

    tag = Tag.objects.get(dataset=dataset, name="n1")
    assert set(tag.items.values_list("reference_id", flat=True)) == {
        "v-00000",
        "v-00040",
        "v-00041",
    }


def test_it_asks_the_hnsw_index_for_each_items_neighbours(dataset: Dataset, alice: Any) -> None:
    model = custom_model(dataset, DIM)
    items_with_vectors(dataset, model, clustered(3000, DIM, 30, seed=1))
    run = DuplicateRun.objects.create(dataset=dataset, model=model, threshold=0.95, neighbors=10)

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {near_pairs_sql(run, model)}", [[1, 2, 3], 0.05])
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert vec.index_name(model.pk, dataset.pk) in plan


def test_it_finds_the_demo_datasets_planted_duplicates(
    dataset: Dataset, alice: Any, tiny_clip: str, tmp_path: Any
) -> None:
    """Exact copies form exact groups; each near copy's nearest neighbour is its source.

    (With random weights a similarity threshold means nothing, so near copies are checked
    by rank rather than by the threshold.)
    """
    from curation.demo.dataset import demo_generate

    folder = tmp_path / "demo"
    demo_generate(folder=folder, count=100, seed=0, workers=1)
    truth = json.loads((folder / "truth.json").read_text())
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    items = items_with_images(
        dataset,
        len(rows),
        payloads=[(folder / r["image"]).read_bytes() for r in rows],
        reference_ids=[r["reference_id"] for r in rows],
    )
    assert job_run(job_id=embed_job_start(dataset=dataset, user=alice).pk).result["embedded"] == 100

    job_run(job_id=duplicates_job_start(dataset=dataset, user=alice, model=None).pk)

    exact = {frozenset({d["reference_id"], d["duplicate_of"]}) for d in truth["exact_duplicates"]}
    groups = found_groups(dataset)
    assert exact and {m for m, (_, kind) in groups.items() if kind == "exact"} == exact
    by_ref = {i.reference_id: i for i in items}
    model = EmbeddingModel.objects.get(random_weights=True)
    assert truth["near_duplicates"]
    for planted_copy in truth["near_duplicates"]:
        result = search_item(
            dataset=dataset, model=model, item=by_ref[planted_copy["reference_id"]], limit=1
        )
        assert result.items[result.hits[0].item_id].reference_id == planted_copy["duplicate_of"]
