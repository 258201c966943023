"""The small dataset that the query-language tests and docs/query-language.md run against.

Five street-scene items; the reference page describes them in a table, and its examples'
expected results are computed by hand from it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from curation.bulk.validate import Media, clean_item_record
from curation.bulk.write import records_write
from curation.models import Dataset, Item, ItemTag, Slice, SliceItem, Tag
from curation.quality import Quality


def _box(label: str, **metadata: Any) -> dict[str, Any]:
    return {
        "label": label,
        "kind": "box",
        "geometry": {"x": 1, "y": 1, "width": 10, "height": 10},
        "metadata": metadata,
    }


def _prediction(model: str, label: str, confidence: float) -> dict[str, Any]:
    return {
        "model": model,
        "label": label,
        "confidence": confidence,
        "kind": "box",
        "geometry": {"x": 2, "y": 2, "width": 10, "height": 10},
    }


ROWS: list[tuple[dict[str, Any], tuple[int, int, str] | None]] = [
    (
        {
            "reference_id": "img-1",
            "metadata": {
                "weather": "rain",
                "speed": 42,
                "night": False,
                "camera": {"model": "x100", "lens": "wide"},
                "camera model": "X 100",
            },
            "annotations": [_box("car", occluded=True), _box("car", occluded=False), _box("truck")],
            "predictions": [
                _prediction("detector", "car", 0.9),
                _prediction("detector", "bus", 0.3),
            ],
        },
        (640, 480, "a" * 64),
    ),
    (
        {
            "reference_id": "img-2",
            "metadata": {"weather": "sun", "speed": 88.5, "night": True, "camera model": "Z 7"},
            "annotations": [
                _box("car"),
                {
                    "label": "pedestrian",
                    "kind": "polygon",
                    "geometry": {"vertices": [[1, 1], [20, 1], [20, 40]]},
                },
            ],
            "predictions": [_prediction("detector", "car", 0.4)],
        },
        (1920, 1080, "a" * 64),
    ),
    (
        {
            "reference_id": "img-3",
            "metadata": {"weather": "rain", "speed": "fast", "location": {"city": "paris"}},
            "annotations": [
                _box("bus"),
                _box("bus"),
                _box("bus"),
                _box("truck", occluded=True),
                _box("truck"),
            ],
            "predictions": [_prediction("detector", "truck", 0.85)],
        },
        (800, 600, "b" * 64),
    ),
    (
        {"reference_id": "img-4", "metadata": {"weather": "fog", "speed": 5, "night": True}},
        None,
    ),
    (
        {
            "reference_id": "img-5",
            "metadata": {"weather": 'it\'s "quoted"', "speed": None, "rating": -1},
            "annotations": [{"label": "pedestrian", "kind": "category"}],
            "predictions": [
                _prediction("detector", "bus", 0.95),
                _prediction("segmenter", "pedestrian", 0.5),
            ],
        },
        (100, 100, "c" * 64),
    ),
]

TAGS = {"reviewed": ["img-1", "img-2"], "flagged": ["img-5"], "unused": []}
SLICES = {"train": ["img-1", "img-3"], "val": ["img-5"], "empty": []}


# Image quality signals (curation.quality) of the items with an image; img-4 has none.
QUALITY = {
    "img-1": Quality(120, 55, 90, 350, 7.4, 640 / 480, False),
    "img-2": Quality(60, 30, 40, 12, 6.8, 1920 / 1080, False),
    "img-3": Quality(200, 48, 120, 95, 7.1, 800 / 600, False),
    "img-5": Quality(250, 1.5, 0, 0.4, 0.3, 1.0, True),
}


def build_query_dataset(dataset: Dataset) -> dict[str, int]:
    """Write the items, annotations, predictions, tags and slices; return ids by reference."""
    records = []
    for row, media in ROWS:
        # Explicit ids: identical boxes would otherwise share a derived id and merge.
        raw = {**row}
        for key in ("annotations", "predictions"):
            raw[key] = [
                {**s, "id": f"{row['reference_id']}-{key}-{i}"}
                for i, s in enumerate(row.get(key, []))
            ]
        stored = None
        if media is not None:
            width, height, sha = media
            stored = Media(
                media_key=f"m/{raw['reference_id']}.jpg",
                thumbnail_key="",
                source_uri="",
                width=width,
                height=height,
                sha256=sha,
                byte_size=1,
                quality=QUALITY[raw["reference_id"]],
            )
        records.append(clean_item_record(raw, media=stored))
    records_write(dataset=dataset, records=records)
    ids = dict(Item.objects.filter(dataset=dataset).values_list("reference_id", "pk"))
    for name, refs in TAGS.items():
        tag = Tag.objects.create(dataset=dataset, name=name)
        ItemTag.objects.bulk_create([ItemTag(tag=tag, item_id=ids[r]) for r in refs])
    for name, refs in SLICES.items():
        slice_ = Slice.objects.create(dataset=dataset, name=name)
        SliceItem.objects.bulk_create([SliceItem(slice=slice_, item_id=ids[r]) for r in refs])
    return ids


@contextmanager
def module_dataset(django_db_blocker: Any) -> Iterator[Dataset]:
    """The query dataset, built once for a test module and rolled back after it.

    Tests that use it still take the `db` fixture, so what each test changes is rolled
    back to a savepoint after it.
    """
    with django_db_blocker.unblock(), transaction.atomic():
        # No create_user(): hashing a password costs more than building the dataset.
        owner = User.objects.create(username="query-owner")
        dataset = Dataset.objects.create(name="street scenes", owner=owner)
        build_query_dataset(dataset)
        yield dataset
        transaction.set_rollback(True)


def matching(dataset: Dataset, text: str) -> list[str]:
    """Reference ids of the items matching `text`, sorted."""
    from curation.query import filter_items

    items = filter_items(Item.objects.all(), text, dataset=dataset)
    return sorted(items.values_list("reference_id", flat=True))
