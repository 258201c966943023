"""What the demo plants for the curation tools to find: duplicates and label errors.

Exact duplicates are copied files; near duplicates are re-encoded, resized, cropped or
brightened copies, their boxes moved with them; label errors corrupt one ground-truth box
(wrong label, missing box, bad box). truth.json lists every one of them.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from PIL import Image, ImageEnhance

from curation.demo.items import CLASSES, CONFUSABLE, encode_jpeg, reference_id
from curation.demo.scenes import clip_box


def truth_plan(seed: int, count: int) -> tuple[dict[int, int], dict[int, int], int]:
    """Which indexes are exact and near duplicates (of which source), and how many errors."""
    rng = random.Random(f"nucleus-demo:{seed}:plan")
    exact = max(1, round(count * 0.005)) if count >= 4 else 0
    near = max(2, round(count * 0.01)) if count >= 8 else 0
    chosen = rng.sample(range(count), 2 * (exact + near))
    copies, sources = chosen[: exact + near], chosen[exact + near :]
    exact_of = {copies[i]: sources[i] for i in range(exact)}
    near_of = {copies[i]: sources[i] for i in range(exact, exact + near)}
    errors = max(2, count // 80) if count >= 10 else 0
    return exact_of, near_of, errors


def renamed_shapes(shapes: list[dict[str, Any]], ref: str, source: str) -> list[dict[str, Any]]:
    return [{**s, "id": s["id"].replace(source, ref, 1)} for s in shapes]


def _moved(
    shapes: list[dict[str, Any]],
    ref: str,
    source: str,
    scale: float,
    dx: float,
    dy: float,
    width: int,
    height: int,
) -> list[dict[str, Any]]:
    """Shapes of a resized and/or cropped copy, clipped to it; boxes left outside are dropped."""
    out = []
    for s in renamed_shapes(shapes, ref, source):
        g = s["geometry"]
        x0 = max(0.0, g["x"] * scale - dx)
        y0 = max(0.0, g["y"] * scale - dy)
        x1 = min(float(width), (g["x"] + g["width"]) * scale - dx)
        y1 = min(float(height), (g["y"] + g["height"]) * scale - dy)
        if x1 - x0 < 1 or y1 - y0 < 1:
            continue
        if "model" in s:
            geometry = {
                "x": round(x0, 1),
                "y": round(y0, 1),
                "width": round(x1 - x0, 1),
                "height": round(y1 - y0, 1),
            }
        else:
            ix0, iy0, ix1, iy1 = clip_box((x0, y0, x1, y1), width, height)
            geometry = {"x": ix0, "y": iy0, "width": ix1 - ix0, "height": iy1 - iy0}
        out.append({**s, "geometry": geometry})
    return out


def near_duplicate(
    args: tuple[int, dict[str, Any], int, str],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Re-encode, resize, crop or brighten a stored scene; return its row and truth entry."""
    seed, source_row, index, folder = args
    rng = random.Random(f"nucleus-demo:{seed}:near:{index}")
    src = source_row["reference_id"]
    ref = reference_id(index)
    with Image.open(Path(folder, source_row["image"])) as opened:
        img = opened.convert("RGB")
    width, height = img.size
    transform = rng.choice(("reencode", "resize", "crop", "brighten"))
    scale, dx, dy = 1.0, 0.0, 0.0
    quality = rng.randint(35, 60) if transform == "reencode" else 90
    detail: dict[str, Any] = {"transform": transform}
    if transform == "resize":
        scale = rng.uniform(0.8, 0.92)
        width, height = round(width * scale), round(height * scale)
        img = img.resize((width, height), Image.Resampling.BILINEAR)
        detail["scale"] = round(scale, 3)
    elif transform == "crop":
        dx, dy = float(rng.randint(4, width // 16)), float(rng.randint(4, height // 16))
        right, bottom = rng.randint(4, width // 16), rng.randint(4, height // 16)
        img = img.crop((int(dx), int(dy), width - right, height - bottom))
        width, height = img.size
        detail["crop"] = [int(dx), int(dy), right, bottom]
    elif transform == "brighten":
        factor = rng.uniform(1.15, 1.35)
        img = ImageEnhance.Brightness(img).enhance(factor)
        detail["brightness"] = round(factor, 3)
    else:
        detail["quality"] = quality
    Path(folder, "images", f"{ref}.jpg").write_bytes(encode_jpeg(img, quality))
    row = {
        **source_row,
        "reference_id": ref,
        "image": f"images/{ref}.jpg",
        "annotations": _moved(source_row["annotations"], ref, src, scale, dx, dy, width, height),
        "predictions": _moved(source_row["predictions"], ref, src, scale, dx, dy, width, height),
    }
    return row, {"reference_id": ref, "duplicate_of": src, **detail}


def plant_label_error(
    rng: random.Random, row: dict[str, Any], size: tuple[int, int]
) -> dict[str, Any]:
    """Corrupt one ground-truth box of `row` in place; return what was done."""
    k = rng.randrange(len(row["annotations"]))
    ann = row["annotations"][k]
    error: dict[str, Any] = {"reference_id": row["reference_id"], "annotation_id": ann["id"]}
    kind = rng.choices(("wrong_label", "missing_box", "bad_box"), weights=(6, 2, 2))[0]
    if kind == "wrong_label":
        wrong = CONFUSABLE.get(ann["label"]) if rng.random() < 0.6 else None
        wrong = wrong or rng.choice([c for c in CLASSES if c != ann["label"]])
        error.update(type="wrong_label", label=wrong, true_label=ann["label"])
        row["annotations"][k] = {**ann, "label": wrong}
    elif kind == "missing_box":
        error.update(type="missing_box", true_label=ann["label"], true_geometry=ann["geometry"])
        del row["annotations"][k]
    else:
        g = ann["geometry"]
        width = size[0]
        dx = int(g["width"] * rng.choice((-1, 1)) * rng.uniform(0.4, 0.7))
        x0 = max(0, min(width - 1, g["x"] + dx))
        x1 = max(x0 + 1, min(width, g["x"] + g["width"] + dx))
        geometry = {"x": x0, "y": g["y"], "width": x1 - x0, "height": g["height"]}
        error.update(type="bad_box", label=ann["label"], geometry=geometry, true_geometry=g)
        row["annotations"][k] = {**ann, "geometry": geometry}
    return error
