"""Test data for the UI tests: a few dozen small drawn street scenes with boxes, metadata
and one model's predictions, stored the way ingest stores them (image, thumbnail, rows)."""

from __future__ import annotations

import io
import random
from typing import Any

from PIL import Image, ImageDraw

from curation.bulk.validate import clean_item_record
from curation.bulk.write import records_write
from curation.media import media_process
from curation.models import Dataset, Item

LABELS = ("car", "person", "bicycle", "traffic light")
WEATHER = ("sunny", "rain", "fog")
SIZE = (320, 240)
MODEL = "detector-v1"


def _car(
    draw: ImageDraw.ImageDraw, x: int, y: int, rng: random.Random
) -> tuple[int, int, int, int]:
    w, h = rng.randint(60, 96), rng.randint(28, 40)
    colour = rng.choice(
        [(200, 40, 50), (30, 90, 180), (235, 235, 240), (40, 40, 48), (230, 170, 20)]
    )
    draw.rounded_rectangle([x, y + h * 0.35, x + w, y + h * 0.85], radius=6, fill=colour)
    draw.rounded_rectangle([x + w * 0.2, y, x + w * 0.75, y + h * 0.45], radius=6, fill=colour)
    draw.rectangle([x + w * 0.27, y + h * 0.08, x + w * 0.68, y + h * 0.38], fill=(170, 205, 230))
    for cx in (x + w * 0.22, x + w * 0.78):
        draw.ellipse([cx - h * 0.16, y + h * 0.68, cx + h * 0.16, y + h], fill=(25, 25, 28))
    return x, y, w, h


def _person(
    draw: ImageDraw.ImageDraw, x: int, y: int, rng: random.Random
) -> tuple[int, int, int, int]:
    w, h = rng.randint(14, 20), rng.randint(42, 58)
    shirt = rng.choice([(60, 120, 200), (200, 80, 60), (70, 160, 90), (150, 90, 170)])
    draw.ellipse([x + w * 0.25, y, x + w * 0.75, y + h * 0.2], fill=(230, 190, 160))
    draw.rectangle([x, y + h * 0.2, x + w, y + h * 0.6], fill=shirt)
    draw.rectangle([x + w * 0.1, y + h * 0.6, x + w * 0.45, y + h], fill=(40, 50, 80))
    draw.rectangle([x + w * 0.55, y + h * 0.6, x + w * 0.9, y + h], fill=(40, 50, 80))
    return x, y, w, h


def _bicycle(
    draw: ImageDraw.ImageDraw, x: int, y: int, rng: random.Random
) -> tuple[int, int, int, int]:
    w, h = rng.randint(40, 52), rng.randint(24, 30)
    r = h * 0.45
    for cx in (x + r, x + w - r):
        draw.ellipse([cx - r, y + h - 2 * r, cx + r, y + h], outline=(30, 30, 30), width=3)
    draw.line(
        [x + r, y + h - r, x + w * 0.5, y + 2, x + w - r, y + h - r], fill=(200, 40, 40), width=3
    )
    return x, y, w, h


def _light(
    draw: ImageDraw.ImageDraw, x: int, y: int, rng: random.Random
) -> tuple[int, int, int, int]:
    w, h = 14, rng.randint(60, 80)
    draw.rectangle([x + 5, y + 30, x + 9, y + h], fill=(70, 70, 75))
    draw.rounded_rectangle([x, y, x + w, y + 34], radius=3, fill=(30, 30, 34))
    for i, colour in enumerate([(230, 50, 40), (240, 190, 30), (60, 200, 90)]):
        draw.ellipse([x + 3, y + 3 + i * 10, x + 11, y + 11 + i * 10], fill=colour)
    return x, y, w, h


DRAW = {"car": _car, "person": _person, "bicycle": _bicycle, "traffic light": _light}


