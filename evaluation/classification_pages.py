"""What the page of a classification run shows, shaped from its stored metrics (no
queries): accuracy, the averages and top-k, the per-class table, and the confusion
matrix whose every non-zero cell opens the grid on exactly its items.

A classification run stores one TP row per correct item and, per wrong item, an FN row
of its true label and an FP row of the predicted one (none when it has no prediction;
evaluation.classification). So each cell is a query of the run: (t, t) is
`tp.t >= 1`, (t, p) is `fn.t >= 1 and fp.p >= 1`, (t, no prediction) is
`fn.t >= 1 and fp = 0`. The view is evaluation/ui.py, the template
templates/ui/evaluation_classification.html.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from curation.query.parser import quote_name
from evaluation.classification import NO_PREDICTION
from evaluation.models import EvaluationRun
from evaluation.pages import Cell, Count, grid_url, number, outcome_query


@dataclass
class ClassRow:
    label: str
    precision: str
    recall: str
    f1: str
    support: int
    tp: Count
    fp: Count
    fn: Count


@dataclass
class ClassificationPage:
    run: EvaluationRun
    finished: bool
    summary: list[tuple[str, str, str]] = field(default_factory=list)  # key, title, value
    classes: list[ClassRow] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # the matrix's columns
    rows: list[tuple[str, list[Cell]]] = field(default_factory=list)


def _count(run: EvaluationRun, value: int, outcome: str, label: str) -> Count:
    query = outcome_query(run, outcome, label)
    return Count(value, grid_url(run, query) if value else None, query)


def cell_query(run: EvaluationRun, truth: str, predicted: str) -> str:
    """The query for the items of ground truth `truth` predicted `predicted`."""
    if truth == predicted:
        return outcome_query(run, "tp", truth)
    missed = outcome_query(run, "fn", truth)
    if predicted == NO_PREDICTION:
        return f"{missed} AND eval[{quote_name(run.name)}].fp = 0"
    return f"{missed} AND {outcome_query(run, 'fp', predicted)}"


def classification_page(run: EvaluationRun) -> ClassificationPage:
    metrics = run.metrics or {}
    page = ClassificationPage(run=run, finished=bool(metrics))
    if not metrics:
        return page
    page.summary = [("accuracy", "Accuracy", number(metrics.get("accuracy")))]
    for average in ("macro", "weighted"):
        values = metrics.get(average) or {}
        for key in ("precision", "recall", "f1"):
            title = f"{average.capitalize()} {'F1' if key == 'f1' else key}"
            page.summary.append((f"{average}_{key}", title, number(values.get(key))))
    for k, value in (metrics.get("top_k") or {}).items():
        page.summary.append((f"top_{k}", f"Top-{k} accuracy", number(value)))
    for row in metrics.get("per_class") or []:
        label = row["label"]
        page.classes.append(
            ClassRow(
                label=label,
                precision=number(row.get("precision")),
                recall=number(row.get("recall")),
                f1=number(row.get("f1")),
                support=int(row.get("support") or 0),
                tp=_count(run, int(row["tp"]), "tp", label),
                fp=_count(run, int(row["fp"]), "fp", label),
                fn=_count(run, int(row["fn"]), "fn", label),
            )
        )
    stored = metrics.get("confusion") or {}
    axis: list[str] = stored.get("axis") or []
    page.labels = axis
    # The "no prediction" row is always empty (no ground truth is "no prediction"): the
    # page leaves it out.
    for i, truth in enumerate(axis[:-1]):
        cells = []
        for j, predicted in enumerate(axis):
            value = int(stored["matrix"][i][j])
            url = grid_url(run, cell_query(run, truth, predicted)) if value else None
            cells.append(Cell(value, url, truth == predicted))
        page.rows.append((truth, cells))
    return page
