"""What the review screen shows for one entry: the item's image with the objects under
review emphasised (curation's overlays), the evidence, who made each annotation, the
reasons to pick from, and the reviewer's previous and next entries. A read; the view
only renders it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from django.db.models import Q
from django.urls import reverse

from curation.models import Dataset
from curation.selectors import item_annotations, item_predictions
from curation.storage import media_url
from curation.ui.overlays import Shape, describe, overlay_label, shapes_of
from curation.ui.palette import dataset_colours
from review.claims import active_claim_q
from review.models import DECIDED, RejectReason, ReviewEntry, ReviewQueue
from review.selectors import AuthorInfo, QueueStats, annotation_authors, queue_stats


@dataclass(frozen=True)
class ObjectRow:
    """An object under review, as the screen lists it."""

    key: str  # "a12" or "p34"
    kind: str  # "annotation" or "prediction"
    pk: int
    label: str
    colour: str
    confidence: float | None
    author: AuthorInfo | None
    decision: str
    reason: str
    present: bool


@dataclass(frozen=True)
class Screen:
    queue: ReviewQueue
    entry: ReviewEntry
    stats: QueueStats
    image_url: str | None
    # The drawing's size: the image's, or (no image, no size) what holds every shape.
    frame: tuple[int, int] | None
    image_alt: str
    overlay_label: str
    shapes: list[Shape]
    objects: list[ObjectRow]
    evidence: list[tuple[str, str]]
    reasons: list[RejectReason]
    previous_url: str
    next_url: str
    edit_url: str
    decided: bool
    mine: bool
    can_add: bool


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict) and value:
        rows: list[tuple[str, str]] = []
        for key, inner in value.items():
            rows.extend(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return rows
    if isinstance(value, float):
        return [(prefix, f"{value:.3g}")]
    return [(prefix, "" if value is None else str(value))]


def _frame(width: int | None, height: int | None, shapes: list[Shape]) -> tuple[int, int] | None:
    if width and height:
        return width, height
    rects = [s for s in shapes if s.kind == "rect"]
    if not rects:
        return None
    return (
        int(max(s.x + s.width for s in rects)) + 10,
        int(max(s.y + s.height for s in rects)) + 10,
    )


def entry_url(entry: ReviewEntry, dataset_id: int) -> str:
    return reverse("review-ui:entry", args=[dataset_id, entry.queue_id, entry.pk])


def _mine(queue: ReviewQueue, user: Any) -> Q:
    return Q(decided_by=user, status__in=DECIDED) | active_claim_q(queue, user)


def neighbour_entries(
    queue: ReviewQueue, entry: ReviewEntry, user: Any
) -> tuple[ReviewEntry | None, ReviewEntry | None]:
    """The reviewer's own entries (decided by them, or claimed) before and after this one."""
    mine = ReviewEntry.objects.filter(queue=queue).filter(_mine(queue, user))
    before = mine.filter(position__lt=entry.position).order_by("-position").first()
    after = mine.filter(position__gt=entry.position).order_by("position").first()
    return before, after


def review_screen(
    *, dataset: Dataset, queue: ReviewQueue, entry: ReviewEntry, user: Any, here: str
) -> Screen:
    item = entry.item
    colours = dataset_colours(dataset)
    review_a, review_p = set(entry.annotations), set(entry.predictions)
    annotations = list(item_annotations(item=item))
    predictions = [p for p in item_predictions(item=item) if p.pk in review_p]
    gt = shapes_of(
        [
            {"id": a.pk, "kind": a.kind, "label": a.label, "geometry": a.geometry}
            for a in annotations
        ],
        source="gt",
        colours=colours,
    )
    pred = shapes_of(
        [
            {
                "id": p.pk,
                "kind": p.kind,
                "label": p.label,
                "geometry": p.geometry,
                "confidence": p.confidence,
            }
            for p in predictions
        ],
        source="pred",
        colours=colours,
    )
    shapes = [replace(s, focus=s.object_id in review_a) for s in gt]
    shapes += [replace(s, focus=True) for s in pred]
    authors = annotation_authors(dataset, sorted(review_a))
    decided = {
        (f"a{o.annotation_id}" if o.annotation_id else f"p{o.prediction_id}"): o
        for o in entry.objects_decided.all()
    }
    by_a = {a.pk: a for a in annotations}
    by_p = {p.pk: p for p in predictions}
    objects = []
    for pk in entry.annotations:
        a = by_a.get(pk)
        o = decided.get(f"a{pk}")
        objects.append(
            ObjectRow(
                f"a{pk}",
                "annotation",
                pk,
                a.label if a else "(deleted)",
                colours(a.label) if a else "#888",
                None,
                authors.get(pk),
                o.decision if o else "",
                o.reason.label if o and o.reason else "",
                a is not None,
            )
        )
    for pk in entry.predictions:
        p = by_p.get(pk)
        o = decided.get(f"p{pk}")
        objects.append(
            ObjectRow(
                f"p{pk}",
                "prediction",
                pk,
                p.label if p else "(deleted)",
                colours(p.label) if p else "#888",
                p.confidence if p else None,
                None,
                o.decision if o else "",
                o.reason.label if o and o.reason else "",
                p is not None,
            )
        )
    before, after = neighbour_entries(queue, entry, user)
    item_page = reverse("ui:item", args=[dataset.pk, item.pk])
    focus = ",".join(sorted(f"a{pk}" for pk in review_a) + sorted(f"p{pk}" for pk in review_p))
    edit_query = {"edit": "1", "next": here, **({"focus": focus} if focus else {})}
    return Screen(
        queue=queue,
        entry=entry,
        stats=queue_stats(queue=queue),
        image_url=media_url(item, "original"),
        frame=_frame(item.width, item.height, shapes),
        image_alt=describe(item.reference_id, shapes),
        overlay_label=overlay_label(shapes),
        shapes=shapes,
        objects=objects,
        evidence=_flatten(entry.evidence) if entry.evidence else [],
        reasons=list(RejectReason.objects.filter(dataset=dataset)),
        previous_url=entry_url(before, dataset.pk) if before else "",
        next_url=entry_url(after, dataset.pk) if after else "",
        edit_url=f"{item_page}?{urlencode(edit_query)}",
        decided=entry.status in DECIDED,
        mine=entry.claimed_by_id == user.pk or entry.decided_by_id == user.pk,
        can_add=any(p is not None for p in by_p.values()),
    )
