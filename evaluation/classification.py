"""Classification metrics: each item's category ground truth against the model's category
prediction, and each item's outcome.

An item is scored when it has a `category` annotation (its first one, by id, when it
has several: a warning says how many). Its prediction is the model's `category`
prediction of the highest confidence (the first by id among equal ones); an item
without one is wrong, and counts in the confusion matrix's "no prediction" column. Class
scores for top-k accuracy are the `scores` object (`{label: score}`) in that
prediction's metadata.

The numbers are scikit-learn's, with undefined ratios 0 (its zero_division=0):
`accuracy_score`, `precision_recall_fscore_support` over the labels of either side
(sorted; a missing prediction counts as no label), their macro and weighted averages,
`confusion_matrix` with the labels and then "no prediction", and `top_k_accuracy_score`
(ties in the scores ranked as it ranks them). tests/test_evaluation_classification.py
checks them against scikit-learn on seeded random data.

Outcomes are the detection run's rows, per item: a correct item is a `tp` of its label
(annotation and prediction); a wrong one an `fn` of its true label (the annotation) and,
when it has a prediction, an `fp` of the predicted label. So `eval[run].fp.car` finds the
items predicted car that are not car, `eval[run].fn.car` the cars predicted otherwise.

Fed in chunks of items like the detection engine; memory holds the confusion counts.
This module knows nothing of the database (evaluation.shapes reads the categories).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from evaluation.engine import Match, Result

NO_PREDICTION = "no prediction"


@dataclass(frozen=True, slots=True)
class Truth:
    item_id: int
    annotation_id: int | None  # None: a frozen version's annotation since deleted
    label: str


@dataclass(frozen=True, slots=True)
class Guess:
    item_id: int
    prediction_id: int
    label: str  # after the label mapping
    score: float
    scores: dict[str, float] | None = None  # class scores (labels mapped), when given


def _ratio(a: float, b: float) -> float:
    """scikit-learn's zero_division=0."""
    return a / b if b else 0.0


def _f1(precision: float, recall: float) -> float:
    return _ratio(2 * precision * recall, precision + recall)


def _rank(scores: dict[str, float], labels: list[str]) -> list[str]:
    """Labels by score descending as top_k_accuracy_score ranks them: a stable ascending
    sort over the sorted labels, reversed (equal scores: the later label first). Labels
    the scores leave out come last."""
    known = [label for label in labels if label in scores]
    ascending = sorted(range(len(known)), key=lambda i: scores[known[i]])
    return [known[i] for i in reversed(ascending)]


class Classification:
    """A classification run, fed its items in chunks (`add`), then `result`."""

    def __init__(self, top_k: Sequence[int]) -> None:
        self.top_k = tuple(top_k)
        self.cells: Counter[tuple[str, str]] = Counter()  # (truth, prediction)
        self.items = self.unlabelled = self.multiple = self.unpredicted = 0
        self.hits: Counter[int] = Counter()  # k -> scored items with the truth in the top k
        self.scored = 0  # scored items whose prediction has class scores

    def add(
        self, item_ids: Iterable[int], truths: Sequence[Truth], guesses: Sequence[Guess]
    ) -> list[Match]:
        """The chunk's outcomes. `truths` and `guesses` in id order."""
        truth: dict[int, Truth] = {}
        seen: Counter[int] = Counter()
        for first in truths:
            truth.setdefault(first.item_id, first)
            seen[first.item_id] += 1
        guess: dict[int, Guess] = {}
        for one in guesses:
            best = guess.get(one.item_id)
            if best is None or one.score > best.score:
                guess[one.item_id] = one
        self.multiple += sum(1 for n in seen.values() if n > 1)
        matches: list[Match] = []
        for item in sorted(set(item_ids)):
            self.items += 1
            found = truth.get(item)
            if found is None:
                self.unlabelled += 1
                continue
            t = found
            g = guess.get(item)
            if g is None:
                self.unpredicted += 1
                self.cells[t.label, NO_PREDICTION] += 1
                matches.append(Match("fn", item, t.label, t.annotation_id))
                continue
            self.cells[t.label, g.label] += 1
            if g.scores is not None:
                self.scored += 1
                top = _top(g.scores, max(self.top_k, default=0))
                self.hits.update(k for k in self.top_k if t.label in top[:k])
            if g.label == t.label:
                matches.append(
                    Match("tp", item, t.label, t.annotation_id, g.prediction_id, g.score)
                )
            else:
                matches.append(Match("fn", item, t.label, t.annotation_id))
                matches.append(Match("fp", item, g.label, None, g.prediction_id, g.score))
        return matches

    def result(self) -> Result:
        truths = {t for t, _ in self.cells}
        predicted = {p for _, p in self.cells if p != NO_PREDICTION}
        labels = sorted(truths | predicted)
        n = sum(self.cells.values())
        correct = sum(c for (t, p), c in self.cells.items() if t == p)
        per_class = []
        for label in labels:
            tp = self.cells[label, label]
            support = sum(c for (t, _), c in self.cells.items() if t == label)
            called = sum(c for (_, p), c in self.cells.items() if p == label)
            precision, recall = _ratio(tp, called), _ratio(tp, support)
            per_class.append(
                {
                    "label": label,
                    "precision": precision,
                    "recall": recall,
                    "f1": _f1(precision, recall),
                    "support": support,
                    "tp": tp,
                    "fp": called - tp,
                    "fn": support - tp,
                }
            )
        axis = [*labels, NO_PREDICTION]
        metrics: dict[str, Any] = {
            "accuracy": _ratio(correct, n) if n else None,
            "items": n,
            "correct": correct,
            "per_class": per_class,
            "macro": _average(per_class, weighted=False),
            "weighted": _average(per_class, weighted=True),
            "confusion": {
                "labels": labels,
                "axis": axis,
                "matrix": [[self.cells[t, p] for p in axis] for t in axis],
            },
        }
        if self.scored:
            metrics["top_k"] = {str(k): _ratio(self.hits[k], n) for k in self.top_k}
        return Result(metrics=metrics, warnings=self._warnings(n))

    def _warnings(self, n: int) -> list[str]:
        warnings = []
        if not n:
            warnings.append(
                "No item here has a category annotation: there is nothing to classify, and "
                "accuracy, precision and recall are undefined (null)."
            )
        if self.unlabelled and n:
            warnings.append(
                f"{self.unlabelled} of {self.items} items have no category annotation and "
                "were not scored."
            )
        if self.multiple:
            warnings.append(
                f"{self.multiple} items have more than one category annotation: the first "
                "(by id) was used."
            )
        if self.unpredicted:
            warnings.append(
                f"{self.unpredicted} scored items have no category prediction of the model: "
                f"each is wrong (the confusion matrix's '{NO_PREDICTION}' column)."
            )
        if self.scored and self.scored < n:
            warnings.append(
                f"Only {self.scored} of {n} scored items have class scores: top-k accuracy "
                "counts the others as misses."
            )
        return warnings


def _top(scores: dict[str, float], k: int) -> list[str]:
    return _rank(scores, sorted(scores))[:k]


def _average(rows: list[dict[str, Any]], *, weighted: bool) -> dict[str, float | None]:
    """scikit-learn's average="macro" (unweighted mean over the labels) or "weighted"
    (by support)."""
    if not rows:
        return {"precision": None, "recall": None, "f1": None}
    weights = [r["support"] if weighted else 1 for r in rows]
    total = sum(weights)
    return {
        key: _ratio(sum(w * r[key] for w, r in zip(weights, rows, strict=True)), total)
        for key in ("precision", "recall", "f1")
    }
