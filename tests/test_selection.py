"""Selection strategies on constructed data whose answer is known: five tight clusters of
unequal sizes along orthogonal axes, each cluster's items labelled with its class."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from curation.jobs import job_run
from curation.models import (
    Annotation,
    Dataset,
    Item,
    JobStatus,
    Model,
    Prediction,
    Slice,
    SliceItem,
)
from insights.models import ItemScore, ItemUncertainty
from insights.uniqueness import scores_job_start
from selection import kcenter
from selection.engine import rank01, water_fill
from selection.services import picked_ids
from tests.embedding_factories import custom_model, items_with_vectors

DIM = 16
SIZES = (200, 40, 20, 10, 5)


def clusters() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    which = np.repeat(np.arange(len(SIZES)), SIZES)
    points = np.eye(DIM, dtype=np.float32)[which] + 0.02 * rng.normal(size=(len(which), DIM))
    return points.astype(np.float32), which


@pytest.fixture(name="world")
def world_fixture(dataset: Dataset) -> dict[str, Any]:
    points, which = clusters()
    model = custom_model(dataset, DIM)
    weather = ["fog" if i % 25 == 0 else "sun" for i in range(len(points))]
    items = items_with_vectors(dataset, model, points, metadata=[{"weather": w} for w in weather])
    Annotation.objects.bulk_create(
        Annotation(
            dataset=dataset,
            item=item,
            annotation_id=f"a{item.pk}",
            kind="category",
            label=f"class{c}",
        )
        for item, c in zip(items, which, strict=True)
    )
    cluster_of = {item.pk: int(c) for item, c in zip(items, which, strict=True)}
    return {"model": model, "items": items, "cluster_of": cluster_of, "weather": weather}


def pick(dataset: Dataset, **recipe: Any) -> list[int]:
    return [int(i) for i in picked_ids(dataset=dataset, data=recipe)]


def test_diversity_picks_from_every_cluster(dataset: Dataset, world: dict[str, Any]) -> None:
    for dims in (64, 4):  # as stored (16-d), and reduced by PCA to 4
        got = pick(dataset, strategies=[{"name": "diversity", "dims": dims}], budget=5)
        assert sorted(world["cluster_of"][i] for i in got) == [0, 1, 2, 3, 4], dims
    # A random five of the same pool misses the small clusters (here: 3 of them).
    random = pick(dataset, strategies=[{"name": "random"}], budget=5)
    assert len({world["cluster_of"][i] for i in random}) < 5


def test_balance_equalises_classes(dataset: Dataset, world: dict[str, Any]) -> None:
    got = pick(dataset, strategies=[{"name": "balance"}], budget=25)
    counts = np.bincount([world["cluster_of"][i] for i in got], minlength=5)
    assert counts.tolist() == [5, 5, 5, 5, 5]
    # With diversity too: the same counts, each class's picks spread within it.
    both = pick(dataset, strategies=[{"name": "balance"}, {"name": "diversity"}], budget=10)
    counts = np.bincount([world["cluster_of"][i] for i in both], minlength=5)
    assert counts.tolist() == [2, 2, 2, 2, 2] and len(set(both)) == 10
    # The smallest class (5 items) cannot give more: the rest is spread evenly.
    got = pick(dataset, strategies=[{"name": "balance"}], budget=40)
    counts = np.bincount([world["cluster_of"][i] for i in got], minlength=5)
    assert counts.tolist() == [9, 9, 9, 8, 5]


def test_exclusion_respects_the_slice(dataset: Dataset, world: dict[str, Any]) -> None:
    items, cluster_of = world["items"], world["cluster_of"]
    labelled = Slice.objects.create(dataset=dataset, name="labelled")
    cluster1 = [i for i in items if cluster_of[i.pk] == 1]
    SliceItem.objects.bulk_create(SliceItem(slice=labelled, item=i) for i in cluster1[:3])
    near = pick(
        dataset,
        strategies=[
            {"name": "diversity"},
            {"name": "exclude", "slice": "labelled", "radius": 0.05},
        ],
        budget=4,
    )
    # Cluster 1 is near the labelled items: the four picks cover the four others.
    assert sorted(cluster_of[i] for i in near) == [0, 2, 3, 4]
    # Radius 0: only the slice's own items are out; the rest of cluster 1 may be picked.
    own = pick(
        dataset,
        strategies=[{"name": "random"}, {"name": "exclude", "slice": "labelled"}],
        budget=len(items) - 3,
    )
    assert set(own) == {i.pk for i in items} - {i.pk for i in cluster1[:3]}


def test_same_seed_same_items_another_seed_others(dataset: Dataset, world: dict[str, Any]) -> None:
    for strategies in ([{"name": "random"}], [{"name": "diversity"}, {"name": "random"}]):
        a = pick(dataset, strategies=strategies, budget=20, seed=7)
        assert pick(dataset, strategies=strategies, budget=20, seed=7) == a
        assert set(pick(dataset, strategies=strategies, budget=20, seed=8)) != set(a)


def test_combined_weights_draw_candidates_by_score(dataset: Dataset, world: dict[str, Any]) -> None:
    items, cluster_of = world["items"], world["cluster_of"]
    detector = Model.objects.create(dataset=dataset, name="detector")
    # Margin rises with the item's position: cluster 0 (the first 200) is the most unsure.
    ItemUncertainty.objects.bulk_create(
        ItemUncertainty(
            model=detector,
            item=item,
            predictions=1,
            entropy_mean=0.5,
            entropy_max=0.5,
            margin=n / len(items),
            least_confidence=0.5,
            low_confidence=0,
        )
        for n, item in enumerate(items)
    )
    unsure = {"name": "uncertainty", "model": "detector"}
    alone = pick(dataset, strategies=[unsure], budget=10)
    assert alone == [i.pk for i in items[:10]]  # smallest margin first
    both = pick(
        dataset,
        strategies=[unsure, {"name": "diversity"}],
        weights={"uncertainty": 1, "diversity": 3},
        budget=10,
    )
    # Candidates: the budget + 3/4 of the rest by uncertainty (10 + 199 = the first 209).
    assert {i.pk for i in items[:209]} >= set(both)
    assert {cluster_of[i] for i in both} == {0, 1}  # diversity reaches into cluster 1
    # Diversity's weight at 0 leaves uncertainty alone.
    zero = pick(
        dataset,
        strategies=[unsure, {"name": "diversity"}],
        weights={"diversity": 0},
        budget=10,
    )
    assert zero == alone


def test_similarity_and_metadata(dataset: Dataset, world: dict[str, Any]) -> None:
    items, cluster_of = world["items"], world["cluster_of"]
    positives = Slice.objects.create(dataset=dataset, name="positives")
    cluster3 = [i for i in items if cluster_of[i.pk] == 3]
    SliceItem.objects.bulk_create(SliceItem(slice=positives, item=i) for i in cluster3[:2])
    got = pick(dataset, strategies=[{"name": "similarity", "slice": "positives"}], budget=10)
    assert set(got) == {i.pk for i in cluster3}
    fog = pick(
        dataset,
        strategies=[{"name": "metadata", "key": "weather", "values": {"fog": 1}}],
        budget=world["weather"].count("fog"),
    )
    assert {Item.objects.get(pk=i).metadata["weather"] for i in fog} == {"fog"}


def test_batched_kcenter_is_the_exact_greedy() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 8)).astype(np.float32)
    exact = kcenter.kcenter_naive(x, 300, 0).tolist()
    for groups in (1, 16):  # without and with the pruning by groups
        picks, radius = kcenter.kcenter_greedy(x, 300, 0, round_size=32, groups=groups)
        assert picks.tolist() == exact
        assert radius == pytest.approx(kcenter.coverage_radius(x, picks), rel=1e-5)
    # Ten points, each five times: ten distinct picks first, then the copies, none twice.
    copies = np.repeat(rng.normal(size=(10, 4)).astype(np.float32), 5, axis=0)
    picks, radius = kcenter.kcenter_greedy(copies, 30, 0, groups=3)
    assert len(set(picks.tolist())) == 30 and radius == 0.0
    assert len({tuple(copies[i]) for i in picks[:10]}) == 10


def test_rank_and_water_fill() -> None:
    assert rank01(np.array([3.0, np.nan, 1.0, 3.0])).tolist() == [0.75, 0.0, 0.0, 0.75]
    assert water_fill({"a": 100, "b": 3, "c": 10}, 15) == {"a": 6, "b": 3, "c": 6}


def test_uniqueness_reads_the_insights_scores(
    dataset: Dataset, world: dict[str, Any], alice: Any
) -> None:
    job = job_run(
        job_id=scores_job_start(dataset=dataset, user=alice, model=world["model"], neighbors=5).pk
    )
    assert job is not None and job.status == JobStatus.SUCCEEDED, job and job.message
    got = pick(dataset, strategies=[{"name": "uniqueness"}], budget=5)
    ranked = ItemScore.objects.order_by("-uniqueness", "item_id").values_list(
        "item_id", "uniqueness"
    )
    scores = dict(ranked)
    fifth = sorted(scores.values(), reverse=True)[4]
    assert all(scores[i] >= fifth for i in got)
    typical = pick(
        dataset, strategies=[{"name": "uniqueness", "field": "representativeness"}], budget=5
    )
    assert not set(typical) & set(got)


def test_balance_by_a_models_predictions(dataset: Dataset, world: dict[str, Any]) -> None:
    items, cluster_of = world["items"], world["cluster_of"]
    detector = Model.objects.create(dataset=dataset, name="detector")
    # The model sees two classes: "small" on clusters 3 and 4 (15 items), "big" elsewhere.
    Prediction.objects.bulk_create(
        Prediction(
            model=detector,
            item=item,
            prediction_id=f"p{item.pk}",
            kind="category",
            label="small" if cluster_of[item.pk] >= 3 else "big",
            confidence=0.9,
        )
        for item in items
    )
    got = pick(
        dataset,
        strategies=[{"name": "balance", "source": "predictions", "model": "detector"}],
        budget=20,
    )
    assert sum(cluster_of[i] >= 3 for i in got) == 10
