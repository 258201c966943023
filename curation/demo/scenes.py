"""Scenes: a pinhole-camera street, the objects placed along it, and how it is lit.

A scene is a small street (sky, skyline, road with lanes, sidewalks) seen by a camera
`CAMERA_HEIGHT_M` above the road, with objects placed at random distances, so size,
position and occlusion vary the way they do in real driving data. Weather and time of
day are rendered, not just labelled.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance

from curation.demo.painters import (
    CLOTHES,
    SIGN_SHAPES,
    SKIN,
    VEHICLE_COLORS,
    Box,
    Color,
    bicycle_painter,
    pedestrian_painter,
    scale_color,
    sign_painter,
    traffic_light_painter,
    vehicle_painter,
)

CAMERA_HEIGHT_M = 1.4


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


# Physical sizes in metres (width, height); side views use the length as width.
SIZES_M = {
    "car": ((1.8, 1.5), (4.4, 1.5)),
    "truck": ((2.5, 3.6), (7.5, 3.6)),
    "bus": ((2.55, 3.2), (11.0, 3.2)),
}


def place_things(scene: Scene, rng: random.Random) -> None:
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
                add(label, lane, dist, size, vehicle_painter(label, facing, color, night))
                break
    for _ in range(rng.choices((0, 1, 2, 3, 4, 5), weights=(2, 3, 3, 2, 1, 1))[0]):
        lateral = rng.choice((-1, 1)) * rng.uniform(5.8, 8.5)
        if rng.random() < 0.15:
            lateral = rng.uniform(-4.5, 4.5)  # crossing the street
        height = rng.uniform(1.55, 1.9)
        paint = pedestrian_painter(
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
            bicycle_painter(rng.choice(VEHICLE_COLORS)),
        )
    for _ in range(rng.choices((0, 1, 2), weights=(4, 4, 2))[0]):
        lateral = rng.choice((-1, 1)) * rng.uniform(5.6, 6.5)
        paint = partial(traffic_light_painter, lit=rng.randrange(3), night=night)
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
        paint = partial(sign_painter, shape=rng.choice(SIGN_SHAPES))
        add(
            "sign",
            lateral,
            distance(),
            (edge, edge),
            paint,
            elevation=rng.uniform(1.8, 2.4),
            foot=True,
        )


def clip_box(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    return (
        max(0, min(width, math.floor(x0))),
        max(0, min(height, math.floor(y0))),
        max(0, min(width, math.ceil(x1))),
        max(0, min(height, math.ceil(y1))),
    )


def is_truncated(box: Box, width: int, height: int) -> bool:
    """Whether part of the object lies outside the image."""
    return box[0] < 0 or box[1] < 0 or box[2] > width or box[3] > height


def keep_visible(things: list[Thing], width: int, height: int) -> list[Thing]:
    """Drop objects too small, or hidden behind nearer ones, to be annotated fairly.

    Visibility is measured on boxes: each object covers its box in drawing order.
    """
    things = sorted(things, key=lambda t: t.depth)
    for _round in range(3):
        owner = np.zeros((height, width), dtype=np.int16)
        for i, t in enumerate(things):
            x0, y0, x1, y1 = clip_box(t.box, width, height)
            owner[y0:y1, x0:x1] = i + 1
        counts = np.bincount(owner.ravel(), minlength=len(things) + 1)
        kept: list[Thing] = []
        for i, t in enumerate(things):
            x0, y0, x1, y1 = clip_box(t.box, width, height)
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


def draw_background(
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
                    (wx, wy, wx + step * 0.45, wy + step * 0.45), fill=scale_color(shade, 0.7)
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


def apply_tone(img: Image.Image, time_of_day: str) -> Image.Image:
    gain, _ = TONE[time_of_day]
    if time_of_day == "day":
        return img
    arr = np.asarray(img, dtype=np.float32) * np.array(gain, dtype=np.float32)
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


def apply_weather(
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
