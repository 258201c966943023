"""Compact creations: the creations of a bulk statement, read as one change per annotation.

A bulk statement's creations are stored as one row per run of consecutive annotation pks
on one item (curation.history.triggers): `annotation_pk` is the run's first pk, `last_pk`
its last, and the row's id the first of a block of change ids reserved for it, so the
creation of pk p is change `id + (p - annotation_pk)`. A run is at most SPAN long. The
row keeps no annotation id: it is the `before` of the annotation's first edit, or the
annotation's own while it never changed.

Here such rows become the AnnotationChange objects the selectors hand out, one per
annotation, with what the selectors annotate (`next_before`, `is_latest`, `current`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from django.db import connection
from django.db.models import F, Q
from django.db.models.functions import JSONObject

from curation.history.models import EDITS, AnnotationChange, ChangeAction
from curation.history.triggers import SPAN
from curation.models import Annotation

# An annotation's fields as history keeps them (curation.history.triggers, `_STATE`).
STATE_FIELDS = ("annotation_id", "item_id", "kind", "label", "geometry", "metadata")


def is_compact(change: AnnotationChange) -> bool:
    return change.last_pk is not None


def covering(pks: Iterable[int]) -> Q:
    """Compact creation rows that cover any of these annotation pks (by the index on
    annotation_pk: a run starts at most SPAN - 1 before a pk it covers)."""
    ranges: list[list[int]] = []
    for pk in sorted(set(pks)):
        if ranges and pk - ranges[-1][1] < SPAN:
            ranges[-1][1] = pk
        else:
            ranges.append([pk, pk])
    found = Q(pk__in=[])
    for low, high in ranges:
        found |= Q(annotation_pk__gt=low - SPAN, annotation_pk__lte=high, last_pk__gte=low)
    return Q(found, action=ChangeAction.CREATED, last_pk__isnull=False)


def runs_covering(*, dataset_id: int, pks: Collection[int]) -> list[AnnotationChange]:
    """The compact rows that hold these pks' creations: for each pk, the run starting
    nearest below it (one probe of the runs' index per pk, however far apart they are)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT c.id FROM unnest(%s::bigint[]) p(pk) CROSS JOIN LATERAL ("
            " SELECT id, last_pk FROM curation_annotationchange"
            " WHERE last_pk IS NOT NULL AND annotation_pk <= p.pk"
            " AND annotation_pk > p.pk - %s AND dataset_id = %s"
            " ORDER BY annotation_pk DESC LIMIT 1) c WHERE c.last_pk >= p.pk",
            [list(pks), SPAN, dataset_id],
        )
        ids = [row[0] for row in cursor.fetchall()]
    return list(AnnotationChange.objects.filter(pk__in=ids).select_related("event", "event__user"))


def covering_change(change_id: int) -> Q:
    """The compact row whose block of change ids may hold `change_id`."""
    return Q(last_pk__isnull=False, id__lte=change_id, id__gt=change_id - SPAN)


def block_end(change: AnnotationChange) -> int:
    """The last change id of a row's block (its own id for a plain row)."""
    if change.last_pk is None:
        return int(change.pk)
    return int(change.pk) + change.last_pk - change.annotation_pk


def one_of(row: AnnotationChange, pk: int) -> AnnotationChange:
    """The creation of annotation `pk` in compact row `row` (unsaved, not to be saved)."""
    change = AnnotationChange(
        id=row.pk + (pk - row.annotation_pk),
        event_id=row.event_id,
        dataset_id=row.dataset_id,
        annotation_pk=pk,
        annotation_id="",
        item_id=row.item_id,
        action=ChangeAction.CREATED,
        before=None,
    )
    if "event" in row._state.fields_cache:
        change.event = row.event
    return change


def expand(
    rows: Iterable[AnnotationChange],
    *,
    pks: Collection[int] | None = None,
    ids: tuple[int, int] | None = None,
) -> list[AnnotationChange]:
    """Rows with each compact one replaced by its annotations' creations (only those of
    `pks`, and with change ids in [ids[0], ids[1]], where given); annotated as the
    selectors annotate changes. Order: as the rows came, a run's creations by id."""
    out: list[AnnotationChange] = []
    made: list[AnnotationChange] = []
    for row in rows:
        if not is_compact(row):
            out.append(row)
            continue
        assert row.last_pk is not None
        first, last = row.annotation_pk, row.last_pk
        if ids is not None:
            first = max(first, row.annotation_pk + ids[0] - row.pk)
            last = min(last, row.annotation_pk + ids[1] - row.pk)
        wanted = [pk for pk in range(first, last + 1) if pks is None or pk in pks]
        creations = [one_of(row, pk) for pk in wanted]
        made.extend(creations)
        out.extend(creations)
    _annotate(made)
    return out


def _annotate(changes: list[AnnotationChange]) -> None:
    """Fill in annotation_id, next_before, is_latest and current of expanded creations."""
    if not changes:
        return
    pks = [c.annotation_pk for c in changes]
    # A compact creation is its annotation's first change: what follows is its first edit.
    first_edits = {
        pk: before
        for pk, before in AnnotationChange.objects.filter(annotation_pk__in=pks, action__in=EDITS)
        .order_by("annotation_pk", "id")
        .distinct("annotation_pk")
        .values_list("annotation_pk", "before")
    }
    now = {
        row["pk"]: row["state"]
        for row in Annotation.objects.filter(pk__in=pks).values(
            "pk", state=JSONObject(**{f: F(f) for f in STATE_FIELDS})
        )
    }
    for change in changes:
        edit: dict[str, Any] | None = first_edits.get(change.annotation_pk)
        current = now.get(change.annotation_pk)
        state = edit if edit is not None else current
        change.annotation_id = str(state["annotation_id"]) if state else ""
        change.next_before = edit  # type: ignore[attr-defined]
        change.is_latest = change.annotation_pk not in first_edits  # type: ignore[attr-defined]
        change.current = current  # type: ignore[attr-defined]


def annotation_pks_of(*, dataset_id: int, annotation_id: str) -> set[int]:
    """The pks that carried this annotation id (now, or in an edit)."""
    found = set(
        Annotation.objects.filter(dataset_id=dataset_id, annotation_id=annotation_id).values_list(
            "pk", flat=True
        )
    )
    found |= set(
        AnnotationChange.objects.filter(
            dataset_id=dataset_id, annotation_id=annotation_id, action__in=EDITS
        ).values_list("annotation_pk", flat=True)
    )
    return found


__all__ = [
    "STATE_FIELDS",
    "annotation_pks_of",
    "block_end",
    "covering",
    "covering_change",
    "expand",
    "is_compact",
    "runs_covering",
]
