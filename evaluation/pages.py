"""What the evaluation pages show of a run, shaped from its stored metrics (no queries):
the summary cards, the per-class table with links to the items behind each count, the
PR curves as SVG geometry and the confusion matrix. The views are evaluation/ui.py; the
templates templates/ui/evaluation*.html only draw what is here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse

from curation.query.parser import quote_name
from evaluation.confusion import BACKGROUND
from evaluation.engine import STAT_NAMES
from evaluation.models import EvaluationRun

# What each of COCOeval.stats means, in its order.
STAT_TITLES = {
    "map": "AP @[.50:.95]",
    "map_50": "AP @.50",
    "map_75": "AP @.75",
    "map_small": "AP small",
    "map_medium": "AP medium",
    "map_large": "AP large",
    "mar_1": "AR @1 det",
    "mar_10": "AR @10 dets",
    "mar_100": "AR @100 dets",
    "mar_small": "AR small",
    "mar_medium": "AR medium",
    "mar_large": "AR large",
}
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}

HIST_W, HIST_H, HIST_PAD = 300, 110, 14  # a score histogram's SVG box
CURVE_SIZE = 220  # the PR plot's side, in SVG units
CURVE_PAD = 28


def number(value: Any, digits: int = 3) -> str:
    """A metric as the page writes it: 3 decimals, "-1" (pycocotools' undefined) as "n/a"
    with the reason in the docs, None as "—"."""
    if value is None:
        return "—"
    if isinstance(value, float) and value == -1.0:
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{float(value):.{digits}f}"


def _name(text: str) -> str:
    """A label as the query language spells it: bare when it can be, else quoted."""
    return text if _PLAIN.match(text) and text.lower() not in _KEYWORDS else quote_name(text)


def outcome_query(run: EvaluationRun, outcome: str, label: str | None = None) -> str:
    """The query for the items with at least one `outcome` (of `label`) in the run."""
    path = f"eval[{quote_name(run.name)}].{outcome}"
    if label is not None:
        path += f".{_name(label)}"
    return f"{path} >= 1"


def grid_url(run: EvaluationRun, query: str) -> str:
    """The grid of the query's items, with the run picked: boxes coloured by outcome."""
    params = {"query": query, "run": run.pk}
    return reverse("ui:grid", args=[run.dataset_id]) + "?" + urlencode(params)


@dataclass(frozen=True)
class Stat:
    key: str
    title: str
    value: str


@dataclass(frozen=True)
class Count:
    """A TP/FP/FN count and the grid of the items it is made of (None when 0)."""

    value: int
    url: str | None
    query: str


@dataclass
class Curve:
    """A PR curve's SVG polyline; `points` empty when the curve is undefined."""

    points: str
    size: int = CURVE_SIZE
    pad: int = CURVE_PAD


@dataclass
class ClassRow:
    label: str
    ap: str
    ap50: str
    ar: str
    tp: Count
    fp: Count
    fn: Count
    precision: str
    recall: str
    f1: str
    curve: Curve


@dataclass(frozen=True)
class Cell:
    value: int
    url: str | None
    diagonal: bool


@dataclass
class Confusion:
    labels: list[str]  # the axis, background last
    rows: list[tuple[str, list[Cell]]]
    iou: str
    confidence: str


@dataclass(frozen=True)
class ErrorRow:
    type: str
    title: str
    count: Count
    dap: str
    bar: float  # the dAP bar's width, in % of the largest


@dataclass
class ErrorBreakdown:
    rows: list[ErrorRow]
    ap: str
    fg: str
    bg: str
    types: list[str] = field(default_factory=list)
    per_class: list[tuple[str, list[Count]]] = field(default_factory=list)


@dataclass(frozen=True)
class Bar:
    x: float
    tp_y: float
    tp_h: float
    fp_y: float
    fp_h: float
    tp: int
    fp: int
    low: str


@dataclass
class Histogram:
    label: str  # "all classes" or a label
    bars: list[Bar]
    width: int
    height: int
    bar_width: float
    threshold_x: float
    tp: int
    fp: int
    axis_y: float = HIST_PAD + HIST_H / 2


@dataclass(frozen=True)
class SubsetRow:
    kind: str
    name: str
    items: int
    map: str
    map_50: str
    precision: str
    recall: str
    f1: str
    tp: int
    fp: int
    fn: int
    failures: Count


@dataclass
class RunPage:
    run: EvaluationRun
    finished: bool
    stats: list[Stat] = field(default_factory=list)
    operating: dict[str, str] = field(default_factory=dict)
    totals: dict[str, Count] = field(default_factory=dict)
    best_f1: dict[str, str] | None = None
    classes: list[ClassRow] = field(default_factory=list)
    confusion: Confusion | None = None
    errors: ErrorBreakdown | None = None
    histograms: list[Histogram] = field(default_factory=list)
    subsets: list[SubsetRow] = field(default_factory=list)


def _count(run: EvaluationRun, value: int, outcome: str, label: str | None = None) -> Count:
    query = outcome_query(run, outcome, label)
    return Count(value, grid_url(run, query) if value else None, query)


def pr_curve(precision: list[float] | None, recall_points: list[float]) -> Curve:
    """Precision (y) against recall (x) at the recall thresholds where it is defined."""
    if not precision:
        return Curve("")
    side = CURVE_SIZE
    points = [
        f"{CURVE_PAD + r * side:.1f},{CURVE_PAD + (1 - p) * side:.1f}"
        for r, p in zip(recall_points, precision, strict=False)
        if p >= 0
    ]
    return Curve(" ".join(points))


def _confusion(run: EvaluationRun, stored: dict[str, Any]) -> Confusion:
    labels = [*stored["labels"], BACKGROUND]
    agnostic = bool(run.options.get("class_agnostic"))
    rows = []
    for i, truth in enumerate(labels):
        cells = []
        for j, predicted in enumerate(labels):
            value = int(stored["matrix"][i][j])
            url = None
            # A cell is a query of the run's own matches only where the run matched as
            # the matrix did (class-agnostic): its background cells are then its FN of
            # one label and its FP of one label. Other cells have no query (no link).
            if value and agnostic and (truth == BACKGROUND) != (predicted == BACKGROUND):
                if predicted == BACKGROUND:
                    url = grid_url(run, outcome_query(run, "fn", truth))
                else:
                    url = grid_url(run, outcome_query(run, "fp", predicted))
            cells.append(Cell(value, url, i == j and truth != BACKGROUND))
        rows.append((truth, cells))
    return Confusion(
        labels, rows, number(stored.get("iou"), 2), number(stored.get("confidence"), 2)
    )


ERROR_TITLES = {
    "classification": "Classification (right place, wrong class)",
    "localization": "Localization (right class, poor box)",
    "both": "Both (wrong class, poor box)",
    "duplicate": "Duplicate (object already found)",
    "background": "Background (on nothing)",
    "missed": "Missed (nothing explains it)",
}


def _errors(run: EvaluationRun, stored: dict[str, Any]) -> ErrorBreakdown:
    types = stored.get("types") or []
    top = max((float(t["dap"]) for t in types), default=0.0) or 1.0
    rows = []
    for t in types:
        name = str(t["type"])
        query = f"eval[{quote_name(run.name)}].error.{name} >= 1"
        value = int(t["count"])
        rows.append(
            ErrorRow(
                name,
                ERROR_TITLES.get(name, name),
                Count(value, grid_url(run, query) if value else None, query),
                number(t["dap"]),
                round(100 * float(t["dap"]) / top, 1),
            )
        )
    names = [str(t["type"]) for t in types]
    per_class = []
    for row in stored.get("per_class") or []:
        label = str(row["label"])
        cells = []
        for name in names:
            query = f"eval[{quote_name(run.name)}].error.{name}.{_name(label)} >= 1"
            value = int(row.get(name) or 0)
            cells.append(Count(value, grid_url(run, query) if value else None, query))
        per_class.append((label, cells))
    return ErrorBreakdown(
        rows,
        number(stored.get("ap")),
        number(stored.get("fg_iou"), 2),
        number(stored.get("bg_iou"), 2),
        names,
        per_class,
    )


def histogram(label: str, tp: list[int], fp: list[int], threshold: float) -> Histogram:
    """TP bars above the axis, FP bars below it, each bin scaled to the largest count."""
    bins = len(tp)
    top = max([*tp, *fp, 1])
    half = HIST_H / 2
    step = (HIST_W - 2 * HIST_PAD) / max(bins, 1)
    bars = []
    for i, (t, f) in enumerate(zip(tp, fp, strict=True)):
        tp_h = round(half * t / top, 1)
        fp_h = round(half * f / top, 1)
        bars.append(
            Bar(
                round(HIST_PAD + i * step, 1),
                round(HIST_PAD + half - tp_h, 1),
                tp_h,
                round(HIST_PAD + half, 1),
                fp_h,
                int(t),
                int(f),
                f"{i / max(bins, 1):.2f}",
            )
        )
    return Histogram(
        label,
        bars,
        HIST_W,
        int(HIST_H + 2 * HIST_PAD),
        round(step * 0.8, 1),
        round(HIST_PAD + threshold * (HIST_W - 2 * HIST_PAD), 1),
        sum(tp),
        sum(fp),
    )


def _subsets(run: EvaluationRun, rows: list[dict[str, Any]]) -> list[SubsetRow]:
    out = []
    for row in rows:
        kind = str(row.get("kind", ""))
        if kind == "metadata":
            name = f"{row.get('field')} = {row.get('value')}"
        else:
            name = f"{kind} {row.get('value')}"
        query = f"{row['query']} AND eval[{quote_name(run.name)}].error >= 1"
        failures = int(row["fp"]) + int(row["fn"])
        out.append(
            SubsetRow(
                kind,
                name,
                int(row["items"]),
                number(row.get("map")),
                number(row.get("map_50")),
                number(row.get("precision")),
                number(row.get("recall")),
                number(row.get("f1")),
                int(row["tp"]),
                int(row["fp"]),
                int(row["fn"]),
                Count(failures, grid_url(run, query) if failures else None, query),
            )
        )
    return out


def run_page(run: EvaluationRun) -> RunPage:
    metrics = run.metrics or {}
    page = RunPage(run=run, finished=bool(metrics))
    if not metrics:
        return page
    page.stats = [Stat(k, STAT_TITLES[k], number(metrics.get(k))) for k in STAT_NAMES]
    op = metrics.get("operating_point") or {}
    page.operating = {
        k: number(op.get(k), 2 if k in ("confidence", "iou") else 3)
        for k in ("confidence", "iou", "precision", "recall", "f1")
    }
    page.totals = {o: _count(run, int(op.get(o) or 0), o) for o in ("tp", "fp", "fn")}
    best = metrics.get("best_f1")
    if best:
        page.best_f1 = {k: number(best.get(k)) for k in ("confidence", "precision", "recall", "f1")}
    recall_points = metrics.get("recall_thresholds") or []
    for row in metrics.get("per_class") or []:
        label = row["label"]
        page.classes.append(
            ClassRow(
                label=label,
                ap=number(row.get("ap")),
                ap50=number(row.get("ap50")),
                ar=number(row.get("ar")),
                tp=_count(run, int(row["tp"]), "tp", label),
                fp=_count(run, int(row["fp"]), "fp", label),
                fn=_count(run, int(row["fn"]), "fn", label),
                precision=number(row.get("precision")),
                recall=number(row.get("recall")),
                f1=number(row.get("f1")),
                curve=pr_curve(row.get("pr_curve"), recall_points),
            )
        )
    if metrics.get("confusion"):
        page.confusion = _confusion(run, metrics["confusion"])
    if metrics.get("errors"):
        page.errors = _errors(run, metrics["errors"])
    stored = metrics.get("score_histograms")
    if stored:
        threshold = float(op.get("confidence") or 0)
        page.histograms = [histogram("all classes", stored["tp"], stored["fp"], threshold)]
        page.histograms += [
            histogram(c["label"], c["tp"], c["fp"], threshold) for c in stored["per_class"]
        ]
    page.subsets = _subsets(run, metrics.get("subsets") or [])
    return page


# ------------------------------------------------------------------ comparing two runs

LOWER_IS_BETTER = {"fp", "fn"}
ITEM_LISTS = {
    "right_in_a_only": "right in a, wrong in b",
    "right_in_b_only": "right in b, wrong in a",
    "wrong_in_both": "wrong in both",
}


@dataclass(frozen=True)
class Delta:
    name: str
    a: str
    b: str
    delta: str
    better: str  # "b", "a" or "" (equal or undefined): which run the delta favours


@dataclass(frozen=True)
class ItemList:
    key: str
    title: str
    count: Count


@dataclass
class ComparePage:
    a: dict[str, Any]
    b: dict[str, Any]
    summary: list[Delta]
    per_class: list[tuple[str, list[Delta]]]
    errors: list[Delta]
    items: list[ItemList]
    warnings: list[str]


def _delta(name: str, pair: dict[str, Any], lower_is_better: bool = False) -> Delta:
    d = pair.get("delta")
    better = ""
    if d:
        better = "b" if (d > 0) != lower_is_better else "a"
    sign = "" if d is None else ("+" if d > 0 else "")
    return Delta(
        name,
        number(pair.get("a")),
        number(pair.get("b")),
        "—" if d is None else sign + number(d),
        better,
    )


def compare_page(dataset_id: int, found: dict[str, Any]) -> ComparePage:
    """What the comparison page shows of evaluation.compare.compare_runs's answer."""
    grid = reverse("ui:grid", args=[dataset_id])
    summary = [_delta(r["metric"], r, r["metric"] in LOWER_IS_BETTER) for r in found["summary"]]
    per_class = [
        (
            row["label"],
            [_delta(k, row[k], k in LOWER_IS_BETTER) for k in ("ap", "ap50", "f1", "fp", "fn")],
        )
        for row in found["per_class"]
    ]
    errors = [_delta(e["type"], e["dap"], True) for e in found["errors"]]
    items = []
    for key, title in ITEM_LISTS.items():
        entry = found["items"][key]
        value = int(entry["count"])
        url = grid + "?" + urlencode({"query": entry["query"]}) if value else None
        items.append(ItemList(key, title, Count(value, url, entry["query"])))
    return ComparePage(
        found["a"], found["b"], summary, per_class, errors, items, list(found["warnings"])
    )
