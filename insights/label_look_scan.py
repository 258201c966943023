"""The scan's reads for labels and boxes unlike their look (insights/label_look.py): the
stored images of a chunk of items, decoded at reduced size and turned into the features
of their ground-truth objects (insights/object_features.py), a few threads at a time.

Bounded in memory: a chunk's images are decoded one per thread and dropped once their
objects' features (a few hundred floats each) are taken; the training sample holds at
most LOOK_TRAIN_OBJECTS objects.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from django.core.files.storage import default_storage

from curation.media import stored_upright
from curation.models import Item
from evaluation.engine import GroundTruth
from insights.object_features import (
    FEATURE_COUNT,
    FIT_FEATURE_COUNT,
    fit_features,
    object_features,
    prepare,
    shifted_boxes,
)

# Images are decoded towards this long side (JPEG draft: 640 px is read at 320): enough
# for colour, edges and a 4 x 4 thumbnail, at a quarter of the pixels.
LOOK_LONG_SIDE = 320
# Reads overlap on this many threads (object storage answers in tens of milliseconds;
# Pillow decodes and NumPy sums mostly without the GIL).
READERS = 4


@dataclass
class Objects:
    """Ground-truth objects and their features, row for row."""

    item_ids: list[int] = field(default_factory=list)
    annotation_ids: list[int] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    look: list[np.ndarray] = field(default_factory=list)
    fit: list[np.ndarray] = field(default_factory=list)
    moved_fit: list[np.ndarray] = field(default_factory=list)
    unreadable: int = 0  # items with objects whose image could not be read

    def __len__(self) -> int:
        return len(self.labels)

    def extend(self, other: Objects) -> None:
        self.item_ids += other.item_ids
        self.annotation_ids += other.annotation_ids
        self.labels += other.labels
        self.look += other.look
        self.fit += other.fit
        self.moved_fit += other.moved_fit
        self.unreadable += other.unreadable

    def take(self, item_ids: set[int]) -> Objects:
        """The objects of these items (rows in the same order)."""
        out = Objects()
        look, fit = self._stacked()
        rows = [r for r, i in enumerate(self.item_ids) if i in item_ids]
        out.item_ids = [self.item_ids[r] for r in rows]
        out.annotation_ids = [self.annotation_ids[r] for r in rows]
        out.labels = [self.labels[r] for r in rows]
        if rows:
            out.look, out.fit = [look[rows]], [fit[rows]]
        return out

    def _stacked(self) -> tuple[np.ndarray, np.ndarray]:
        if len(self.look) > 1:
            self.look, self.fit = [np.concatenate(self.look)], [np.concatenate(self.fit)]
        arrays = self.arrays()
        return arrays[2], arrays[3]

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        def stack(parts: list[np.ndarray], width: int) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros((0, width), dtype=np.float32)

        return (
            np.asarray(self.item_ids, dtype=np.int64),
            np.asarray(self.annotation_ids, dtype=np.int64),
            stack(self.look, FEATURE_COUNT),
            stack(self.fit, FIT_FEATURE_COUNT),
            stack(self.moved_fit, FIT_FEATURE_COUNT),
        )


@dataclass(frozen=True)
class _Found:
    item_id: int
    truths: list[GroundTruth]
    look: np.ndarray | None
    fit: np.ndarray | None
    moved_fit: np.ndarray | None


def _one(task: tuple[int, str, list[GroundTruth], bool]) -> _Found:
    """The features of one item's objects (None when its image cannot be read)."""
    item_id, key, truths, moved = task
    try:
        with default_storage.open(key, "rb") as handle:
            data = handle.read()
    except (OSError, ValueError):
        return _Found(item_id, truths, None, None, None)
    decoded = stored_upright(data, long_side=LOOK_LONG_SIDE)
    if decoded is None:
        return _Found(item_id, truths, None, None, None)
    image, full_w, full_h = decoded
    # Boxes are in the pixels of the upright original.
    sx, sy = image.width / float(full_w), image.height / float(full_h)
    prepared = prepare(np.asarray(image, dtype=np.float32) / 255.0)
    boxes = np.array([g.box for g in truths], dtype=np.float64) * np.array([sx, sy, sx, sy])
    look = object_features(prepared, boxes)
    fit = fit_features(prepared, boxes)
    moved_fit = None
    if moved:
        # Seeded by the item, so a resumed job trains on the same moved copies.
        rng = np.random.default_rng(item_id)
        shifted = shifted_boxes(boxes, prepared.width, prepared.height, rng)
        moved_fit = fit_features(prepared, shifted)
    return _Found(item_id, truths, look, fit, moved_fit)


def look_objects(
    ground_truth: dict[int, list[GroundTruth]],
    item_ids: Iterable[int],
    *,
    moved: bool = False,
    limit: int | None = None,
) -> Objects:
    """The features of the boxes of these items' ground truth (crowd regions and boxes
    without an annotation id left out), with those of moved copies when `moved` (for
    training); at most `limit` objects, whole items only."""
    wanted = [i for i in item_ids if ground_truth.get(i)]
    media = dict(
        Item.objects.filter(id__in=wanted).exclude(media_key="").values_list("id", "media_key")
    )
    out = Objects()
    tasks = []
    count = 0
    for item_id in wanted:
        truths = [
            g
            for g in ground_truth[item_id]
            if not g.crowd and g.annotation_id is not None and g.box[2] > 0 and g.box[3] > 0
        ]
        if not truths:
            continue
        if item_id not in media:
            out.unreadable += 1
            continue
        if limit is not None and count + len(truths) > limit:
            break
        count += len(truths)
        tasks.append((item_id, media[item_id], truths, moved))
    with ThreadPoolExecutor(READERS, thread_name_prefix="look-read") as pool:
        for found in pool.map(_one, tasks):
            if found.look is None or found.fit is None:
                out.unreadable += 1
                continue
            for g in found.truths:
                out.item_ids.append(found.item_id)
                out.annotation_ids.append(int(g.annotation_id or 0))
                out.labels.append(g.label)
            out.look.append(found.look)
            out.fit.append(found.fit)
            if found.moved_fit is not None:
                out.moved_fit.append(found.moved_fit)
    return out