def scene(index: int) -> tuple[bytes, list[dict[str, Any]], dict[str, Any]]:
    """A small drawn street scene: its JPEG bytes, its ground-truth boxes, its metadata."""
    rng = random.Random(index)
    width, height = SIZE
    weather = WEATHER[index % len(WEATHER)]
    top = {"sunny": (110, 170, 235), "rain": (120, 130, 145), "fog": (200, 204, 208)}[weather]
    im = Image.new("RGB", SIZE, top)
    draw = ImageDraw.Draw(im)
    for row in range(int(height * 0.6)):
        shade = tuple(min(255, c + row // 3) for c in top)
        draw.line([0, row, width, row], fill=shade)
    horizon = int(height * 0.6)
    for _ in range(rng.randint(3, 6)):  # buildings
        bx = rng.randint(-20, width - 20)
        bw, bh = rng.randint(40, 90), rng.randint(40, 110)
        tone = rng.randint(120, 190)
        draw.rectangle([bx, horizon - bh, bx + bw, horizon], fill=(tone, tone - 10, tone - 20))
    draw.rectangle([0, horizon, width, height], fill=(86, 90, 96))
    for x in range(0, width, 40):
        draw.rectangle([x, int(height * 0.8), x + 20, int(height * 0.8) + 3], fill=(235, 235, 235))
    boxes = []
    for n in range(rng.randint(1, 4)):
        label = LABELS[(index + n * 3) % len(LABELS)]
        x = rng.randint(4, width - 100)
        y = rng.randint(horizon - 50, height - 64)
        bx, by, bw, bh = DRAW[label](draw, x, y, rng)
        boxes.append(
            {
                "kind": "box",
                "label": label,
                "geometry": {
                    "x": float(bx),
                    "y": float(by),
                    "width": float(bw),
                    "height": float(bh),
                },
            }
        )
    if weather == "rain":
        for _ in range(160):
            rx, ry = rng.randint(0, width), rng.randint(0, height)
            draw.line([rx, ry, rx - 3, ry + 8], fill=(200, 210, 225), width=1)
    out = io.BytesIO()
    im.save(out, "JPEG", quality=82)
    metadata = {
        "weather": weather,
        "speed": index * 3,
        "camera": {"side": "front" if index % 2 else "rear"},
    }
    return out.getvalue(), boxes, metadata


def populate(dataset: Dataset, count: int = 24, *, model: str = MODEL) -> list[Item]:
    """Create `count` items with images, thumbnails, boxes, metadata and predictions.

    The first box of each item is predicted with confidence 0.9 (shifted a little), the
    others with 0.3, so a confidence threshold visibly hides some predictions.
    """
    records = []
    for index in range(count):
        data, boxes, metadata = scene(index)
        media = media_process(
            dataset_id=dataset.pk, data=data, source_uri=f"test://scene-{index:03d}.jpg"
        )
        predictions = []
        for i, box in enumerate(boxes):
            g = box["geometry"]
            moved = {**g, "x": max(0.0, g["x"] - 3.0), "y": max(0.0, g["y"] - 2.0)}
            predictions.append(
                {**box, "geometry": moved, "model": model, "confidence": 0.9 if i == 0 else 0.3}
            )
        raw = {
            "reference_id": f"scene-{index:03d}",
            "metadata": metadata,
            "annotations": boxes,
            "predictions": predictions,
        }
        records.append(clean_item_record(raw, media=media))
    records_write(dataset=dataset, records=records)
    return list(Item.objects.filter(dataset=dataset).order_by("id"))


def facet_panel(client: Any, response: Any) -> str:
    """The facet sidebar of a grid page: inline when cached, else what the page asks for."""
    import html
    import re

    body = response.content.decode()
    found = re.search(r'data-testid="facet-loading" hx-get="([^"]+)"', body)
    if found is None:
        return body
    panel = client.get(html.unescape(found.group(1)))
    assert panel.status_code == 200, panel.status_code
    return str(panel.content.decode())


# A dataset description longer than two lines of the datasets list.
LONG_DESCRIPTION = (
    "Dash-cam frames from four cities, 2019-2024, labelled by two vendors.\n"
    + "Night frames were relabelled in 2025 after the audit; " * 6
    + "the end of the description."
)


def outcome_world(dataset: Dataset) -> dict[str, int]:
    """Four items (no images) whose outcomes for model "yolo" at the default operating
    point (IoU 0.5, confidence 0.5) are worked out by hand:

    a: car found (tp car), bus missed (fn bus)
    b: car predicted on nothing (fp car, 0.8), person found (tp person, 0.7), a second
       person prediction below the threshold (no row)
    c: two persons missed (fn person x2), two cars on nothing (fp car x2, 0.9 and 0.6)
    d: nothing on either side
    """
    from tests.api_helpers import add_items, box

    def pred(*args: float, **extra: Any) -> dict[str, Any]:
        return box(*args, model="yolo", **extra)

    return add_items(
        dataset,
        {
            "reference_id": "a",
            "annotations": [box(0, 0, 50, 50), box(100, 100, 40, 40, label="bus")],
            "predictions": [pred(0, 0, 50, 48, confidence=0.9)],
        },
        {
            "reference_id": "b",
            "annotations": [box(10, 10, 30, 60, label="person")],
            "predictions": [
                pred(200, 200, 20, 20, confidence=0.8),
                pred(10, 10, 30, 60, label="person", confidence=0.7),
                pred(11, 11, 30, 60, label="person", confidence=0.2),
            ],
        },
        {
            "reference_id": "c",
            "annotations": [
                box(0, 0, 30, 30, label="person"),
                box(100, 0, 30, 30, label="person"),
            ],
            "predictions": [
                pred(200, 200, 30, 30, confidence=0.9),
                pred(300, 200, 30, 30, confidence=0.6),
            ],
        },
        {"reference_id": "d"},
    )


def evaluated(
    dataset: Dataset,
    user: Any,
    name: str,
    *,
    model: str = "yolo",
    task: str = "detection",
    **options: Any,
) -> Any:
    """An evaluation run of `model` on the whole dataset (a `task` run), its job run to
    the end."""
    from curation.jobs import job_run
    from curation.models import JobStatus, Model
    from evaluation.services import evaluation_create

    run = evaluation_create(
        dataset=dataset,
        user=user,
        name=name,
        model_id=Model.objects.get(dataset=dataset, name=model).pk,
        options=options,
        task=task,
    )
    assert run.job_id is not None
    job = job_run(job_id=run.job_id)
    assert job is not None and job.status == JobStatus.SUCCEEDED, job and job.message
    run.refresh_from_db()
    return run


def score_entry_url(panel: str, field: str) -> str:
    """The histogram request of the score facet entry of `field` (closed until opened)."""
    import html
    import re

    found = re.search(
        rf'<details class="score-facet"[^>]*data-field="{re.escape(html.escape(field))}"[^>]*>'
        r'.*?hx-get="([^"]+)"',
        panel,
        re.S,
    )
    assert found is not None, field
    return html.unescape(found.group(1))


def histogram_of(client: Any, url: str) -> list[tuple[str, int, str, bool]]:
    """(bucket text, count, link, on) of each bucket of a score facet's histogram."""
    import html
    import re

    response = client.get(url)
    assert response.status_code == 200, response.content
    rows = re.findall(
        r'<a class="facet-row score-bin( active)?" href="([^"]+)" data-facet="score" '
        r'data-value="([^"]+)".*?class="facet-count">(≈?\d+)<',
        response.content.decode(),
        re.S,
    )
    return [
        (html.unescape(text), int(count.lstrip("≈")), html.unescape(href), bool(on))
        for on, href, text, count in rows
    ]


def grid_ids(client: Any, url: str) -> set[int]:
    """The ids of the items a grid page shows."""
    import re

    page = client.get(url)
    assert page.status_code == 200, page.content
    return {int(i) for i in re.findall(r"/datasets/\d+/items/(\d+)\?", page.content.decode())}


def bucket_range(text: str) -> tuple[float, float]:
    """A bucket's "[low, high)" or "≥ low" as (low, high), high infinite when open."""
    if text.startswith("≥"):
        return float(text.lstrip("≥ ")), float("inf")
    low, high = text.strip("[)").split(", ")
    return float(low), float(high)


def check_score_facet(
    client: Any, dataset: Dataset, field: str, values: dict[int, float | None]
) -> list[tuple[str, int, str, bool]]:
    """The grid's score facet of `field` counts each bucket right, and each bucket's link
    shows exactly the items whose value (`values`, by item id) is in its range."""
    response = client.get(f"/datasets/{dataset.pk}/")
    assert response.status_code == 200
    bins = histogram_of(client, score_entry_url(facet_panel(client, response), field))
    assert bins, field
    for text, count, link, on in bins:
        low, high = bucket_range(text)
        inside = {pk for pk, v in values.items() if v is not None and low <= v < high}
        assert not on and count == len(inside), (field, text, count, len(inside))
        assert grid_ids(client, link) == inside, (field, text)
    scored = sorted(v for v in values.values() if v is not None)
    assert sum(count for _, count, _, _ in bins) == len(scored), (bins, scored)
    return bins
