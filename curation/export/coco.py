"""The COCO detection export, a model's predictions as COCO results, and the COCO RLE
arithmetic they need (area, bbox)."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from curation.export.sources import (
    BATCH_SIZE,
    SPOOL_CHUNK,
    ExportSource,
    Progress,
    iter_rows,
    source_labels,
)
from curation.models import Model
from curation.storage import MediaUrls

COCO_KINDS = ("box", "polygon", "segmentation")


def rle_counts(counts: Any) -> list[int]:
    """Run lengths of a COCO RLE: an uncompressed list, or the compressed string form."""
    if isinstance(counts, list):
        return [int(c) for c in counts]
    out: list[int] = []
    data = str(counts).encode()
    p = 0
    while p < len(data):
        x, k, more = 0, 0, True
        while more:
            c = data[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def rle_area_bbox(rle: dict[str, Any]) -> tuple[float, list[float]]:
    """Area and [x, y, w, h] of a column-major COCO RLE mask."""
    height = int(rle["size"][0])
    area = 0
    x0 = y0 = float("inf")
    x1 = y1 = -1.0
    pos = 0
    for index, run in enumerate(rle_counts(rle["counts"])):
        if index % 2 and run > 0:
            area += run
            first, last = pos, pos + run - 1
            col0, col1 = first // height, last // height
            x0, x1 = min(x0, col0), max(x1, col1)
            if col0 == col1:
                y0, y1 = min(y0, first % height), max(y1, last % height)
            else:
                y0, y1 = 0, max(y1, height - 1)
        pos += run
    if area == 0:
        return 0.0, [0.0, 0.0, 0.0, 0.0]
    return float(area), [float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1)]


def _polygon_area(flat: Sequence[float]) -> float:
    xs, ys = flat[0::2], flat[1::2]
    n = len(xs)
    twice = sum(xs[i] * ys[(i + 1) % n] - xs[(i + 1) % n] * ys[i] for i in range(n))
    return abs(twice) / 2.0


@dataclass
class _Group:
    label: str
    box: list[float] | None = None
    polygons: list[list[float]] = field(default_factory=list)
    rle: dict[str, Any] | None = None
    iscrowd: int | None = None


def coco_objects(
    item_id: int, shapes: Sequence[dict[str, Any]], categories: dict[str, int], next_id: int
) -> list[dict[str, Any]]:
    """An item's shapes as COCO annotations, numbered from `next_id`.

    Shapes that came from one COCO annotation (same `coco_id` in their metadata, as our
    COCO import writes them) become one annotation again: the box its bbox, the polygons
    or mask its segmentation. Other boxes, polygons and masks are one annotation each;
    a polygon's or mask's bbox is computed. Lines, keypoints and categories are skipped.
    """
    groups: dict[Any, _Group] = {}
    for shape in shapes:
        kind = shape.get("kind")
        if kind not in COCO_KINDS:
            continue
        metadata = shape.get("metadata") or {}
        coco_id = metadata.get("coco_id") if isinstance(metadata, dict) else None
        key = ("coco", coco_id) if coco_id is not None else ("id", shape.get("id"))
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(label=shape["label"])
        if isinstance(metadata, dict) and metadata.get("iscrowd") in (0, 1):
            group.iscrowd = int(metadata["iscrowd"])
        geometry = shape.get("geometry") or {}
        if kind == "box":
            group.box = [
                float(geometry["x"]),
                float(geometry["y"]),
                float(geometry["width"]),
                float(geometry["height"]),
            ]
        elif kind == "polygon":
            group.polygons.append([float(c) for point in geometry["vertices"] for c in point[:2]])
        else:
            group.rle = geometry["rle"]
    out = []
    for group in groups.values():
        if group.label not in categories:
            categories[group.label] = max(categories.values(), default=0) + 1
        segmentation: Any = []
        bbox = group.box
        if group.polygons:
            segmentation = group.polygons
            area = sum(_polygon_area(p) for p in group.polygons)
            if bbox is None:
                xs = [c for p in group.polygons for c in p[0::2]]
                ys = [c for p in group.polygons for c in p[1::2]]
                bbox = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
        elif group.rle is not None:
            segmentation = group.rle
            area, rle_box = rle_area_bbox(group.rle)
            bbox = bbox or rle_box
        else:
            area = bbox[2] * bbox[3] if bbox else 0.0
        iscrowd = group.iscrowd
        if iscrowd is None:
            iscrowd = 1 if group.rle is not None and not group.polygons else 0
        out.append(
            {
                "id": next_id,
                "image_id": item_id,
                "category_id": categories[group.label],
                "bbox": bbox,
                "area": area,
                "iscrowd": iscrowd,
                "segmentation": segmentation,
            }
        )
        next_id += 1
    return out


def _spooled_copy(spool: IO[bytes]) -> Iterator[bytes]:
    spool.seek(0)
    while chunk := spool.read(SPOOL_CHUNK):
        yield chunk


def coco_chunks(
    source: ExportSource,
    *,
    urls: MediaUrls,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> Iterator[bytes]:
    """A COCO detection file, written incrementally.

    One pass over the items: images go out as they are read; their annotations wait in a
    temporary file (disk, not memory) and follow; categories come last, so a label that
    appears while a live slice is being exported still gets its category. Key order does
    not matter to JSON readers (pycocotools included).
    """
    categories = {label: index for index, label in enumerate(source_labels(source, COCO_KINDS), 1)}
    info = {
        "description": f"Exported from nucleus: {source.describe()}",
        "version": str(source.version.number) if source.version is not None else "",
        "date_created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(source.timestamp())),
    }
    yield ('{"info": ' + json.dumps(info) + ', "licenses": [], "images": [').encode()
    next_id = 1
    first_image = True
    first_annotation = True
    with tempfile.TemporaryFile() as spool:
        for batch in iter_rows(
            source, payload="annotations", batch_size=batch_size, progress=progress
        ):
            images = []
            annotations: list[str] = []
            for row in batch:
                images.append(
                    json.dumps(
                        {
                            "id": row.item_id,
                            "file_name": row.file_name or row.reference_id,
                            "width": row.width,
                            "height": row.height,
                            "coco_url": urls.url(row.item_id, row.media_key),
                        }
                    )
                )
                objects = coco_objects(row.item_id, json.loads(row.payload), categories, next_id)
                next_id += len(objects)
                annotations.extend(json.dumps(o) for o in objects)
            text = ", ".join(images)
            yield ((", " if not first_image else "") + text).encode()
            first_image = False
            if annotations:
                spool.write(
                    ((", " if not first_annotation else "") + ", ".join(annotations)).encode()
                )
                first_annotation = False
        yield b'], "annotations": ['
        yield from _spooled_copy(spool)
    listed = [
        {"id": index, "name": label, "supercategory": ""}
        for label, index in sorted(categories.items(), key=lambda c: c[1])
    ]
    yield ('], "categories": ' + json.dumps(listed) + "}\n").encode()


def coco_results_chunks(
    source: ExportSource,
    *,
    model: Model,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> Iterator[bytes]:
    """`model`'s predictions as a COCO results file: a JSON array of
    `{image_id, category_id, bbox, score}` (and `segmentation` for polygons and masks).

    Image and category ids are those of the COCO export of the same source (item ids;
    its annotation labels sorted, from 1), so pycocotools' `loadRes` pairs the two files;
    a label only the model uses gets the next id, in the order it first appears. Lines,
    keypoints and categories have no COCO detection form and are left out.
    """
    categories = {label: index for index, label in enumerate(source_labels(source, COCO_KINDS), 1)}
    first = True
    yield b"["
    for batch in iter_rows(
        source, payload="predictions", model=model, batch_size=batch_size, progress=progress
    ):
        results = []
        for row in batch:
            for shape in json.loads(row.payload):
                for found in coco_objects(row.item_id, [shape], categories, 0):
                    result = {
                        "image_id": found["image_id"],
                        "category_id": found["category_id"],
                        "bbox": found["bbox"],
                        "score": shape["confidence"],
                    }
                    if shape["kind"] != "box":
                        result["segmentation"] = found["segmentation"]
                    results.append(json.dumps(result))
        if results:
            yield (("\n" if first else ",\n") + ",\n".join(results)).encode()
            first = False
    yield b"\n]\n"
