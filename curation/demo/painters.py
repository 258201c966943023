"""The demo dataset: procedurally drawn street scenes, offline and deterministic per seed.

Each scene is a small pinhole-camera street (sky, skyline, road with lanes, sidewalks)
with cars, trucks, buses, pedestrians, bicycles, traffic lights and signs placed at
random distances, so size, position and occlusion vary the way they do in real driving
data. Weather and time of day are rendered, not just labelled. The output is a JSONL
manifest in the ingest format (`curation.bulk.clean_item_record`), the JPEG files beside
it, and `truth.json`, which lists what was planted for the curation tools to find: exact
and near duplicates, and label errors in the ground truth. The predictions of one model,
"demo-detector", come with the mistakes real detectors make.

Every image depends only on (seed, index), so the files are the same whether they are
drawn by one process or several.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance

GENERATOR_VERSION = 1
MARKER = ".demo-complete.json"
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
CAMERA_HEIGHT_M = 1.4
# Smallest process pool worth its start-up cost.
PARALLEL_FROM = 200

Color = tuple[int, int, int]
Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels


def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([k for k, _ in weighted], weights=[w for _, w in weighted])[0]


def _shade(color: Color, factor: float) -> Color:
    return (
        max(0, min(255, int(color[0] * factor))),
        max(0, min(255, int(color[1] * factor))),
        max(0, min(255, int(color[2] * factor))),
    )


# ------------------------------------------------------------------------------ scene


@dataclass
class Thing:
    """One object in a scene: its full (unclipped) box and how to draw it."""

    label: str
    box: Box
    depth: float  # image row of its ground contact: larger is nearer, drawn later
    draw: Callable[[ImageDraw.ImageDraw, Box, list[Callable[[ImageDraw.ImageDraw], None]]], None]
    visible: float = 1.0


@dataclass
class Camera:
    width: int
    height: int
    horizon: float  # image row of the horizon
    center: float  # image column of the vanishing point
    focal: float  # pixels

    def ground(self, lateral_m: float, distance_m: float) -> tuple[float, float, float]:
        """Image column and row of a ground point, and pixels per metre there."""
        ppm = self.focal / distance_m
        return self.center + lateral_m * ppm, self.horizon + CAMERA_HEIGHT_M * ppm, ppm


@dataclass
class Scene:
    camera: Camera
    view: str  # rear (we follow them), front (they come at us) or side
    night: bool
    things: list[Thing] = field(default_factory=list)


VEHICLE_COLORS: tuple[Color, ...] = (
    (200, 30, 30),
    (30, 60, 160),
    (230, 230, 230),
    (40, 40, 40),
    (150, 150, 155),
    (20, 110, 60),
    (220, 180, 40),
    (120, 70, 30),
    (90, 20, 90),
    (240, 120, 20),
)
CLOTHES: tuple[Color, ...] = (
    (30, 30, 120),
    (150, 20, 20),
    (20, 100, 40),
    (200, 180, 50),
    (60, 60, 60),
    (230, 230, 230),
    (120, 60, 150),
    (210, 100, 30),
)
SKIN: tuple[Color, ...] = ((240, 200, 170), (200, 150, 110), (140, 95, 60), (90, 60, 40))
GLASS: Color = (70, 90, 110)
TYRE: Color = (20, 20, 22)


def _wheel(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float) -> None:
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=TYRE)
    draw.ellipse((cx - r * 0.45, cy - r * 0.45, cx + r * 0.45, cy + r * 0.45), fill=(150, 150, 150))


def _lamp(color: Color, box: Box, glow: bool) -> Callable[[ImageDraw.ImageDraw], None]:
    def paint(draw: ImageDraw.ImageDraw) -> None:
        if glow:
            x0, y0, x1, y1 = box
            g = max(2.0, (x1 - x0) * 0.8)
            draw.ellipse((x0 - g, y0 - g, x1 + g, y1 + g), fill=_shade(color, 0.55))
        draw.rectangle(box, fill=color)

    return paint


def _vehicle_painter(label: str, view: str, color: Color, night: bool) -> Any:
    """A function that draws a car, truck or bus seen from `view` into a box."""

    def paint(draw: ImageDraw.ImageDraw, b: Box, lights: list[Any]) -> None:
        x0, y0, x1, y1 = b
        w, h = x1 - x0, y1 - y0
        if view == "side":
            r = h * (0.2 if label == "car" else 0.15)
            if label == "car":
                draw.rounded_rectangle(
                    (x0, y0 + 0.4 * h, x1, y1 - 0.12 * h), radius=0.1 * h, fill=color
                )
                cabin = [
                    (x0 + 0.2 * w, y0 + 0.42 * h),
                    (x0 + 0.33 * w, y0),
                    (x1 - 0.3 * w, y0),
                    (x1 - 0.18 * w, y0 + 0.42 * h),
                ]
                draw.polygon(cabin, fill=color)
                draw.polygon(
                    [
                        (x0 + 0.26 * w, y0 + 0.4 * h),
                        (x0 + 0.35 * w, y0 + 0.08 * h),
                        (x1 - 0.32 * w, y0 + 0.08 * h),
                        (x1 - 0.24 * w, y0 + 0.4 * h),
                    ],
                    fill=GLASS,
                )
                wheels: tuple[float, ...] = (x0 + 0.2 * w, x1 - 0.2 * w)
            elif label == "truck":
                cab_w = 0.22 * w
                draw.rectangle(
                    (x0, y0, x1 - cab_w - 0.02 * w, y1 - 0.15 * h), fill=_shade(color, 1.1)
                )
                draw.rectangle((x1 - cab_w, y0 + 0.3 * h, x1, y1 - 0.15 * h), fill=color)
                draw.rectangle(
                    (x1 - cab_w * 0.7, y0 + 0.36 * h, x1 - 0.02 * w, y0 + 0.55 * h), fill=GLASS
                )
                draw.rectangle((x0, y1 - 0.2 * h, x1, y1 - 0.14 * h), fill=(50, 50, 50))
                wheels = (x0 + 0.12 * w, x0 + 0.3 * w, x1 - 0.12 * w)
            else:
                draw.rounded_rectangle((x0, y0, x1, y1 - 0.1 * h), radius=0.08 * h, fill=color)
                n = max(3, int(w / max(h, 1) * 2.2))
                step = (w * 0.86) / n
                for i in range(n):
                    wx = x0 + 0.1 * w + i * step
                    draw.rectangle((wx, y0 + 0.15 * h, wx + step * 0.8, y0 + 0.45 * h), fill=GLASS)
                draw.rectangle(
                    (x1 - 0.09 * w, y0 + 0.15 * h, x1 - 0.03 * w, y1 - 0.15 * h), fill=GLASS
                )
                wheels = (x0 + 0.18 * w, x1 - 0.18 * w)
            for cx in wheels:
                _wheel(draw, cx, y1 - r, r)
            lamp_h = max(1.0, 0.08 * h)
            lights.append(
                _lamp(
                    (255, 240, 180),
                    (x1 - 0.03 * w, y1 - 0.35 * h, x1, y1 - 0.35 * h + lamp_h),
                    night,
                )
            )
            lights.append(
                _lamp(
                    (230, 20, 20), (x0, y1 - 0.35 * h, x0 + 0.03 * w, y1 - 0.35 * h + lamp_h), night
                )
            )
            return
        # Seen from behind (we follow it) or from the front (it comes towards us).
        lamp = (230, 20, 20) if view == "rear" else (255, 240, 190)
        tyre_w = 0.18 * w
        draw.rectangle((x0 + 0.06 * w, y1 - 0.14 * h, x0 + 0.06 * w + tyre_w, y1), fill=TYRE)
        draw.rectangle((x1 - 0.06 * w - tyre_w, y1 - 0.14 * h, x1 - 0.06 * w, y1), fill=TYRE)
        if label == "car":
            draw.rounded_rectangle(
                (x0, y0 + 0.4 * h, x1, y1 - 0.1 * h), radius=0.08 * w, fill=color
            )
            draw.polygon(
                [
                    (x0 + 0.1 * w, y0 + 0.42 * h),
                    (x0 + 0.2 * w, y0),
                    (x1 - 0.2 * w, y0),
                    (x1 - 0.1 * w, y0 + 0.42 * h),
                ],
                fill=_shade(color, 0.9),
            )
            draw.polygon(
                [
                    (x0 + 0.16 * w, y0 + 0.38 * h),
                    (x0 + 0.24 * w, y0 + 0.07 * h),
                    (x1 - 0.24 * w, y0 + 0.07 * h),
                    (x1 - 0.16 * w, y0 + 0.38 * h),
                ],
                fill=GLASS,
            )
            lamp_y = y0 + 0.5 * h
        elif label == "truck":
            draw.rectangle((x0, y0, x1, y1 - 0.12 * h), fill=_shade(color, 1.1))
            draw.line(
                (x0 + w / 2, y0 + 0.05 * h, x0 + w / 2, y1 - 0.15 * h),
                fill=(60, 60, 60),
                width=max(1, int(w / 60)),
            )
            lamp_y = y1 - 0.28 * h
        else:
            draw.rounded_rectangle((x0, y0, x1, y1 - 0.1 * h), radius=0.06 * w, fill=color)
            draw.rectangle((x0 + 0.08 * w, y0 + 0.12 * h, x1 - 0.08 * w, y0 + 0.48 * h), fill=GLASS)
            draw.rectangle(
                (x0 + 0.2 * w, y0 + 0.02 * h, x1 - 0.2 * w, y0 + 0.09 * h), fill=(30, 30, 30)
            )
            lights.append(
                _lamp(
                    (255, 150, 30),
                    (x0 + 0.22 * w, y0 + 0.03 * h, x1 - 0.22 * w, y0 + 0.08 * h),
                    night,
                )
            )
            lamp_y = y1 - 0.3 * h
        lh = max(1.0, 0.08 * h)
        lights.append(_lamp(lamp, (x0 + 0.04 * w, lamp_y, x0 + 0.2 * w, lamp_y + lh), night))
        lights.append(_lamp(lamp, (x1 - 0.2 * w, lamp_y, x1 - 0.04 * w, lamp_y + lh), night))
        draw.rectangle(
            (x0 + 0.4 * w, lamp_y + 1.5 * lh, x1 - 0.4 * w, lamp_y + 2.5 * lh), fill=(235, 235, 225)
        )

    return paint


def _pedestrian_painter(shirt: Color, pants: Color, skin: Color, stride: float) -> Any:
    def paint(draw: ImageDraw.ImageDraw, b: Box, lights: list[Any]) -> None:
        x0, y0, x1, y1 = b
        w, h = x1 - x0, y1 - y0
        cx = (x0 + x1) / 2
        head = 0.13 * h
        draw.ellipse((cx - head / 2, y0, cx + head / 2, y0 + head), fill=skin)
        limb = max(1, int(w * 0.22))
        hip = y0 + 0.55 * h
        draw.line((cx - 0.1 * w, hip, cx - stride * w, y1), fill=pants, width=limb)
        draw.line((cx + 0.1 * w, hip, cx + stride * w, y1), fill=pants, width=limb)
        draw.line(
            (cx - 0.25 * w, y0 + 0.2 * h, x0, y0 + 0.5 * h), fill=shirt, width=max(1, limb // 2 + 1)
        )
        draw.line(
            (cx + 0.25 * w, y0 + 0.2 * h, x1, y0 + 0.5 * h), fill=shirt, width=max(1, limb // 2 + 1)
        )
        draw.rounded_rectangle(
            (cx - 0.3 * w, y0 + head * 1.05, cx + 0.3 * w, hip + 0.03 * h),
            radius=0.1 * w,
            fill=shirt,
        )

    return paint


def _bicycle_painter(frame: Color) -> Any:
    def paint(draw: ImageDraw.ImageDraw, b: Box, lights: list[Any]) -> None:
        x0, y0, x1, y1 = b
        w, h = x1 - x0, y1 - y0
        r = 0.31 * h
        lw = max(1, int(h / 18))
        rear, front = (x0 + r, y1 - r), (x1 - r, y1 - r)
        for cx, cy in (rear, front):
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=TYRE, width=lw + 1)
        pedal = (x0 + 0.45 * w, y1 - r * 0.9)
        seat = (x0 + 0.36 * w, y0 + 0.28 * h)
        head = (x1 - 0.3 * w, y0 + 0.22 * h)
        draw.line([rear, pedal, seat, rear], fill=frame, width=lw)
        draw.line([seat, head, pedal], fill=frame, width=lw)
        draw.line([head, front], fill=frame, width=lw)
        draw.line(
            [(head[0] - 0.02 * w, y0), (head[0] + 0.08 * w, y0 + 0.04 * h), head],
            fill=(40, 40, 40),
            width=lw,
        )
        draw.line(
            [(seat[0] - 0.08 * w, seat[1] - 0.03 * h), (seat[0] + 0.06 * w, seat[1] - 0.03 * h)],
            fill=(30, 30, 30),
            width=lw + 1,
        )

    return paint


def _traffic_light_painter(pole_foot: tuple[float, float], lit: int, night: bool) -> Any:
    def paint(draw: ImageDraw.ImageDraw, b: Box, lights: list[Any]) -> None:
        x0, y0, x1, y1 = b
        w, h = x1 - x0, y1 - y0
        px, py = pole_foot
        draw.line((px, py, px, y1), fill=(70, 70, 75), width=max(1, int(w * 0.3)))
        draw.rounded_rectangle(b, radius=0.15 * w, fill=(28, 28, 30))
        colors = ((230, 30, 30), (240, 190, 20), (30, 210, 80))
        for i, color in enumerate(colors):
            cy = y0 + h * (0.18 + 0.32 * i)
            rr = 0.3 * w
            lamp_box = (x0 + w / 2 - rr, cy - rr, x0 + w / 2 + rr, cy + rr)
            if i == lit:
                lights.append(_round_lamp(color, lamp_box, night))
            else:
                draw.ellipse(lamp_box, fill=_shade(color, 0.25))

    return paint


def _round_lamp(color: Color, box: Box, glow: bool) -> Callable[[ImageDraw.ImageDraw], None]:
    def paint(draw: ImageDraw.ImageDraw) -> None:
        x0, y0, x1, y1 = box
        if glow:
            g = (x1 - x0) * 0.9
            draw.ellipse((x0 - g, y0 - g, x1 + g, y1 + g), fill=_shade(color, 0.5))
        draw.ellipse(box, fill=color)

    return paint


def _sign_painter(pole_foot: tuple[float, float], shape: str) -> Any:
    def paint(draw: ImageDraw.ImageDraw, b: Box, lights: list[Any]) -> None:
        x0, y0, x1, y1 = b
        w, h = x1 - x0, y1 - y0
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        px, py = pole_foot
        draw.line((px, py, px, cy), fill=(120, 120, 125), width=max(1, int(w * 0.08)))
        border = max(1, int(w * 0.12))
        if shape == "stop":
            pts = [
                (
                    cx + w / 2 * math.cos(math.pi / 8 + k * math.pi / 4),
                    cy + h / 2 * math.sin(math.pi / 8 + k * math.pi / 4),
                )
                for k in range(8)
            ]
            draw.polygon(pts, fill=(200, 20, 20), outline=(255, 255, 255))
            draw.line(
                (x0 + 0.25 * w, cy, x1 - 0.25 * w, cy),
                fill=(255, 255, 255),
                width=max(1, int(h * 0.12)),
            )
        elif shape == "warning":
            draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=(200, 20, 20))
            inset = border
            draw.polygon(
                [
                    (cx, y0 + 2 * inset),
                    (x1 - 1.6 * inset, y1 - inset),
                    (x0 + 1.6 * inset, y1 - inset),
                ],
                fill=(250, 250, 250),
            )
            draw.line(
                (cx, y0 + 0.4 * h, cx, y0 + 0.7 * h), fill=(20, 20, 20), width=max(1, int(w * 0.08))
            )
        elif shape == "limit":
            draw.ellipse(b, fill=(200, 20, 20))
            draw.ellipse((x0 + border, y0 + border, x1 - border, y1 - border), fill=(250, 250, 250))
            draw.rectangle(
                (cx - 0.2 * w, cy - 0.12 * h, cx + 0.2 * w, cy + 0.12 * h), fill=(30, 30, 30)
            )
        elif shape == "parking":
            draw.rectangle(b, fill=(20, 70, 180))
            draw.rectangle(
                (cx - 0.15 * w, y0 + 0.2 * h, cx + 0.05 * w, y1 - 0.2 * h), fill=(250, 250, 250)
            )
        else:
            draw.polygon(
                [(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=(240, 200, 20), outline=(30, 30, 30)
            )

    return paint


SIGN_SHAPES = ("stop", "warning", "limit", "parking", "priority")

# Physical sizes in metres (width, height); side views use the length as width.
SIZES_M = {
    "car": ((1.8, 1.5), (4.4, 1.5)),
    "truck": ((2.5, 3.6), (7.5, 3.6)),
    "bus": ((2.55, 3.2), (11.0, 3.2)),
}


def _place(scene: Scene, rng: random.Random) -> None:
    """Populate the scene with objects at random distances along the street."""
    cam = scene.camera
    view, night = scene.view, scene.night
    lanes = (-3.5, 0.0, 3.5) if view != "side" else (-3.5, 3.5)
    taken: list[tuple[float, float, float]] = []  # lane, distance, length

    def far_enough(lane: float, dist: float, length: float) -> bool:
        return all(
            abs(lane - lo) > 1 or abs(dist - do) > (length + lgo) / 2 + 0.5 for lo, do, lgo in taken
        )

    def add(
        label: str,
        lateral: float,
        dist: float,
        size_m: tuple[float, float],
        paint: Any,
        elevation: float = 0.0,
        foot: bool = False,
    ) -> None:
        gx, gy, ppm = cam.ground(lateral, dist)
        w, h = size_m[0] * ppm, size_m[1] * ppm
        y1 = gy - elevation * ppm
        box = (gx - w / 2, y1 - h, gx + w / 2, y1)
        if foot:
            paint = paint((gx, gy))
        scene.things.append(Thing(label, box, gy, paint))

    def distance() -> float:
        return math.exp(rng.uniform(math.log(5.0), math.log(90.0)))

    for _ in range(rng.randint(1, 7)):
        label = rng.choices(("car", "truck", "bus"), weights=(0.72, 0.16, 0.12))[0]
        front, side = SIZES_M[label]
        size = side if view == "side" else front
        for _try in range(12):
            lane = rng.choice(lanes) + rng.uniform(-0.4, 0.4)
            dist = distance()
            if view == "side":
                dist = max(dist, 9.0)  # seen side-on, a near vehicle would fill the frame
            elif abs(lane) < 1.0:
                dist = max(dist, 7.0)  # the vehicle just ahead of us keeps a distance
            if far_enough(lane, dist, size[0] if view == "side" else 5.0):
                taken.append((lane, dist, size[0] if view == "side" else 5.0))
                facing = (
                    "side"
                    if view == "side"
                    else ("front" if (lane < -1 and view == "rear") else view)
                )
                color = rng.choice(VEHICLE_COLORS)
                add(label, lane, dist, size, _vehicle_painter(label, facing, color, night))
                break
    for _ in range(rng.choices((0, 1, 2, 3, 4, 5), weights=(2, 3, 3, 2, 1, 1))[0]):
        lateral = rng.choice((-1, 1)) * rng.uniform(5.8, 8.5)
        if rng.random() < 0.15:
            lateral = rng.uniform(-4.5, 4.5)  # crossing the street
        height = rng.uniform(1.55, 1.9)
        paint = _pedestrian_painter(
            rng.choice(CLOTHES), rng.choice(CLOTHES), rng.choice(SKIN), rng.uniform(0.05, 0.35)
        )
        add("pedestrian", lateral, distance(), (height * 0.32, height), paint)
    for _ in range(rng.choices((0, 1, 2), weights=(5, 3, 1))[0]):
        lateral = rng.choice((-1, 1)) * rng.uniform(4.9, 7.5)
        add(
            "bicycle",
            lateral,
            distance(),
            (1.75, 1.1),
            _bicycle_painter(rng.choice(VEHICLE_COLORS)),
        )
    for _ in range(rng.choices((0, 1, 2), weights=(4, 4, 2))[0]):
        lateral = rng.choice((-1, 1)) * rng.uniform(5.6, 6.5)
        paint = partial(_traffic_light_painter, lit=rng.randrange(3), night=night)
        add(
            "traffic_light",
            lateral,
            distance(),
            (0.38, 1.05),
            paint,
            elevation=rng.uniform(2.6, 3.6),
            foot=True,
        )
    for _ in range(rng.choices((0, 1, 2), weights=(4, 4, 2))[0]):
        lateral = rng.choice((-1, 1)) * rng.uniform(5.6, 7.0)
        edge = rng.uniform(0.6, 0.9)
        paint = partial(_sign_painter, shape=rng.choice(SIGN_SHAPES))
        add(
            "sign",
            lateral,
            distance(),
            (edge, edge),
            paint,
            elevation=rng.uniform(1.8, 2.4),
            foot=True,
        )


def _clip(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    return (
        max(0, min(width, math.floor(x0))),
        max(0, min(height, math.floor(y0))),
        max(0, min(width, math.ceil(x1))),
        max(0, min(height, math.ceil(y1))),
    )


def _truncated(box: Box, width: int, height: int) -> bool:
    """Whether part of the object lies outside the image."""
    return box[0] < 0 or box[1] < 0 or box[2] > width or box[3] > height


def _keep_visible(things: list[Thing], width: int, height: int) -> list[Thing]:
    """Drop objects too small, or hidden behind nearer ones, to be annotated fairly.

    Visibility is measured on boxes: each object covers its box in drawing order.
    """
    things = sorted(things, key=lambda t: t.depth)
    for _round in range(3):
        owner = np.zeros((height, width), dtype=np.int16)
        for i, t in enumerate(things):
            x0, y0, x1, y1 = _clip(t.box, width, height)
            owner[y0:y1, x0:x1] = i + 1
        counts = np.bincount(owner.ravel(), minlength=len(things) + 1)
        kept: list[Thing] = []
        for i, t in enumerate(things):
            x0, y0, x1, y1 = _clip(t.box, width, height)
            area = (x1 - x0) * (y1 - y0)
            t.visible = float(counts[i + 1]) / area if area else 0.0
            if x1 - x0 >= 4 and y1 - y0 >= 6 and t.visible >= 0.25:
                kept.append(t)
        if len(kept) == len(things):
            break
        things = kept
    return things


SKIES = {
    ("day", False): ((80, 140, 215), (180, 210, 238)),
    ("day", True): ((140, 145, 155), (195, 197, 202)),
    ("dusk", False): ((55, 50, 115), (250, 150, 80)),
    ("dusk", True): ((90, 85, 105), (170, 140, 125)),
    ("night", False): ((4, 6, 22), (30, 35, 70)),
    ("night", True): ((15, 16, 24), (45, 46, 56)),
}
TONE = {
    "day": ((1.0, 1.0, 1.0), 0.0),
    "dusk": ((0.82, 0.7, 0.66), 0.0),
    "night": ((0.3, 0.32, 0.45), 0.0),
}


def _background(
    img: Image.Image,
    draw: ImageDraw.ImageDraw,
    cam: Camera,
    rng: random.Random,
    time_of_day: str,
    overcast: bool,
    view: str,
) -> None:
    width, height = img.size
    top, bottom = SKIES[(time_of_day, overcast)]
    hz = int(cam.horizon)
    t = np.linspace(0.0, 1.0, max(hz, 1))[:, None]
    sky = (np.array(top) * (1 - t) + np.array(bottom) * t).astype(np.uint8)
    img.paste(
        Image.fromarray(np.repeat(sky[:, None, :], width, axis=1).reshape(max(hz, 1), width, 3)),
        (0, 0),
    )
    if time_of_day == "night" and not overcast:
        for _ in range(width * hz // 900):
            x, y = rng.uniform(0, width), rng.uniform(0, hz * 0.8)
            draw.point((x, y), fill=(220, 220, 240))
    ground = rng.choice(((105, 120, 85), (120, 118, 110), (95, 110, 80)))
    draw.rectangle((0, hz, width, height), fill=ground)
    # Skyline on the horizon.
    x = rng.uniform(-30, 0)
    while x < width:
        bw = rng.uniform(0.06, 0.18) * width
        bh = rng.uniform(0.05, 0.32) * height
        shade = rng.choice(
            ((150, 140, 130), (120, 110, 105), (170, 165, 150), (100, 105, 115), (140, 120, 100))
        )
        draw.rectangle((x, hz - bh, x + bw, hz), fill=shade)
        step = max(4.0, bw / rng.randint(3, 6))
        wy = hz - bh + step * 0.4
        while wy < hz - step * 0.6:
            wx = x + step * 0.3
            while wx < x + bw - step * 0.6:
                draw.rectangle(
                    (wx, wy, wx + step * 0.45, wy + step * 0.45), fill=_shade(shade, 0.7)
                )
                wx += step
            wy += step
        x += bw + rng.uniform(0, 0.04) * width
    # Street: sidewalks, road, lane markings, all converging on the vanishing point.
    far, near = 300.0, 0.5

    def strip(a: float, b: float, color: Color) -> None:
        pts = [
            cam.ground(a, far)[:2],
            cam.ground(b, far)[:2],
            cam.ground(b, near)[:2],
            cam.ground(a, near)[:2],
        ]
        draw.polygon(pts, fill=color)

    strip(-9.5, -5.25, (160, 158, 152))
    strip(5.25, 9.5, (160, 158, 152))
    strip(-5.25, 5.25, rng.choice(((70, 70, 74), (85, 84, 82), (60, 62, 66))))
    for lateral, color in ((-5.1, (235, 235, 235)), (5.1, (235, 235, 235))):
        pts = [
            cam.ground(lateral - 0.08, far)[:2],
            cam.ground(lateral + 0.08, far)[:2],
            cam.ground(lateral + 0.08, near)[:2],
            cam.ground(lateral - 0.08, near)[:2],
        ]
        draw.polygon(pts, fill=color)
    marks = (-1.75, 1.75) if view != "side" else (0.0,)
    for lateral in marks:
        dist = 4.0 + rng.uniform(0, 6)
        while dist < 120:
            pts = [
                cam.ground(lateral - 0.07, dist + 3)[:2],
                cam.ground(lateral + 0.07, dist + 3)[:2],
                cam.ground(lateral + 0.07, dist)[:2],
                cam.ground(lateral - 0.07, dist)[:2],
            ]
            draw.polygon(pts, fill=(225, 220, 200) if lateral else (230, 190, 40))
            dist += 9.0


def _tone(img: Image.Image, time_of_day: str) -> Image.Image:
    gain, _ = TONE[time_of_day]
    if time_of_day == "day":
        return img
    arr = np.asarray(img, dtype=np.float32) * np.array(gain, dtype=np.float32)
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


def _weather(
    img: Image.Image, weather: str, cam: Camera, rng: random.Random, night: bool
) -> Image.Image:
    width, height = img.size
    if weather == "fog":
        rows = np.arange(height, dtype=np.float32)
        base = rng.uniform(0.3, 0.5)
        alpha = base + (0.85 - base) * np.exp(-np.abs(rows - cam.horizon) / (0.25 * height))
        alpha = np.clip(alpha, 0, 0.9)[:, None, None]
        fog = np.array((70, 72, 80) if night else (200, 202, 206), dtype=np.float32)
        arr = np.asarray(img, dtype=np.float32)
        return Image.fromarray((arr * (1 - alpha) + fog * alpha).astype(np.uint8))
    if weather == "rain":
        img = ImageEnhance.Color(ImageEnhance.Brightness(img).enhance(0.85)).enhance(0.75)
        mask = Image.new("L", img.size, 0)
        mdraw = ImageDraw.Draw(mask)
        slant = rng.uniform(-0.35, 0.35)
        for _ in range(width * height // 450):
            x, y = rng.uniform(-20, width + 20), rng.uniform(-20, height)
            length = rng.uniform(6, 18) * height / 360
            mdraw.line((x, y, x + slant * length, y + length), fill=rng.randint(70, 140), width=1)
        streak = Image.new("RGB", img.size, (120, 125, 140) if night else (205, 210, 222))
        return Image.composite(streak, img, mask)
    if weather == "snow":
        arr = np.asarray(img, dtype=np.float32)
        hz = int(cam.horizon)
        white = 90.0 if night else 235.0
        arr[hz:] = arr[hz:] * 0.7 + white * 0.3
        img = Image.fromarray(arr.astype(np.uint8))
        mask = Image.new("L", img.size, 0)
        mdraw = ImageDraw.Draw(mask)
        for _ in range(width * height // 380):
            x, y = rng.uniform(0, width), rng.uniform(0, height)
            r = rng.uniform(0.6, 2.4) * height / 360
            mdraw.ellipse((x - r, y - r, x + r, y + r), fill=rng.randint(150, 240))
        flakes = Image.new("RGB", img.size, (150, 150, 160) if night else (250, 250, 252))
        return Image.composite(flakes, img, mask)
    return img


# ------------------------------------------------------------------------------ items


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


def _geometry(box: Box) -> dict[str, float]:
    x0, y0, x1, y1 = box
    return {"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0}


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


def _encode(img: Image.Image, quality: int) -> bytes:
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
    _place(scene, rng)
    things = _keep_visible(scene.things, width, height)

    img = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(img)
    _background(img, draw, cam, rng, metadata["time_of_day"], metadata["weather"] != "clear", view)
    lights: list[Callable[[ImageDraw.ImageDraw], None]] = []
    for t in things:
        t.draw(draw, t.box, lights)
    img = _tone(img, metadata["time_of_day"])
    draw = ImageDraw.Draw(img)
    for paint in lights:
        paint(draw)
    img = _weather(img, metadata["weather"], cam, rng, night)

    ref = reference_id(index)
    truths = [(t.label, tuple(map(float, _clip(t.box, width, height))), t.visible) for t in things]
    annotations = _shape_rows(
        ref,
        "gt",
        [(label, box, v) for label, box, v in truths],  # type: ignore[misc]
        extra=[
            {"occluded": round(1 - t.visible, 2), "truncated": _truncated(t.box, width, height)}
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
    return _encode(img, rng.choice((82, 85, 88, 90))), row


def _render_to(args: tuple[int, int, str]) -> dict[str, Any]:
    seed, index, folder = args
    data, row = render_scene(seed, index)
    Path(folder, row["image"]).write_bytes(data)
    return row


# ------------------------------------------------------------------------- duplicates


def _renamed(shapes: list[dict[str, Any]], ref: str, source: str) -> list[dict[str, Any]]:
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
    for s in _renamed(shapes, ref, source):
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
            ix0, iy0, ix1, iy1 = _clip((x0, y0, x1, y1), width, height)
            geometry = {"x": ix0, "y": iy0, "width": ix1 - ix0, "height": iy1 - iy0}
        out.append({**s, "geometry": geometry})
    return out


def _near_duplicate(
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
    Path(folder, "images", f"{ref}.jpg").write_bytes(_encode(img, quality))
    row = {
        **source_row,
        "reference_id": ref,
        "image": f"images/{ref}.jpg",
        "annotations": _moved(source_row["annotations"], ref, src, scale, dx, dy, width, height),
        "predictions": _moved(source_row["predictions"], ref, src, scale, dx, dy, width, height),
    }
    return row, {"reference_id": ref, "duplicate_of": src, **detail}


# ------------------------------------------------------------------------- label errors


def _plant_label_error(
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


# ------------------------------------------------------------------------------ driver


@dataclass
class DemoResult:
    folder: Path
    manifest: Path
    count: int
    generated: bool  # False when a complete dataset for the same seed and count was there
    seconds: float


def _plan(seed: int, count: int) -> tuple[dict[int, int], dict[int, int], int]:
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


def demo_is_complete(folder: Path, *, seed: int, count: int) -> bool:
    marker = folder / MARKER
    try:
        found = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    wanted = {"generator": GENERATOR_VERSION, "seed": seed, "count": count}
    return (
        found == wanted
        and (folder / "manifest.jsonl").is_file()
        and (folder / "truth.json").is_file()
    )


def _map(fn: Callable[[Any], Any], tasks: list[Any], workers: int) -> Iterator[Any]:
    if workers <= 1 or len(tasks) < PARALLEL_FROM:
        return map(fn, tasks)
    # spawn, not fork: the caller may hold database connections and threads.
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))
    try:
        return iter(list(pool.map(fn, tasks, chunksize=max(1, len(tasks) // (workers * 8)))))
    finally:
        pool.shutdown()


def demo_generate(
    *,
    folder: Path,
    count: int = 2000,
    seed: int = 0,
    workers: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> DemoResult:
    """Write the demo dataset into `folder`, unless a complete one for seed/count is there."""
    if count < 1:
        raise ValueError("count must be at least 1")
    started = time.monotonic()
    folder = folder.resolve()
    manifest = folder / "manifest.jsonl"
    if demo_is_complete(folder, seed=seed, count=count):
        return DemoResult(folder, manifest, count, False, time.monotonic() - started)
    say = progress or (lambda _msg: None)
    (folder / MARKER).unlink(missing_ok=True)
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    workers = workers if workers is not None else min(4, os.cpu_count() or 1)

    exact_of, near_of, error_count = _plan(seed, count)
    originals = [i for i in range(count) if i not in exact_of and i not in near_of]
    say(f"drawing {len(originals)} scenes into {folder}")
    rows: dict[int, dict[str, Any]] = {}
    for row in _map(_render_to, [(seed, i, str(folder)) for i in originals], workers):
        rows[int(row["reference_id"].split("-")[1])] = row

    truth: dict[str, Any] = {
        "generator": GENERATOR_VERSION,
        "seed": seed,
        "count": count,
        "model": MODEL_NAME,
        "classes": list(CLASSES),
        "exact_duplicates": [],
        "near_duplicates": [],
        "label_errors": [],
    }
    say(f"planting {len(exact_of)} exact and {len(near_of)} near duplicates")
    for index, source in sorted(exact_of.items()):
        src = rows[source]
        ref = reference_id(index)
        shutil.copyfile(folder / src["image"], images / f"{ref}.jpg")
        rows[index] = {
            **src,
            "reference_id": ref,
            "image": f"images/{ref}.jpg",
            "annotations": _renamed(src["annotations"], ref, src["reference_id"]),
            "predictions": _renamed(src["predictions"], ref, src["reference_id"]),
        }
        truth["exact_duplicates"].append({"reference_id": ref, "duplicate_of": src["reference_id"]})
    for index, source in sorted(near_of.items()):
        row, entry = _near_duplicate((seed, rows[source], index, str(folder)))
        rows[index] = row
        truth["near_duplicates"].append(entry)

    # Label errors go on originals that no duplicate copies, so each is planted once.
    rng = random.Random(f"nucleus-demo:{seed}:errors")
    copied = set(exact_of.values()) | set(near_of.values())
    candidates = [i for i in originals if i not in copied and rows[i]["annotations"]]
    for index in sorted(rng.sample(candidates, min(error_count, len(candidates)))):
        row = rows[index]
        with Image.open(folder / row["image"]) as opened:
            size = opened.size
        truth["label_errors"].append(_plant_label_error(rng, row, size))

    wanted = {Path(rows[i]["image"]).name for i in range(count)}
    for stale in images.glob("*.jpg"):
        if stale.name not in wanted:
            stale.unlink()
    tmp = manifest.with_suffix(".jsonl.tmp")
    with tmp.open("w") as out:
        for i in range(count):
            out.write(json.dumps(rows[i], separators=(",", ":")) + "\n")
    tmp.replace(manifest)
    (folder / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    (folder / MARKER).write_text(
        json.dumps({"generator": GENERATOR_VERSION, "seed": seed, "count": count})
    )
    seconds = time.monotonic() - started
    say(f"wrote {count} images and {manifest.name} in {seconds:.1f} s")
    return DemoResult(folder, manifest, count, True, seconds)
