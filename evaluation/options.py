"""A run's options: defaults (COCO's) and the checks, each failure a 400 naming its field.

The label mapping's labels are checked against the data by evaluation.services (this
module knows nothing of the database).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from curation.errors import invalid_field

# Exactly pycocotools' Params.iouThrs (np.linspace, not 0.5 + 0.05 * i: the floats differ
# in the last bits, and COCOeval.summarize finds 0.5 and 0.75 by equality).
COCO_IOU_THRESHOLDS = [
    float(t) for t in np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
]
COCO_MAX_DETS = [1, 10, 100]
COCO_AREA_RANGES = {
    "all": [0.0, 1e5**2],
    "small": [0.0, 32.0**2],
    "medium": [32.0**2, 96.0**2],
    "large": [96.0**2, 1e5**2],
}
DEFAULTS: dict[str, Any] = {
    "iou_thresholds": COCO_IOU_THRESHOLDS,
    "max_dets": COCO_MAX_DETS,
    "area_ranges": COCO_AREA_RANGES,
    "class_agnostic": False,
    "label_mapping": {},
    "confidence_threshold": 0.5,
    "operating_iou": 0.5,
    "subsets": {},
}
# Classification runs take these instead (evaluation.classification).
CLASSIFICATION_DEFAULTS: dict[str, Any] = {"label_mapping": {}, "top_k": [3, 5]}
SUBSET_KINDS = ("metadata", "tags", "slices")
MAX_METADATA_KEYS = 10
PREFIX = "options"


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise invalid_field(path, "must be a number")
    return float(value)


def _iou_thresholds(raw: Any) -> list[float]:
    path = f"{PREFIX}.iou_thresholds"
    if not isinstance(raw, list) or not raw:
        raise invalid_field(path, "must be a non-empty list of numbers in (0, 1)")
    found = []
    for index, value in enumerate(raw):
        t = _number(value, f"{path}[{index}]")
        if not 0 < t < 1:
            raise invalid_field(f"{path}[{index}]", f"must be in (0, 1), got {t}")
        found.append(t)
    if len(set(found)) != len(found):
        raise invalid_field(path, "lists a threshold twice")
    return sorted(found)


def _max_dets(raw: Any) -> list[int]:
    path = f"{PREFIX}.max_dets"
    message = "must be three increasing whole numbers >= 1 (COCO's are [1, 10, 100])"
    if (
        not isinstance(raw, list)
        or len(raw) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in raw)
        or not raw[0] < raw[1] < raw[2]
    ):
        raise invalid_field(path, message)
    return [int(v) for v in raw]


def _area_ranges(raw: Any) -> dict[str, list[float]]:
    path = f"{PREFIX}.area_ranges"
    if not isinstance(raw, dict):
        raise invalid_field(path, "must be an object of [low, high] by all/small/medium/large")
    ranges = {name: list(bounds) for name, bounds in COCO_AREA_RANGES.items()}
    for name, bounds in raw.items():
        if name not in ranges:
            raise invalid_field(f"{path}.{name}", "is not one of all, small, medium, large")
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise invalid_field(f"{path}.{name}", "must be [low, high]")
        low, high = _number(bounds[0], f"{path}.{name}[0]"), _number(bounds[1], f"{path}.{name}[1]")
        if not 0 <= low < high:
            raise invalid_field(f"{path}.{name}", "must have 0 <= low < high")
        ranges[name] = [low, high]
    return ranges


def _label_mapping(raw: Any) -> dict[str, str]:
    path = f"{PREFIX}.label_mapping"
    if not isinstance(raw, dict):
        raise invalid_field(path, "must be an object: prediction label -> ground-truth label")
    for key, value in raw.items():
        if not isinstance(value, str) or not value:
            raise invalid_field(f"{path}.{key}", "must be a ground-truth label (a string)")
    return {str(k): v for k, v in raw.items()}


def _subsets(raw: Any) -> dict[str, Any]:
    """`{"metadata": [keys], "tags": bool, "slices": [ids]}`: the per-subset breakdown.
    Slice ids are checked against the dataset by evaluation.services."""
    path = f"{PREFIX}.subsets"
    if not isinstance(raw, dict):
        raise invalid_field(path, 'must be an object: {"metadata": [...], "tags": true, ...}')
    for key in raw:
        if key not in SUBSET_KINDS:
            raise invalid_field(f"{path}.{key}", f"is not one of {', '.join(SUBSET_KINDS)}")
    cleaned: dict[str, Any] = {}
    keys = raw.get("metadata", [])
    if not isinstance(keys, list) or len(keys) > MAX_METADATA_KEYS:
        raise invalid_field(
            f"{path}.metadata", f"must be a list of at most {MAX_METADATA_KEYS} metadata keys"
        )
    for index, key in enumerate(keys):
        if not isinstance(key, str) or not key.strip():
            raise invalid_field(f"{path}.metadata[{index}]", "must be a metadata key (a string)")
    if keys:
        cleaned["metadata"] = list(dict.fromkeys(k.strip() for k in keys))
    tags = raw.get("tags", False)
    if not isinstance(tags, bool):
        raise invalid_field(f"{path}.tags", "must be true or false")
    if tags:
        cleaned["tags"] = True
    slices = raw.get("slices", [])
    if not isinstance(slices, list):
        raise invalid_field(f"{path}.slices", "must be a list of slice ids")
    for index, value in enumerate(slices):
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid_field(f"{path}.slices[{index}]", "must be a slice id (a number)")
    if slices:
        cleaned["slices"] = list(dict.fromkeys(slices))
    return cleaned


def _top_k(raw: Any) -> list[int]:
    path = f"{PREFIX}.top_k"
    if (
        not isinstance(raw, list)
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in raw)
        or len(set(raw)) != len(raw)
    ):
        raise invalid_field(path, "must be a list of distinct whole numbers >= 1, e.g. [3, 5]")
    return sorted(int(v) for v in raw)


def _unknown_check(raw: dict[str, Any], known: dict[str, Any], task: str) -> None:
    for key in raw:
        if key not in known:
            raise invalid_field(
                f"{PREFIX}.{key}", f"is not an option of {task} runs ({', '.join(known)})"
            )


def options_clean(raw: Any, task: str = "detection") -> dict[str, Any]:
    """The run's options with every default filled in; a 400 naming the first bad field.
    Detection and segmentation runs take the COCO options, classification runs theirs."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise invalid_field(PREFIX, "must be an object")
    if task == "classification":
        _unknown_check(raw, CLASSIFICATION_DEFAULTS, task)
        given = {**CLASSIFICATION_DEFAULTS, **raw}
        return {
            "label_mapping": _label_mapping(given["label_mapping"]),
            "top_k": _top_k(given["top_k"]),
        }
    _unknown_check(raw, DEFAULTS, task)
    given = {**DEFAULTS, **raw}
    options: dict[str, Any] = {
        "iou_thresholds": _iou_thresholds(given["iou_thresholds"]),
        "max_dets": _max_dets(given["max_dets"]),
        "area_ranges": _area_ranges(given["area_ranges"]),
        "label_mapping": _label_mapping(given["label_mapping"]),
    }
    if not isinstance(given["class_agnostic"], bool):
        raise invalid_field(f"{PREFIX}.class_agnostic", "must be true or false")
    options["class_agnostic"] = given["class_agnostic"]
    threshold = _number(given["confidence_threshold"], f"{PREFIX}.confidence_threshold")
    if not 0 <= threshold <= 1:
        raise invalid_field(f"{PREFIX}.confidence_threshold", "must be in [0, 1]")
    options["confidence_threshold"] = threshold
    operating = _number(given["operating_iou"], f"{PREFIX}.operating_iou")
    near = [t for t in options["iou_thresholds"] if abs(t - operating) < 1e-9]
    if not near:
        raise invalid_field(f"{PREFIX}.operating_iou", "must be one of iou_thresholds")
    options["operating_iou"] = near[0]
    options["subsets"] = _subsets(given["subsets"])
    return options
