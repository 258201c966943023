"""Helpers for the slice, version and export tests: items with a stored size and media key
(no image bytes needed), written through curation.bulk like any ingest."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from curation.bulk.validate import Media, clean_item_record
from curation.bulk.write import records_write
from curation.models import Dataset, Item


def box(
    label: str, x: float = 10, y: float = 20, w: float = 30, h: float = 40, **kw: Any
) -> dict[str, Any]:
    return {
        "kind": "box",
        "label": label,
        "geometry": {"x": x, "y": y, "width": w, "height": h},
        **kw,
    }


def polygon(label: str, vertices: Sequence[Sequence[float]], **kw: Any) -> dict[str, Any]:
    return {"kind": "polygon", "label": label, "geometry": {"vertices": vertices}, **kw}


def write_items(
    dataset: Dataset, rows: Sequence[dict[str, Any]], size: tuple[int, int] | None = (640, 480)
) -> dict[str, int]:
    """Upsert item rows, each with a media key and `size` (None: no media); ids by ref."""
    records = []
    for raw in rows:
        raw = dict(raw)
        # Explicit annotation ids: identical shapes on one item would otherwise merge.
        raw["annotations"] = [
            {"id": f"{raw['reference_id']}/{i}", **shape}
            for i, shape in enumerate(raw.get("annotations", []))
        ]
        media = None
        if size is not None:
            media = Media(
                media_key=f"datasets/{dataset.pk}/media/{raw['reference_id']}.jpg",
                thumbnail_key="",
                source_uri="",
                width=size[0],
                height=size[1],
                sha256="",
                byte_size=1,
            )
        records.append(clean_item_record(raw, media=media))
    records_write(dataset=dataset, records=records)
    return dict(Item.objects.filter(dataset=dataset).values_list("reference_id", "pk"))


def numbered_items(dataset: Dataset, n: int, start: int = 0, **extra: Any) -> dict[str, int]:
    """`n` items img-<i> with a `group` metadata value (i % 3) and one car box each."""
    rows = [
        {
            "reference_id": f"img-{i:05d}",
            "metadata": {"group": i % 3, "index": i, **extra},
            "annotations": [box("car")],
        }
        for i in range(start, start + n)
    ]
    return write_items(dataset, rows)
