"""Demo items: one scene drawn, with its metadata, ground truth and a detector's output.

Every image depends only on (seed, index), so the files are the same whether they are
drawn by one process or several.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from curation.demo.painters import Box
from curation.demo.scenes import (
    CAMERA_HEIGHT_M,
    Camera,
    Scene,
    apply_tone,
    apply_weather,
    clip_box,
    draw_background,
    is_truncated,
    keep_visible,
    place_things,
)

MODEL_NAME = "demo-detector"
CLASSES = ("car", "truck", "bus", "pedestrian", "bicycle", "traffic_light", "sign")
WEATHERS = (("clear", 0.55), ("rain", 0.17), ("fog", 0.14), ("snow", 0.14))
TIMES = (("day", 0.6), ("dusk", 0.2), ("night", 0.2))
CAMERAS = (("front", 0.55), ("rear", 0.15), ("left", 0.15), ("right", 0.15))
LOCATIONS = ("Berlin", "Lyon", "Osaka", "Toronto", "Austin", "Turin")
SIZES = ((640, 480), (512, 384), (480, 360), (480, 360), (400, 300), (320, 240), (640, 360))
# Confusions a detector makes between classes that look alike.
CONFUSABLE = {
    "truck": "bus",
    "bus": "truck",
    "pedestrian": "bicycle",
    "bicycle": "pedestrian",
    "car": "truck",
}


def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([k for k, _ in weighted], weights=[w for _, w in weighted])[0]


def reference_id(index: int) -> str:
    return f"scene-{index:05d}"


def _metadata(rng: random.Random, index: int) -> dict[str, Any]:
    weather = _pick(rng, WEATHERS)
    time_of_day = _pick(rng, TIMES)
    hour = {
        "day": rng.randint(8, 17),
        "dusk": rng.randint(18, 19),
        "night": rng.choice((21, 22, 23, 0, 1, 4, 5)),
    }
    captured = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(
        days=rng.randint(0, 180),
        hours=hour[time_of_day],
        minutes=rng.randint(0, 59),
        seconds=rng.randint(0, 59),
    )
    stopped = rng.random() < 0.2
    speed = 0.0 if stopped else round(rng.uniform(8, 95) * (0.7 if weather != "clear" else 1.0), 1)
    return {
        "weather": weather,
        "time_of_day": time_of_day,
        "camera": _pick(rng, CAMERAS),
        "location": rng.choice(LOCATIONS),
        "speed_kmh": speed,
        "brake_pressed": stopped or rng.random() < 0.1,
        "drive_id": f"drive-{rng.randint(1, 24):03d}",
        "captured_at": captured.isoformat().replace("+00:00", "Z"),
    }


def _iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _predict(
    rng: random.Random,
    truths: list[tuple[str, Box, float]],
    width: int,
    height: int,
    metadata: dict[str, Any],
) -> list[tuple[str, Box, float]]:
    """What an imperfect detector says: jittered boxes, misses, confusions, false alarms."""
    hard = {"clear": 1.0, "rain": 0.9, "snow": 0.88, "fog": 0.8}[metadata["weather"]]
    hard *= {"day": 1.0, "dusk": 0.93, "night": 0.82}[metadata["time_of_day"]]
    out: list[tuple[str, Box, float]] = []
    for label, box, visible in truths:
        w, h = box[2] - box[0], box[3] - box[1]
        size = math.sqrt(w * h)
        found = 0.97 * (1 - math.exp(-((size / 16) ** 1.6))) * (0.45 + 0.55 * visible) * hard
        if rng.random() > found:
            continue  # missed: small, occluded, or in bad weather
        said = label
        if label in CONFUSABLE and rng.random() < (0.04 if label == "car" else 0.12):
            said = CONFUSABLE[label]
        noise = 0.03 + 0.12 * (1 - min(1.0, size / 120)) + 0.05 * (1 - visible)
        cx = (box[0] + box[2]) / 2 + rng.gauss(0, noise * w)
        cy = (box[1] + box[3]) / 2 + rng.gauss(0, noise * h)
        pw, ph = w * math.exp(rng.gauss(0, noise)), h * math.exp(rng.gauss(0, noise))
        pbox = (
            max(0.0, cx - pw / 2),
            max(0.0, cy - ph / 2),
            min(float(width), cx + pw / 2),
            min(float(height), cy + ph / 2),
        )
        if pbox[2] - pbox[0] < 1 or pbox[3] - pbox[1] < 1:
            continue
        score = 0.25 + 0.7 * _iou(box, pbox) * (0.5 + 0.5 * min(1.0, size / 60)) * hard
        if said != label:
            score -= 0.3
        out.append((said, pbox, min(0.99, max(0.02, score + rng.gauss(0, 0.07)))))
        if rng.random() < 0.03:  # a second, weaker box on the same object
            shifted = (pbox[0] + 0.1 * w, pbox[1], min(float(width), pbox[2] + 0.1 * w), pbox[3])
            out.append((said, shifted, max(0.02, score * 0.5)))
    for _ in range(rng.choices((0, 1, 2), weights=(6, 3, 1) if hard > 0.9 else (4, 4, 2))[0]):
        label = rng.choices(CLASSES, weights=(4, 1, 1, 3, 1, 2, 3))[0]
        w = rng.uniform(8, 0.2 * width)
        h = w * (2.8 if label in ("pedestrian", "traffic_light") else rng.uniform(0.6, 1.1))
        x = rng.uniform(0, width - w)
        y = rng.uniform(0, max(1.0, height - h))
        box = (x, y, min(float(width), x + w), min(float(height), y + h))
        out.append((label, box, 0.03 + 0.45 * rng.random() ** 2))
    return out


def _shape_rows(
    ref: str,
    tag: str,
    shapes: list[tuple[str, Box, float]],
    *,
    model: str | None = None,
    extra: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    rows = []
    for k, (label, box, value) in enumerate(shapes):
        row: dict[str, Any] = {"id": f"{ref}-{tag}-{k}", "kind": "box", "label": label}
        if model is None:
            # Ground truth in whole pixels, as most labelling tools write it.
            x0, y0, x1, y1 = (int(v) for v in box)
            row["geometry"] = {"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0}
        else:
            fx0, fy0, fx1, fy1 = (round(v, 1) for v in box)
            row = {"model": model, **row, "confidence": round(value, 4)}
            row["geometry"] = {
                "x": fx0,
                "y": fy0,
                "width": round(fx1 - fx0, 1),
                "height": round(fy1 - fy0, 1),
            }
        if extra is not None:
            row["metadata"] = extra[k]
        rows.append(row)
    return rows


def encode_jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def render_scene(seed: int, index: int) -> tuple[bytes, dict[str, Any]]:
    """Draw one scene; return its JPEG bytes and its manifest row."""
    rng = random.Random(f"nucleus-demo:{seed}:{index}")
    metadata = _metadata(rng, index)
    width, height = rng.choice(SIZES)
    if rng.random() < 0.3 and width > 320:
        width, height = width - rng.randrange(0, 40, 8), height - rng.randrange(0, 24, 8)
    camera = metadata["camera"]
    view = {"front": "rear", "rear": "front", "left": "side", "right": "side"}[camera]
    horizon = height * rng.uniform(0.38, 0.5)
    center = width * (rng.uniform(0.42, 0.58) if view != "side" else rng.choice((0.12, 0.88)))
    bottom_distance = rng.uniform(3.0, 4.5)
    cam = Camera(
        width, height, horizon, center, (height - horizon) * bottom_distance / CAMERA_HEIGHT_M
    )
    night = metadata["time_of_day"] == "night"
    scene = Scene(cam, view, night)
    place_things(scene, rng)
    things = keep_visible(scene.things, width, height)

    img = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(img)
    draw_background(
        img, draw, cam, rng, metadata["time_of_day"], metadata["weather"] != "clear", view
    )
    lights: list[Callable[[ImageDraw.ImageDraw], None]] = []
    for t in things:
        t.draw(draw, t.box, lights)
    img = apply_tone(img, metadata["time_of_day"])
    draw = ImageDraw.Draw(img)
    for paint in lights:
        paint(draw)
    img = apply_weather(img, metadata["weather"], cam, rng, night)

    ref = reference_id(index)
    truths = [
        (t.label, tuple(map(float, clip_box(t.box, width, height))), t.visible) for t in things
    ]
    annotations = _shape_rows(
        ref,
        "gt",
        [(label, box, v) for label, box, v in truths],  # type: ignore[misc]
        extra=[
            {"occluded": round(1 - t.visible, 2), "truncated": is_truncated(t.box, width, height)}
            for t in things
        ],
    )
    predictions = _shape_rows(
        ref,
        MODEL_NAME,
        _predict(rng, truths, width, height, metadata),  # type: ignore[arg-type]
        model=MODEL_NAME,
    )
    row = {
        "reference_id": ref,
        "image": f"images/{ref}.jpg",
        "metadata": metadata,
        "annotations": annotations,
        "predictions": predictions,
    }
    return encode_jpeg(img, rng.choice((82, 85, 88, 90))), row


def render_to(args: tuple[int, int, str]) -> dict[str, Any]:
    seed, index, folder = args
    data, row = render_scene(seed, index)
    Path(folder, row["image"]).write_bytes(data)
    return row
