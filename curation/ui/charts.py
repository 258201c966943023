"""Server-rendered SVG charts: the geometry is computed here, templates only draw it
(templates/ui/_chart.html). No charting library, nothing to load in the browser."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from curation.facets import MetadataKey, QualityFigures
from curation.quality import FLAGS, QUALITY_FIELDS

WIDTH = 560
ROW = 22
LABEL_WIDTH = 150
VALUE_WIDTH = 64
COLUMN_HEIGHT = 150
AXIS = 22
ACCENT = "#6366f1"


def number_label(value: float | None) -> str:
    """A short, readable form of a number for facets and chart axes."""
    if value is None or math.isnan(value):
        return ""
    if float(value).is_integer() and abs(value) < 1e6:
        return str(int(value))
    if abs(value) >= 1e6:
        return f"{value:.3g}"
    return f"{value:.3g}"


@dataclass
class Bar:
    label: str
    value: int
    x: float
    y: float
    width: float
    height: float
    colour: str
    label_x: float = 0.0
    label_y: float = 0.0
    value_x: float = 0.0
    value_y: float = 0.0
    show_label: bool = True
    url: str = ""  # a link the bar opens (the grid filtered to what it counts)


@dataclass
class Chart:
    kind: str  # "bars" (horizontal) or "columns"
    width: int
    height: int
    bars: list[Bar] = field(default_factory=list)
    title: str = ""
    note: str = ""
    max_label: str = ""
    baseline: float = 0.0

    @property
    def empty(self) -> bool:
        return not self.bars

    @property
    def linked(self) -> bool:
        """Whether its bars are links: the chart is then a group of them, not an image."""
        return any(b.url for b in self.bars)


def _short(text: str, limit: int = 22) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bars(
    rows: Sequence[tuple[str, int]],
    *,
    colours: Callable[[str], str] | None = None,
    title: str = "",
) -> Chart:
    """Horizontal bars, one row per (label, value), longest first as given; each bar in its
    label's colour when `colours` is given."""
    chart = Chart("bars", WIDTH, max(ROW * len(rows), ROW), title=title)
    top = max((v for _, v in rows), default=0) or 1
    room = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    for i, (label, value) in enumerate(rows):
        width = max(room * value / top, 1.0 if value else 0.0)
        y = i * ROW + 3
        chart.bars.append(
            Bar(
                label=_short(label),
                value=value,
                x=LABEL_WIDTH,
                y=y,
                width=width,
                height=ROW - 6,
                colour=colours(label) if colours is not None else ACCENT,
                label_x=LABEL_WIDTH - 8,
                label_y=y + (ROW - 6) / 2,
                value_x=LABEL_WIDTH + width + 6,
                value_y=y + (ROW - 6) / 2,
            )
        )
    return chart


def columns(rows: Sequence[tuple[str, int]], *, title: str = "", urls: Sequence[str] = ()) -> Chart:
    """Vertical columns (a histogram), left to right as given, labels under the axis; each
    column a link to its url when `urls` are given."""
    chart = Chart("columns", WIDTH, COLUMN_HEIGHT + AXIS, title=title, baseline=COLUMN_HEIGHT)
    if not rows:
        return chart
    top = max(v for _, v in rows) or 1
    slot = WIDTH / len(rows)
    gap = min(4.0, slot * 0.2)
    every = max(1, round(len(rows) / 10))  # at most about ten axis labels
    for i, (label, value) in enumerate(rows):
        height = (COLUMN_HEIGHT - 14) * value / top
        x = i * slot + gap / 2
        chart.bars.append(
            Bar(
                label=label,
                value=value,
                x=x,
                y=COLUMN_HEIGHT - height,
                width=slot - gap,
                height=height,
                colour=ACCENT,
                label_x=x + (slot - gap) / 2,
                label_y=COLUMN_HEIGHT + 15,
                value_x=x + (slot - gap) / 2,
                value_y=COLUMN_HEIGHT - height - 4,
                show_label=i % every == 0 or i == len(rows) - 1,
                url=urls[i] if urls else "",
            )
        )
    chart.max_label = f"{top:,}"
    return chart


def metadata_chart(key: MetadataKey) -> Chart:
    """The distribution of one metadata key: top values, or a histogram of numbers."""
    if key.kind == "category":
        chart = bars([(v.value, v.count) for v in key.values], title=key.key)
        if key.distinct > len(key.values):
            chart.note = f"top {len(key.values)} of {key.distinct} values"
        return chart
    if key.kind == "number":
        rows = [(number_label(b.low), b.count) for b in key.bins]
        chart = columns(rows, title=key.key)
        chart.note = f"{number_label(key.minimum)} to {number_label(key.maximum)}"
        return chart
    chart = Chart("none", WIDTH, 0, title=key.key)
    chart.note = (
        f"{key.distinct:,} distinct values" if key.kind == "many" else "nested or mixed values"
    )
    return chart


def quality_charts(figures: QualityFigures, query_url: Callable[[str], str]) -> list[Chart]:
    """A histogram of each image quality signal over its fixed buckets, each column a
    link (`query_url(query)`) to the grid filtered to the bucket's range."""
    found = []
    for name, bins in figures.histograms.items():
        rows = [(number_label(b.low) + ("+" if b.high is None else ""), b.count) for b in bins]
        chart = columns(rows, title=f"quality.{name}", urls=[query_url(b.query) for b in bins])
        chart.note = QUALITY_FIELDS[name].meaning
        found.append(chart)
    return found


def quality_flags_chart(figures: QualityFigures, query_url: Callable[[str], str]) -> Chart:
    """Items per image quality facet (those with any), each bar a link to them."""
    flags = [f for f in FLAGS if figures.flags.get(f.key)]
    chart = bars([(f.label, figures.flags[f.key]) for f in flags], title="image quality")
    for bar, flag in zip(chart.bars, flags, strict=True):
        bar.url = query_url(flag.query)
    return chart
