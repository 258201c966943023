"""Classification runs (evaluation.classification) against scikit-learn on seeded random
data: accuracy, per-class precision/recall/F1 and support, their macro and weighted
averages, the confusion matrix (with its "no prediction" column) and top-k accuracy; the
per-item outcomes the job stores, and the query fields that find them."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)

from curation.models import Dataset, Model
from evaluation import scope, services
from evaluation.classification import NO_PREDICTION, Classification, Guess, Truth
from evaluation.engine import Result
from evaluation.models import EvaluationMatch
from tests.api_helpers import add_items
from tests.query_dataset import matching
from tests.test_evaluation import run_job

MODEL = "classifier"
LABELS = ["bird", "car", "cat", "dog", "truck"]  # truck: ground truth only
PREDICTED = ["bird", "car", "cat", "dog", "plane"]  # plane: predictions only
ALL = sorted(set(LABELS) | set(PREDICTED))


def random_data(
    seed: int, items: int = 300, scores: bool = True, unpredicted: float = 0.1
) -> tuple[list[int], list[Truth], list[Guess]]:
    rng = random.Random(seed)
    item_ids = list(range(1, items + 1))
    truths: list[Truth] = []
    guesses: list[Guess] = []
    for item in item_ids:
        if rng.random() < 0.05:
            continue  # no ground truth: not scored
        label = rng.choice(LABELS)
        truths.append(Truth(item, len(truths) + 1, label))
        if rng.random() < 0.03:  # a second category annotation: the first counts
            truths.append(Truth(item, len(truths) + 1, rng.choice(LABELS)))
        if rng.random() < unpredicted:
            continue
        # Two-decimal scores over every label: ties, as top_k_accuracy_score breaks them.
        class_scores = {name: round(rng.random(), 1) for name in ALL}
        guess = label if label in PREDICTED and rng.random() < 0.6 else rng.choice(PREDICTED)
        class_scores[guess] = 1.0
        guesses.append(Guess(item, len(guesses) + 1, guess, 0.9, class_scores if scores else None))
        if rng.random() < 0.1:  # a lower-scored second prediction: not the item's
            guesses.append(Guess(item, len(guesses) + 1, rng.choice(PREDICTED), 0.2))
    return item_ids, truths, guesses


def sklearn_data(
    item_ids: list[int], truths: list[Truth], guesses: list[Guess]
) -> tuple[list[str], list[str], list[dict[str, float] | None]]:
    """y_true, y_pred (NO_PREDICTION where none) and the class scores, per scored item."""
    truth: dict[int, str] = {}
    for t in truths:
        truth.setdefault(t.item_id, t.label)
    best: dict[int, Guess] = {}
    for g in guesses:
        if g.item_id not in best or g.score > best[g.item_id].score:
            best[g.item_id] = g
    scored = [i for i in item_ids if i in truth]
    y_pred = [best[i].label if i in best else NO_PREDICTION for i in scored]
    return (
        [truth[i] for i in scored],
        y_pred,
        [best[i].scores if i in best else None for i in scored],
    )


def evaluate(
    item_ids: list[int], truths: list[Truth], guesses: list[Guess], chunk: int = 10**9
) -> Result:
    evaluation = Classification(top_k=[2, 3])
    for start in range(0, len(item_ids), chunk):
        part = set(item_ids[start : start + chunk])
        evaluation.add(
            sorted(part),
            [t for t in truths if t.item_id in part],
            [g for g in guesses if g.item_id in part],
        )
    return evaluation.result()


def assert_sklearn(metrics: dict[str, Any], y_true: list[str], y_pred: list[str]) -> None:
    labels = sorted(set(y_true) | (set(y_pred) - {NO_PREDICTION}))
    assert [row["label"] for row in metrics["per_class"]] == labels
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-12)
    p, r, f, s = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    rows = metrics["per_class"]
    assert np.allclose([row["precision"] for row in rows], p, atol=1e-12, rtol=0)
    assert np.allclose([row["recall"] for row in rows], r, atol=1e-12, rtol=0)
    assert np.allclose([row["f1"] for row in rows], f, atol=1e-12, rtol=0)
    assert [row["support"] for row in rows] == list(s)
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=average, zero_division=0
        )
        ours = metrics[average]
        assert (ours["precision"], ours["recall"], ours["f1"]) == pytest.approx((p, r, f))
    axis = [*labels, NO_PREDICTION]
    assert metrics["confusion"]["axis"] == axis
    assert metrics["confusion"]["matrix"] == confusion_matrix(y_true, y_pred, labels=axis).tolist()


@pytest.mark.parametrize("seed", range(5))
def test_the_metrics_are_scikit_learns(seed: int) -> None:
    item_ids, truths, guesses = random_data(seed)
    result = evaluate(item_ids, truths, guesses)
    y_true, y_pred, _ = sklearn_data(item_ids, truths, guesses)
    assert_sklearn(result.metrics, y_true, y_pred)
    # The edge cases are in the data, so that the equality covers them.
    assert NO_PREDICTION in y_pred and {"truck", "plane"} <= set(y_true) | set(y_pred)
    assert any("no category prediction" in w for w in result.warnings)
    assert any("more than one category annotation" in w for w in result.warnings)
    assert any("have no category annotation" in w for w in result.warnings)
    # Chunks of items give the numbers of one chunk.
    assert evaluate(item_ids, truths, guesses, chunk=7).metrics == result.metrics


@pytest.mark.parametrize("seed", range(3))
def test_top_k_accuracy_is_scikit_learns(seed: int) -> None:
    item_ids, truths, guesses = random_data(10 + seed, unpredicted=0.0)
    result = evaluate(item_ids, truths, guesses)
    y_true, _, scores = sklearn_data(item_ids, truths, guesses)
    matrix = np.array([[s[label] for label in ALL] for s in scores if s is not None])
    for k in (2, 3):
        expected = top_k_accuracy_score(y_true, matrix, k=k, labels=ALL)
        assert result.metrics["top_k"][str(k)] == pytest.approx(expected, abs=1e-12)
    # Without class scores there is no top-k.
    item_ids, truths, guesses = random_data(seed, scores=False)
    assert "top_k" not in evaluate(item_ids, truths, guesses).metrics


def test_nothing_to_classify_gives_null_metrics_and_a_warning() -> None:
    result = evaluate([1, 2], [], [Guess(1, 1, "car", 0.9)])
    assert result.metrics["accuracy"] is None
    assert result.metrics["macro"] == {"precision": None, "recall": None, "f1": None}
    assert result.metrics["per_class"] == [] and result.warnings


def test_a_classification_run_stores_each_items_outcome_and_queries_find_them(
    dataset: Dataset, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    item_ids, truths, guesses = random_data(3, items=60)

    def category(obj: Truth | Guess, prefix: str) -> dict[str, Any]:
        shape: dict[str, Any] = {"id": f"{prefix}{obj.item_id}-{obj.label}-{id(obj)}",
                                 "kind": "category", "label": obj.label}  # fmt: skip
        if isinstance(obj, Guess):
            shape |= {"model": MODEL, "confidence": obj.score}
            shape["metadata"] = {"scores": obj.scores} if obj.scores else {}
        return shape

    add_items(
        dataset,
        *(
            {
                "reference_id": f"i{item:03d}",
                "annotations": [category(t, "a") for t in truths if t.item_id == item],
                "predictions": [category(g, "p") for g in guesses if g.item_id == item],
            }
            for item in item_ids
        ),
    )
    monkeypatch.setattr(scope, "CHUNK_ITEMS", 9)
    model = Model.objects.get(dataset=dataset, name=MODEL)
    run = run_job(
        services.evaluation_create(
            dataset=dataset,
            user=alice,
            name="cls",
            model_id=model.pk,
            task="classification",
            options={"top_k": [2]},
        )
    )
    y_true, y_pred, _ = sklearn_data(item_ids, truths, guesses)
    assert_sklearn(run.metrics, y_true, y_pred)
    assert "2" in run.metrics["top_k"]

    truth = {}
    for t in truths:
        truth.setdefault(t.item_id, t.label)
    best: dict[int, Guess] = {}
    for g in guesses:
        if g.item_id not in best or g.score > best[g.item_id].score:
            best[g.item_id] = g
    wrong = sorted(f"i{i:03d}" for i in truth if i not in best or best[i].label != truth[i])
    assert matching(dataset, 'eval["cls"].wrong >= 1') == wrong
    assert matching(dataset, 'eval["cls"].fn >= 1') == wrong
    correct = sorted(f"i{i:03d}" for i in truth if i not in wrong and f"i{i:03d}" not in wrong)
    assert matching(dataset, 'eval["cls"].correct = 1') == correct
    predicted_car = sorted(
        f"i{i:03d}" for i in truth if i in best and best[i].label == "car" and truth[i] != "car"
    )
    assert predicted_car and matching(dataset, 'eval["cls"].fp.car >= 1') == predicted_car
    # A wrong item's rows say what it was and what it was taken for.
    rows = EvaluationMatch.objects.filter(run=run)
    assert rows.count() == len(correct) + len(wrong) + sum(
        1 for i in truth if i in best and best[i].label != truth[i]
    )
    assert rows.filter(outcome="fp", annotation__isnull=False).count() == 0


def test_correct_and_wrong_are_for_classification_runs_only(dataset: Dataset, alice: User) -> None:
    from curation.query import QueryError, validate_query
    from tests.ui_factories import evaluated, outcome_world

    outcome_world(dataset)
    evaluated(dataset, alice, "base")
    with pytest.raises(QueryError, match="classification runs"):
        validate_query("eval[base].wrong >= 1", dataset=dataset)


def test_a_classification_run_on_a_dataset_of_boxes_finishes_with_a_warning(
    dataset: Dataset, alice: User, client: Any
) -> None:
    box = {"x": 0.0, "y": 0.0, "width": 50.0, "height": 50.0}
    add_items(
        dataset,
        {
            "reference_id": "a.jpg",
            "annotations": [{"id": "g", "kind": "box", "label": "car", "geometry": box}],
            "predictions": [
                {"kind": "box", "label": "car", "geometry": box, "confidence": 0.9, "model": MODEL}
            ],
        },
    )
    model = Model.objects.get(dataset=dataset, name=MODEL)
    run = run_job(
        services.evaluation_create(
            dataset=dataset, user=alice, name="cls", model_id=model.pk, task="classification"
        )
    )
    assert run.metrics["accuracy"] is None and run.metrics["per_class"] == []
    assert any("No item here has a category annotation" in w for w in run.warnings)
    assert not EvaluationMatch.objects.filter(run=run).exists()
    client.force_login(alice)
    page = client.get(f"/datasets/{dataset.pk}/evaluations/{run.pk}/")
    assert page.status_code == 200
    assert "No item here has a category annotation" in page.content.decode()
