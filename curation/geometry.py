"""Validation of annotation and prediction geometry, per kind.

Coordinates are pixels in the image as displayed (EXIF orientation applied), origin at
the top-left. Shapes partly outside the image are clipped to it; shapes wholly outside
are rejected. Each function returns the normalised geometry or raises GeometryError
naming the offending field.
"""

from __future__ import annotations

import math
from typing import Any

KINDS = ("box", "polygon", "line", "keypoints", "category", "segmentation")


class GeometryError(ValueError):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise GeometryError(path, "must be a number")
    if not math.isfinite(value):
        raise GeometryError(path, "must be finite")
    return float(value)


def _clip(value: float, upper: int | None) -> float:
    if upper is None:
        return value
    return min(max(value, 0.0), float(upper))


def _box(g: dict[str, Any], width: int | None, height: int | None) -> dict[str, Any]:
    x, y, w, h = g.get("x"), g.get("y"), g.get("width"), g.get("height")
    # Fast path for the common case (plain floats inside the image): bulk ingest validates
    # hundreds of thousands of boxes, and the generic checks below cost 4x as much.
    if (
        type(x) is float
        and type(y) is float
        and type(w) is float
        and type(h) is float
        and width is not None
        and height is not None
        and x >= 0.0
        and y >= 0.0
        and w > 0.0
        and h > 0.0
        and x + w <= width
        and y + h <= height
    ):
        return {"x": x, "y": y, "width": w, "height": h}
    x = _number(x, "geometry.x")
    y = _number(y, "geometry.y")
    w = _number(w, "geometry.width")
    h = _number(h, "geometry.height")
    if w <= 0:
        raise GeometryError("geometry.width", "must be > 0")
    if h <= 0:
        raise GeometryError("geometry.height", "must be > 0")
    x0, y0, x1, y1 = _clip(x, width), _clip(y, height), _clip(x + w, width), _clip(y + h, height)
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        raise GeometryError(
            "geometry", f"box ({x}, {y}, {w}, {h}) lies outside the {width}x{height} image"
        )
    return {"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0}


def _points(
    raw: Any, path: str, minimum: int, width: int | None, height: int | None
) -> list[list[float]]:
    if not isinstance(raw, list):
        raise GeometryError(path, "must be a list of [x, y] points")
    if len(raw) < minimum:
        raise GeometryError(path, f"needs at least {minimum} points, got {len(raw)}")
    points: list[list[float]] = []
    inside = False
    for i, point in enumerate(raw):
        if isinstance(point, dict):
            point = [point.get("x"), point.get("y")]
        if not isinstance(point, list | tuple) or len(point) != 2:
            raise GeometryError(f"{path}[{i}]", "must be [x, y]")
        x = _number(point[0], f"{path}[{i}][0]")
        y = _number(point[1], f"{path}[{i}][1]")
        if width is None or height is None or (0 <= x <= width and 0 <= y <= height):
            inside = True
        points.append([_clip(x, width), _clip(y, height)])
    if not inside:
        raise GeometryError(path, "every point lies outside the image")
    return points


def _keypoints(g: dict[str, Any], width: int | None, height: int | None) -> dict[str, Any]:
    raw = g.get("keypoints")
    if not isinstance(raw, list) or not raw:
        raise GeometryError("geometry.keypoints", "must be a non-empty list")
    out = []
    for i, kp in enumerate(raw):
        path = f"geometry.keypoints[{i}]"
        if not isinstance(kp, dict):
            raise GeometryError(path, "must be an object with x, y")
        visible = kp.get("visible", True)
        if not isinstance(visible, bool):
            raise GeometryError(f"{path}.visible", "must be a boolean")
        entry: dict[str, Any] = {"visible": visible}
        if visible:
            x = _number(kp.get("x"), f"{path}.x")
            y = _number(kp.get("y"), f"{path}.y")
            if (
                width is not None
                and height is not None
                and not (0 <= x <= width and 0 <= y <= height)
            ):
                raise GeometryError(path, f"({x}, {y}) lies outside the {width}x{height} image")
            entry.update(x=x, y=y)
        if "name" in kp:
            entry["name"] = str(kp["name"])
        out.append(entry)
    result: dict[str, Any] = {"keypoints": out}
    if "skeleton" in g:
        edges = g["skeleton"]
        if not isinstance(edges, list) or not all(
            isinstance(e, list)
            and len(e) == 2
            and all(isinstance(v, int) and 0 <= v < len(out) for v in e)
            for e in edges
        ):
            raise GeometryError("geometry.skeleton", "must be a list of [i, j] keypoint indexes")
        result["skeleton"] = edges
    return result


def _segmentation(g: dict[str, Any], width: int | None, height: int | None) -> dict[str, Any]:
    rle = g.get("rle")
    if not isinstance(rle, dict):
        raise GeometryError("geometry.rle", "must be a COCO RLE object with size and counts")
    size = rle.get("size")
    if not (
        isinstance(size, list)
        and len(size) == 2
        and all(isinstance(v, int) and v > 0 for v in size)
    ):
        raise GeometryError("geometry.rle.size", "must be [height, width]")
    if width is not None and height is not None and size != [height, width]:
        raise GeometryError(
            "geometry.rle.size", f"is {size} but the image is [{height}, {width}] (height, width)"
        )
    counts = rle.get("counts")
    if isinstance(counts, list):
        if not all(isinstance(c, int) and c >= 0 for c in counts):
            raise GeometryError("geometry.rle.counts", "must be non-negative integers")
        if sum(counts) != size[0] * size[1]:
            raise GeometryError("geometry.rle.counts", "do not add up to height * width")
    elif not isinstance(counts, str) or not counts:
        raise GeometryError(
            "geometry.rle.counts", "must be a list of run lengths or a compressed string"
        )
    return {"rle": {"size": size, "counts": counts}}


def validate_geometry(
    kind: str, geometry: Any, width: int | None, height: int | None
) -> dict[str, Any]:
    """Check `geometry` for `kind` against an image of `width` x `height` (None: unknown)."""
    if kind not in KINDS:
        raise GeometryError("kind", f"must be one of {', '.join(KINDS)}")
    if geometry is None:
        geometry = {}
    if not isinstance(geometry, dict):
        raise GeometryError("geometry", "must be an object")
    if kind == "box":
        return _box(geometry, width, height)
    if kind == "polygon":
        return {
            "vertices": _points(geometry.get("vertices"), "geometry.vertices", 3, width, height)
        }
    if kind == "line":
        return {
            "vertices": _points(geometry.get("vertices"), "geometry.vertices", 2, width, height)
        }
    if kind == "keypoints":
        return _keypoints(geometry, width, height)
    if kind == "segmentation":
        return _segmentation(geometry, width, height)
    return {}  # category: the label is the whole annotation
