"""Autotag on constructed vectors whose answer is known: a separable cluster is found, a
second round with the curator's corrections improves an ambiguous case, the SQL scores
are sklearn's, and the scores are a query field and a sort key."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from curation.jobs import job_run
from curation.models import Dataset, Item, JobStatus
from curation.query import compile_query, sort_expression
from curation.vocabulary import query_completion
from embeddings import autotag
from embeddings.autotag import ExampleSource, autotag_create, autotag_round_next
from embeddings.autotag_selectors import borderline, histogram, top_unlabelled
from embeddings.models import Autotag, AutotagRound, AutotagScore, Embedding
from tests.embedding_factories import custom_model, items_with_vectors

DIM = 16


class Crash(BaseException):
    pass


def separable(rng: np.random.Generator) -> np.ndarray:
    """200 items in random directions orthogonal to e0, then 30 tight around e0 (the tag):
    a hyperplane separates them."""
    background = rng.normal(size=(200, DIM)).astype(np.float32)
    background[:, 0] = 0.0
    cluster = np.eye(DIM, dtype=np.float32)[0] + 0.08 * rng.normal(size=(30, DIM)).astype(
        np.float32
    )
    return np.vstack([background, cluster])


def ambiguous(rng: np.random.Generator) -> np.ndarray:
    """200 in random directions, then 30 of the tag (u + a) and 30 look-alikes (u + b):
    both share u, so a few positives alone cannot tell them apart."""
    e = np.eye(DIM, dtype=np.float32)
    u, a, b = e[0], e[1], e[2]
    background = rng.normal(size=(200, DIM)).astype(np.float32)
    tag = u + 0.25 * a + 0.08 * rng.normal(size=(30, DIM)).astype(np.float32)
    alike = u + 0.25 * b + 0.08 * rng.normal(size=(30, DIM)).astype(np.float32)
    return np.vstack([background, tag, alike])


def finished(job_id: int) -> None:
    job = job_run(job_id=job_id)
    assert job is not None and job.status == JobStatus.SUCCEEDED, job and job.message


def ranked(tag: Autotag) -> list[int]:
    """Item ids, best score first."""
    tag.refresh_from_db()
    rows = AutotagScore.objects.filter(round_id=tag.scored_round_id).order_by("-score", "item_id")
    return list(rows.values_list("item_id", flat=True))


def refs(items: list[Item]) -> list[str]:
    return [i.reference_id for i in items]


def test_a_separable_cluster_is_the_top_of_the_scores(dataset: Dataset, alice: Any) -> None:
    model = custom_model(dataset, DIM)
    items = items_with_vectors(dataset, model, separable(np.random.default_rng(1)))
    cluster = {i.pk for i in items[200:]}
    tag, first, job = autotag_create(
        dataset=dataset,
        user=alice,
        name="rain",
        model=model,
        positives=ExampleSource(reference_ids=refs(items[200:205])),
    )
    assert first.number == 1 and first.status == AutotagRound.Status.SCORING
    assert tag.scored_round_id is None
    finished(job.pk)
    first.refresh_from_db()
    assert first.status == AutotagRound.Status.SCORED and first.item_count == 230
    assert set(ranked(tag)[:30]) == cluster
    # What the round kept: the examples, the random negatives it drew (none an example),
    # the weights, and its metrics.
    assert len(first.positives) == 5 and first.negatives == []
    assert len(first.sampled_negatives) == autotag.SAMPLED_MIN
    assert not set(first.sampled_negatives) & set(first.positives)
    assert len(first.weights) == DIM
    assert first.metrics["train_accuracy_examples"] == 1.0
    assert first.metrics["loo_accuracy"] is not None
    scores = dict(AutotagScore.objects.values_list("item_id", "score"))
    assert all(0.0 <= s <= 1.0 for s in scores.values())
    assert min(scores[i] for i in cluster) > 0.5 > max(scores[i] for i in set(scores) - cluster)


def _precision(tag: Autotag, wanted: set[int], among: int) -> float:
    return len(set(ranked(tag)[:among]) & wanted) / among


def test_a_round_of_corrections_improves_an_ambiguous_case(dataset: Dataset, alice: Any) -> None:
    model = custom_model(dataset, DIM)
    items = items_with_vectors(dataset, model, ambiguous(np.random.default_rng(2)))
    wanted = {i.pk for i in items[200:230]}
    tag, _, job = autotag_create(
        dataset=dataset,
        user=alice,
        name="rain",
        model=model,
        positives=ExampleSource(reference_ids=refs(items[200:202])),
    )
    finished(job.pk)
    before = _precision(tag, wanted, 30)
    assert before < 0.9  # the look-alikes score as high as the tag
    # The curator goes through the top unlabelled items: confirms the tag, rejects the rest.
    shown = top_unlabelled(autotag=tag, limit=24)
    confirmed = [s.item.reference_id for s in shown if s.item.pk in wanted]
    rejected = [s.item.reference_id for s in shown if s.item.pk not in wanted]
    assert rejected  # there was something to correct
    second, job = autotag_round_next(
        autotag=tag,
        user=alice,
        positives=ExampleSource(reference_ids=confirmed),
        negatives=ExampleSource(reference_ids=rejected),
    )
    finished(job.pk)
    assert second.number == 2 and len(second.negatives) == len(rejected)
    after = _precision(tag, wanted, 30)
    assert after > before and after >= 0.9, (before, after)
    # The first round's rows went when the second's were complete.
    assert set(AutotagScore.objects.values_list("round_id", flat=True)) == {second.pk}


def test_the_sql_scores_are_sklearns_predict_proba(dataset: Dataset, alice: Any) -> None:
    model = custom_model(dataset, DIM)
    items = items_with_vectors(dataset, model, ambiguous(np.random.default_rng(3)))
    _tag, first, job = autotag_create(
        dataset=dataset,
        user=alice,
        name="rain",
        model=model,
        positives=ExampleSource(reference_ids=refs(items[200:206])),
        negatives=ExampleSource(reference_ids=refs(items[230:233])),
    )
    finished(job.pk)
    first.refresh_from_db()
    vectors = {
        i: np.asarray(v, dtype=np.float64)
        for i, v in Embedding.objects.filter(model=model).values_list("item_id", "vector")
    }
    rows = first.positives + first.negatives + first.sampled_negatives
    y = [1] * len(first.positives) + [0] * (len(rows) - len(first.positives))
    reference = LogisticRegression(
        C=autotag.REGULARISATION_C, class_weight="balanced", max_iter=2000
    ).fit(np.stack([vectors[i] for i in rows]), y)
    ids = sorted(vectors)
    expected = reference.predict_proba(np.stack([vectors[i] for i in ids]))[:, 1]
    stored = dict(AutotagScore.objects.filter(round=first).values_list("item_id", "score"))
    got = np.array([stored[i] for i in ids])
    assert np.max(np.abs(got - expected)) < 1e-5
    assert np.ptp(expected) > 0.5  # not a flat answer that any formula would match


def test_the_scores_are_a_query_field_and_a_sort_key(dataset: Dataset, alice: Any) -> None:
    model = custom_model(dataset, DIM)
    items = items_with_vectors(dataset, model, separable(np.random.default_rng(4)))
    tag, _, job = autotag_create(
        dataset=dataset,
        user=alice,
        name="heavy rain",
        model=model,
        positives=ExampleSource(reference_ids=refs(items[200:204])),
    )
    finished(job.pk)
    tag.refresh_from_db()
    scores = dict(AutotagScore.objects.values_list("item_id", "score"))

    def matching(query: str) -> set[int]:
        return set(
            Item.objects.filter(compile_query(query, dataset=dataset)).values_list("id", flat=True)
        )

    assert matching('autotag["heavy rain"] > 0.8') == {i for i, s in scores.items() if s > 0.8}
    assert matching('autotag["heavy rain"] <= 0.5') == {i for i, s in scores.items() if s <= 0.5}
    assert matching('autotag["heavy rain"] > 0.5') == {i.pk for i in items[200:]}
    order = sort_expression('autotag["heavy rain"]', dataset=dataset)
    best = list(
        Item.objects.filter(dataset=dataset)
        .annotate(v=order)
        .order_by("-v", "id")
        .values_list("id", flat=True)[:30]
    )
    assert set(best) == {i.pk for i in items[200:]}
    # The query bar completes the autotags' names in the brackets.
    found = query_completion("autotag[hea", 11, dataset=dataset)
    assert [x.text for x in found.suggestions] == ['"heavy rain"]']
    # The histogram's bars count every item, each bar a grid link on its range.
    bars = histogram(autotag=tag)
    assert sum(b.count for b in bars) == 230
    assert "autotag%5B%22heavy+rain%22%5D" in bars[-1].url
    near = borderline(autotag=tag, limit=6)
    assert len(near) == 6 and all(s.label is None for s in near)
    assert max(abs(s.score - 0.5) for s in near) <= min(
        abs(scores[i] - 0.5)
        for i in set(scores) - {s.item.pk for s in near} - set(tag.rounds.get().positives)
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("autotag[nope] > 0.5", "No autotag named 'nope'"),
        ("autotag[rain] > 'high'", "compare it with a number"),
        ("autotag[rain].x > 0.5", "no sub-fields"),
    ],
)
def test_bad_autotag_conditions_say_why(
    dataset: Dataset, alice: Any, query: str, message: str
) -> None:
    model = custom_model(dataset, DIM)
    items = items_with_vectors(dataset, model, separable(np.random.default_rng(5)))
    _tag, _, job = autotag_create(
        dataset=dataset,
        user=alice,
        name="rain",
        model=model,
        positives=ExampleSource(reference_ids=refs(items[200:202])),
    )
    finished(job.pk)
    with pytest.raises(Exception) as caught:
        Item.objects.filter(compile_query(query, dataset=dataset)).count()
    assert message in str(caught.value)


def test_an_autotag_before_its_scores_says_so(dataset: Dataset, alice: Any) -> None:
    model = custom_model(dataset, DIM)
    items = items_with_vectors(dataset, model, separable(np.random.default_rng(6)))
    autotag_create(
        dataset=dataset,
        user=alice,
        name="rain",
        model=model,
        positives=ExampleSource(reference_ids=refs(items[200:202])),
    )
    with pytest.raises(Exception) as caught:
        compile_query("autotag[rain] > 0.5", dataset=dataset)
    assert "no scores yet" in str(caught.value)


def test_the_scoring_job_resumes_where_it_stopped(
    dataset: Dataset, alice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = custom_model(dataset, DIM)
    items = items_with_vectors(dataset, model, separable(np.random.default_rng(7)))
    monkeypatch.setattr(autotag, "_CHUNK", 100)
    _tag, first, job = autotag_create(
        dataset=dataset,
        user=alice,
        name="rain",
        model=model,
        positives=ExampleSource(reference_ids=refs(items[200:203])),
    )
    real = autotag.chunk_score
    asked: list[tuple[int, int]] = []

    def crash_on_second_chunk(round_: Any, weights: str, low: int, high: int) -> int:
        asked.append((low, high))
        if len(asked) == 2:
            raise Crash()
        return real(round_, weights, low, high)

    monkeypatch.setattr(autotag, "chunk_score", crash_on_second_chunk)
    with pytest.raises(Crash):
        job_run(job_id=job.pk)
    assert AutotagScore.objects.count() == 100  # the first chunk committed with its checkpoint
    finished(job.pk)
    assert AutotagScore.objects.count() == 230
    assert asked[2][0] == asked[0][1]  # resumed after the first chunk, not from the start
    first.refresh_from_db()
    assert first.status == AutotagRound.Status.SCORED and first.item_count == 230


def test_the_scores_are_a_grid_facet_whose_buckets_narrow_the_grid(
    dataset: Dataset, alice: Any
) -> None:
    from django.test import Client

    from tests.ui_factories import check_score_facet

    model = custom_model(dataset, DIM)
    # 60 of the background and the 30 of the tag: every bucket fits on one grid page.
    items = items_with_vectors(dataset, model, separable(np.random.default_rng(6))[140:])
    _, _, job = autotag_create(
        dataset=dataset,
        user=alice,
        name="rain",
        model=model,
        positives=ExampleSource(reference_ids=refs(items[60:64])),
    )
    finished(job.pk)
    values = dict(AutotagScore.objects.values_list("item_id", "score"))
    client = Client()
    client.force_login(alice)
    bins = check_score_facet(client, dataset, 'autotag["rain"]', values)
    assert [text for text, _, _, _ in bins][-1] == "≥ 0.9"
    assert len({count for _, count, _, _ in bins}) > 1  # spread over the buckets
