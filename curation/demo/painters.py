"""Painters: functions that draw one kind of street object into its box.

Each `*_painter` returns a function `paint(draw, box, lights)` that draws the object into
`box`; lamps that should glow go into `lights`, drawn after the scene is toned for the
time of day so that they stay bright at night.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from PIL import ImageDraw

Color = tuple[int, int, int]
Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels


def scale_color(color: Color, factor: float) -> Color:
    return (
        max(0, min(255, int(color[0] * factor))),
        max(0, min(255, int(color[1] * factor))),
        max(0, min(255, int(color[2] * factor))),
    )


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
            draw.ellipse((x0 - g, y0 - g, x1 + g, y1 + g), fill=scale_color(color, 0.55))
        draw.rectangle(box, fill=color)

    return paint


def vehicle_painter(label: str, view: str, color: Color, night: bool) -> Any:
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
                    (x0, y0, x1 - cab_w - 0.02 * w, y1 - 0.15 * h), fill=scale_color(color, 1.1)
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
                fill=scale_color(color, 0.9),
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
            draw.rectangle((x0, y0, x1, y1 - 0.12 * h), fill=scale_color(color, 1.1))
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


def pedestrian_painter(shirt: Color, pants: Color, skin: Color, stride: float) -> Any:
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


def bicycle_painter(frame: Color) -> Any:
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


def traffic_light_painter(pole_foot: tuple[float, float], lit: int, night: bool) -> Any:
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
                draw.ellipse(lamp_box, fill=scale_color(color, 0.25))

    return paint


def _round_lamp(color: Color, box: Box, glow: bool) -> Callable[[ImageDraw.ImageDraw], None]:
    def paint(draw: ImageDraw.ImageDraw) -> None:
        x0, y0, x1, y1 = box
        if glow:
            g = (x1 - x0) * 0.9
            draw.ellipse((x0 - g, y0 - g, x1 + g, y1 + g), fill=scale_color(color, 0.5))
        draw.ellipse(box, fill=color)

    return paint


def sign_painter(pole_foot: tuple[float, float], shape: str) -> Any:
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
