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
    background_boxes,
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
    # Windows on what the labels call background (training), and the boxes of predictions
    # no ground truth explains, with their items (scoring): object_features rows.
    background: list[np.ndarray] = field(default_factory=list)
    window_item_ids: list[int] = field(default_factory=list)
    window_prediction_ids: list[int] = field(default_factory=list)
    windows: list[np.ndarray] = field(default_factory=list)
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
        self.background += other.background
        self.window_item_ids += other.window_item_ids
        self.window_prediction_ids += other.window_prediction_ids
        self.windows += other.windows
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
        windows = self.window_array()
        rows = [r for r, i in enumerate(self.window_item_ids) if i in item_ids]
        out.window_item_ids = [self.window_item_ids[r] for r in rows]
        out.window_prediction_ids = [self.window_prediction_ids[r] for r in rows]
        if rows:
            out.windows = [windows[rows]]
        return out

    def window_array(self) -> np.ndarray:
        if len(self.windows) > 1:
            self.windows = [np.concatenate(self.windows)]
        return self.windows[0] if self.windows else np.zeros((0, FEATURE_COUNT), np.float32)

    def background_array(self) -> np.ndarray:
        if not self.background:
            return np.zeros((0, FEATURE_COUNT), dtype=np.float32)
        return np.concatenate(self.background)

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
    background: np.ndarray | None = None
    window_ids: tuple[int, ...] = ()
    windows: np.ndarray | None = None


Window = tuple[int, tuple[float, float, float, float]]  # prediction id, x y width height


def _one(task: tuple[int, str, list[GroundTruth], bool, list[Window]]) -> _Found:
    """The features of one item's objects (None when its image cannot be read)."""
    item_id, key, truths, moved, windows = task
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
    scale = np.array([sx, sy, sx, sy])
    boxes = np.array([g.box for g in truths], dtype=np.float64).reshape(-1, 4) * scale
    look = object_features(prepared, boxes)
    fit = fit_features(prepared, boxes)
    moved_fit = background = None
    if moved:
        # Seeded by the item, so a resumed job trains on the same moved copies.
        rng = np.random.default_rng(item_id)
        shifted = shifted_boxes(boxes, prepared.width, prepared.height, rng)
        moved_fit = fit_features(prepared, shifted)
        background = object_features(
            prepared, background_boxes(boxes, prepared.width, prepared.height, rng)
        )
    scaled = np.array([b for _, b in windows], dtype=np.float64).reshape(-1, 4)
    window_look = object_features(prepared, scaled * scale)
    ids = tuple(pid for pid, _ in windows)
    return _Found(item_id, truths, look, fit, moved_fit, background, ids, window_look)


def look_objects(
    ground_truth: dict[int, list[GroundTruth]],
    item_ids: Iterable[int],
    *,
    moved: bool = False,
    limit: int | None = None,
    windows: dict[int, list[Window]] | None = None,
) -> Objects:
    """The features of the boxes of these items' ground truth (crowd regions and boxes
    without an annotation id left out), with those of moved copies and of background
    windows when `moved` (for training), and of the `windows` (predictions no ground truth
    explains) of these items; at most `limit` objects, whole items only."""
    windows = windows or {}
    wanted = [i for i in item_ids if ground_truth.get(i) or windows.get(i)]
    media = dict(
        Item.objects.filter(id__in=wanted).exclude(media_key="").values_list("id", "media_key")
    )
    out = Objects()
    tasks = []
    count = 0
    for item_id in wanted:
        truths = [
            g
            for g in ground_truth.get(item_id, [])
            if not g.crowd and g.annotation_id is not None and g.box[2] > 0 and g.box[3] > 0
        ]
        mine = [(pid, b) for pid, b in windows.get(item_id, []) if b[2] > 0 and b[3] > 0]
        if not truths and not mine:
            continue
        if item_id not in media:
            out.unreadable += 1 if truths else 0
            continue
        if limit is not None and count + len(truths) > limit:
            break
        count += len(truths)
        tasks.append((item_id, media[item_id], truths, moved, mine))
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
            if found.background is not None:
                out.background.append(found.background)
            if found.window_ids and found.windows is not None:
                out.window_item_ids += [found.item_id] * len(found.window_ids)
                out.window_prediction_ids += found.window_ids
                out.windows.append(found.windows)
    return out
