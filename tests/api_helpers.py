"""Helpers shared by the REST API tests (tests/test_api_*.py)."""

from __future__ import annotations

from typing import Any

from curation.bulk.write import items_upsert
from curation.models import Dataset


def error_of(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert `response` is an API error with `status` (and `code`); return its body."""
    assert response.status_code == status, (response.status_code, getattr(response, "data", None))
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "fields"}, body
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


def error_paths(response: Any, status: int = 400) -> list[str]:
    """The field paths of an API error response."""
    return [f["path"] for f in error_of(response, status)["fields"]]


def box(x: float = 10, y: float = 10, w: float = 20, h: float = 20, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "box",
        "label": extra.pop("label", "car"),
        "geometry": {"x": x, "y": y, "width": w, "height": h},
        **extra,
    }


def add_items(dataset: Dataset, *rows: dict[str, Any]) -> dict[str, int]:
    """Upsert item rows straight through curation.bulk; returns item ids by reference id."""
    return items_upsert(dataset=dataset, rows=list(rows)).item_ids


def url(dataset: Dataset | int, tail: str = "") -> str:
    dataset_id = dataset if isinstance(dataset, int) else dataset.pk
    return f"/api/v1/datasets/{dataset_id}" + (f"/{tail}" if tail else "")


def evaluation_world(dataset: Dataset, model: str = "yolo") -> None:
    """Two images for evaluation tests: on a.jpg a car found exactly and a bus missed, on
    b.jpg a person found exactly. Per-class AP: car 1, person 1, bus 0."""
    add_items(
        dataset,
        {
            "reference_id": "a.jpg",
            "annotations": [
                box(0, 0, 50, 50, id="g1"),
                box(100, 100, 40, 40, id="g2", label="bus"),
            ],
            "predictions": [box(0, 0, 50, 50, id="p1", model=model, confidence=0.9)],
        },
        {
            "reference_id": "b.jpg",
            "annotations": [box(10, 10, 30, 60, id="g3", label="person")],
            "predictions": [
                box(10, 10, 30, 60, id="p3", label="person", model=model, confidence=0.7)
            ],
        },
    )
