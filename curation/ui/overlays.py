"""Annotations and predictions as SVG shapes drawn over images.

Geometry is in pixels of the original image, so an SVG with ``viewBox="0 0 width height"``
and the image's own aspect handling lines the shapes up at any display size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from curation.ui.palette import text_on

Colours = Callable[[str], str]  # a label's colour (curation.ui.palette.LabelColours)


@dataclass
class Shape:
    """One annotation or prediction, ready for the template."""

    kind: str  # rect, polygon, polyline, points, category
    label: str
    colour: str
    source: str  # "gt" or "pred"
    confidence: float | None = None
    x: float = 0.0
    y: float = 0.0
    width: float = 0.0
    height: float = 0.0
    points: str = ""  # "x,y x,y ..." for polygons and lines
    dots: tuple[tuple[float, float], ...] = ()  # keypoints
    # Where its name goes: the top left of its bounds (None for a category).
    anchor: tuple[float, float] | None = None
    # The annotation's or prediction's id, when the rows had it (outcome colouring).
    object_id: int | None = None
    # Its outcome in the evaluation run picked (curation.ui.outcomes): tp, fp, fn, or "".
    outcome: str = ""
    # Drawn emphasised: the object a link pointed at (the item view's `focus`).
    focus: bool = False

    @property
    def title(self) -> str:
        if self.confidence is None:
            return self.label
        return f"{self.label} {self.confidence:.2f}"

    @property
    def ink(self) -> str:
        """The colour of text written on this shape's colour."""
        return text_on(self.colour)


def _vertices(raw: Any) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in raw]


def _points(vertices: list[tuple[float, float]]) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in vertices)


def _corner(points: Iterable[tuple[float, float]]) -> tuple[float, float] | None:
    listed = list(points)
    if not listed:
        return None
    return min(x for x, _ in listed), min(y for _, y in listed)


def shape_of(
    kind: str,
    label: str,
    geometry: dict[str, Any],
    *,
    source: str,
    colours: Colours,
    confidence: float | None = None,
    object_id: int | None = None,
) -> Shape | None:
    """The SVG shape of one annotation or prediction (None for masks, which are not drawn)."""
    base: dict[str, Any] = {
        "label": label,
        "colour": colours(label),
        "source": source,
        "confidence": confidence,
        "object_id": object_id,
    }
    try:
        if kind == "box":
            x, y = float(geometry["x"]), float(geometry["y"])
            return Shape(
                "rect",
                x=x,
                y=y,
                width=float(geometry["width"]),
                height=float(geometry["height"]),
                anchor=(x, y),
                **base,
            )
        if kind in ("polygon", "line"):
            vertices = _vertices(geometry["vertices"])
            return Shape(
                "polygon" if kind == "polygon" else "polyline",
                points=_points(vertices),
                anchor=_corner(vertices),
                **base,
            )
        if kind == "keypoints":
            dots = tuple(
                (float(k["x"]), float(k["y"]))
                for k in geometry["keypoints"]
                if k.get("visible", True)
            )
            return Shape("points", dots=dots, anchor=_corner(dots), **base)
        if kind == "category":
            return Shape("category", **base)
    except (KeyError, TypeError, ValueError):
        return None  # stored before validation tightened: skip rather than break the page
    return None


def shapes_of(rows: Iterable[Mapping[str, Any]], *, source: str, colours: Colours) -> list[Shape]:
    """Shapes for rows with kind, label, geometry (and confidence for predictions)."""
    shapes = []
    for row in rows:
        shape = shape_of(
            row["kind"],
            row["label"],
            row["geometry"] or {},
            source=source,
            colours=colours,
            confidence=row.get("confidence"),
            object_id=row.get("id"),
        )
        if shape is not None:
            shapes.append(shape)
    return shapes


@dataclass(frozen=True)
class BoxLabel:
    """A shape's name (and a prediction's confidence) at its top left corner, placed in
    percent of the image so it lines up at any tile size."""

    text: str
    colour: str
    ink: str
    source: str
    left: float
    top: float


def box_labels(shapes: Iterable[Shape], *, width: int | None, height: int | None) -> list[BoxLabel]:
    """The names of `shapes` on an image of `width` x `height` pixels (none if unknown)."""
    if not width or not height:
        return []
    return [
        BoxLabel(
            text=s.title,
            colour=s.colour,
            ink=s.ink,
            source=s.source,
            left=round(100 * s.anchor[0] / width, 2),
            top=round(100 * s.anchor[1] / height, 2),
        )
        for s in shapes
        if s.anchor is not None
    ]


def _counted(shapes: list[Shape]) -> str:
    counts: dict[str, int] = {}
    for s in shapes:
        counts[s.label] = counts.get(s.label, 0) + 1
    return ", ".join(f"{n} {label}" for label, n in sorted(counts.items()))


def describe(reference_id: str, shapes: Iterable[Shape]) -> str:
    """An image's text alternative: its reference id and the labels drawn on it, counted,
    e.g. "scene-001: 2 car, 1 person; predicted 1 car"."""
    listed = list(shapes)
    gt = _counted([s for s in listed if s.source == "gt"])
    pred = _counted([s for s in listed if s.source == "pred"])
    parts = [gt] if gt else []
    if pred:
        parts.append(f"predicted {pred}")
    return f"{reference_id}: {'; '.join(parts)}" if parts else reference_id


def overlay_label(shapes: Iterable[Shape]) -> str:
    """The accessible name of an overlay: every shape drawn, in order, ground truth first
    and predictions with their confidence, e.g. "Ground truth: car, person. Predictions:
    car 0.91."""
    listed = [s for s in shapes if s.kind != "category"]
    gt = [s.title for s in listed if s.source == "gt"]
    pred = [s.title for s in listed if s.source == "pred"]
    parts = []
    if gt:
        parts.append(f"Ground truth: {', '.join(gt)}.")
    if pred:
        parts.append(f"Predictions: {', '.join(pred)}.")
    return " ".join(parts) or "No shapes drawn."
