"""What a run computes beside COCO's numbers, chunk by chunk in the same pass: TIDE's
error breakdown (evaluation.tide), the score histograms of true and false positives, and
the metrics per subset (a metadata value, a tag, a slice).

Memory: per evaluated detection, TIDE's data point (score, class, error type, fix: about
18 bytes); per subset, its item ids and a few counters. The per-subset AP re-accumulates
the run's own per-detection flags (evaluation.engine keeps them) over the subset's items.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from evaluation import matching, tide


class Match(Protocol):
    """An outcome row as evaluation.engine.Match has it (that module imports this one)."""

    @property
    def outcome(self) -> str: ...
    @property
    def item_id(self) -> int: ...
    @property
    def label(self) -> str: ...
    @property
    def error_type(self) -> str | None: ...


# Score histogram bins: 20 of width 0.05 over [0, 1] (a score outside is put in the end bin).
HISTOGRAM_BINS = 20
EDGES = np.arange(HISTOGRAM_BINS + 1) / HISTOGRAM_BINS  # bin i: EDGES[i] <= score < EDGES[i+1]


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def point(tp: int, fp: int, fn: int) -> dict[str, Any]:
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = None
    if precision is not None and recall is not None:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}


class Analysis:
    def __init__(self, use_cats: bool) -> None:
        self.use_cats = use_cats
        self.points: list[tuple[np.ndarray, ...]] = []
        self.missed: Counter[int] = Counter()
        self.errors: Counter[tuple[str, str]] = Counter()  # (label, type) of the rows
        self.hist: dict[tuple[int, bool], np.ndarray] = {}  # (code, is TP) -> counts
        self.subset_items: dict[str, list[np.ndarray]] = {}
        self.subset_positives: dict[str, dict[int, np.ndarray]] = {}
        self.subset_counts: dict[str, Counter[str]] = {}

    def add(
        self,
        gt: matching.Boxes,
        dt: matching.Boxes,
        found: matching.Matched,
        operating: int,
        score: np.ndarray,
        errors: tide.Errors,
        matches: Sequence[Match],
        subsets: dict[str, set[int]] | None,
    ) -> None:
        assert gt.crowd is not None
        tp = found.tp[:, 0, operating]
        evaluated = ~found.ignored[:, 0, operating]
        cat = dt.cat[found.dt_index] if self.use_cats else np.zeros(len(score), np.int64)
        fix_cat = errors.fix_cat if self.use_cats else cat
        self.points.append(
            (
                score[evaluated],
                cat[evaluated].astype(np.int32),
                errors.kind[evaluated],
                errors.fixes[evaluated],
                fix_cat[evaluated].astype(np.int32),
            )
        )
        g_cat = gt.cat if self.use_cats else np.zeros(len(gt.cat), np.int64)
        for code, n in zip(*np.unique(g_cat[errors.missed], return_counts=True), strict=True):
            self.missed[int(code)] += int(n)
        for m in matches:
            if m.error_type is not None:
                self.errors[m.label, m.error_type] += 1
        # Histograms: the detection's own class (what it was predicted as).
        d_cat = dt.cat[found.dt_index]
        bins = np.clip(np.searchsorted(EDGES, score, side="right") - 1, 0, HISTOGRAM_BINS - 1)
        for is_tp in (True, False):
            rows = evaluated & (tp == is_tp)
            for code in np.unique(d_cat[rows]).tolist():
                here = rows & (d_cat == code)
                counts = np.bincount(bins[here], minlength=HISTOGRAM_BINS)
                key = (int(code), is_tp)
                self.hist[key] = self.hist.get(key, 0) + counts
        if subsets:
            self._subsets(gt, g_cat, found, matches, subsets)

    def _subsets(
        self,
        gt: matching.Boxes,
        g_cat: np.ndarray,
        found: matching.Matched,
        matches: Sequence[Match],
        subsets: dict[str, set[int]],
    ) -> None:
        """Each subset's items, ground truth that counts (per class and area) and
        operating-point counts: the per-image matching is reused, never redone."""
        keys_of: dict[int, list[str]] = {}
        for key, members in subsets.items():
            ids = np.fromiter(members, np.int64, len(members))
            self.subset_items.setdefault(key, []).append(ids)
            rows = np.isin(gt.image, ids)
            positives = self.subset_positives.setdefault(key, {})
            for code in np.unique(g_cat[rows]).tolist():
                here = found.gt_counts[rows & (g_cat == code)].sum(0)
                positives[int(code)] = positives.get(int(code), 0) + here
            self.subset_counts.setdefault(key, Counter())
            for item in members:
                keys_of.setdefault(item, []).append(key)
        for m in matches:
            for key in keys_of.get(m.item_id, ()):
                self.subset_counts[key][m.outcome] += 1

    def result(
        self,
        names: dict[int, str],
        fg: float,
        positives: dict[int, int],
        counts: Counter[tuple[str, str]],
        subset_stats: Callable[[np.ndarray, dict[int, np.ndarray]], list[float]],
    ) -> dict[str, Any]:
        return {
            "errors": self._errors(names, fg, positives),
            "score_histograms": self._histograms(names, counts),
            "subsets": self._subset_rows(subset_stats),
        }

    def _errors(
        self, names: dict[int, str], fg: float, positives: dict[int, int]
    ) -> dict[str, Any]:
        if self.points:
            score, cat, kind, fixes, fix_cat = (
                np.concatenate(c) for c in zip(*self.points, strict=True)
            )
        else:
            score, cat, fix_cat = np.zeros(0), np.zeros(0, np.int32), np.zeros(0, np.int32)
            kind, fixes = np.zeros(0, np.uint8), np.zeros(0, bool)
        ap, dap = tide.breakdown(
            tide.Points(score, cat, kind, fixes, fix_cat), positives, dict(self.missed)
        )
        labels = sorted({label for label, _ in self.errors})
        return {
            "fg_iou": fg,
            "bg_iou": tide.BACKGROUND_IOU,
            "ap": ap,
            "types": [
                {
                    "type": name,
                    "count": sum(c for (_, t), c in self.errors.items() if t == name),
                    "dap": dap[name],
                }
                for name in tide.TYPES
            ],
            "per_class": [
                {"label": label, **{t: self.errors[label, t] for t in tide.TYPES}}
                for label in labels
            ],
        }

    def _histograms(
        self, names: dict[int, str], counts: Counter[tuple[str, str]]
    ) -> dict[str, Any]:
        zero = np.zeros(HISTOGRAM_BINS, np.int64)
        labels = sorted({names[code] for code, _ in self.hist})
        codes = {names[code]: code for code, _ in self.hist}
        per_class = [
            {
                "label": label,
                "tp": [int(v) for v in self.hist.get((codes[label], True), zero)],
                "fp": [int(v) for v in self.hist.get((codes[label], False), zero)],
            }
            for label in labels
        ]
        total_tp = sum((np.asarray(r["tp"]) for r in per_class), zero)
        total_fp = sum((np.asarray(r["fp"]) for r in per_class), zero)
        return {
            "edges": [float(e) for e in EDGES],
            "tp": [int(v) for v in total_tp],
            "fp": [int(v) for v in total_fp],
            "per_class": per_class,
        }

    def _subset_rows(
        self, subset_stats: Callable[[np.ndarray, dict[int, np.ndarray]], list[float]]
    ) -> list[dict[str, Any]]:
        rows = []
        for key, parts in self.subset_items.items():
            items = np.concatenate(parts) if parts else np.zeros(0, np.int64)
            stats = subset_stats(items, self.subset_positives.get(key, {}))
            c = self.subset_counts.get(key, Counter())
            rows.append(
                {
                    "key": key,
                    "items": len(items),
                    "map": stats[0],
                    "map_50": stats[1],
                    **point(c["tp"], c["fp"], c["fn"]),
                }
            )
        return rows
