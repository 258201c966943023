"""Annotations and predictions as SVG shapes drawn over images.

Geometry is in pixels of the original image, so an SVG with ``viewBox="0 0 width height"``
and the image's own aspect handling lines the shapes up at any display size.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Distinct, readable on photos; a label keeps its colour everywhere (facets, tiles, item).
PALETTE = (
    "#f43f5e", "#22c55e", "#3b82f6", "#f59e0b", "#a855f7", "#14b8a6",
    "#ec4899", "#84cc16", "#06b6d4", "#f97316", "#6366f1", "#eab308",
)  # fmt: skip


def label_colour(label: str) -> str:
    return PALETTE[zlib.crc32(label.encode()) % len(PALETTE)]


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

    @property
    def title(self) -> str:
        if self.confidence is None:
            return self.label
        return f"{self.label} {self.confidence:.2f}"


def _points(vertices: Any) -> str:
    return " ".join(f"{float(x):.1f},{float(y):.1f}" for x, y in vertices)


def shape_of(
    kind: str, label: str, geometry: dict[str, Any], *, source: str, confidence: float | None = None
) -> Shape | None:
    """The SVG shape of one annotation or prediction (None for masks, which are not drawn)."""
    colour = label_colour(label)
    base: dict[str, Any] = {
        "label": label,
        "colour": colour,
        "source": source,
        "confidence": confidence,
    }
    try:
        if kind == "box":
            return Shape(
                "rect",
                x=float(geometry["x"]),
                y=float(geometry["y"]),
                width=float(geometry["width"]),
                height=float(geometry["height"]),
                **base,
            )
        if kind in ("polygon", "line"):
            return Shape(
                "polygon" if kind == "polygon" else "polyline",
                points=_points(geometry["vertices"]),
                **base,
            )
        if kind == "keypoints":
            dots = tuple(
                (float(k["x"]), float(k["y"]))
                for k in geometry["keypoints"]
                if k.get("visible", True)
            )
            return Shape("points", dots=dots, **base)
        if kind == "category":
            return Shape("category", **base)
    except (KeyError, TypeError, ValueError):
        return None  # stored before validation tightened: skip rather than break the page
    return None


def shapes_of(rows: Iterable[Mapping[str, Any]], *, source: str) -> list[Shape]:
    """Shapes for rows with kind, label, geometry (and confidence for predictions)."""
    shapes = []
    for row in rows:
        shape = shape_of(
            row["kind"],
            row["label"],
            row["geometry"] or {},
            source=source,
            confidence=row.get("confidence"),
        )
        if shape is not None:
            shapes.append(shape)
    return shapes
