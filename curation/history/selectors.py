"""Reads of annotation history: an item's, an annotation's, a dataset's (filtered), and
the latest change of given annotations (who made them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Case, Exists, F, OuterRef, Q, QuerySet, Subquery, When
from django.db.models.functions import JSONObject

from curation.errors import NotFound
from curation.history import compact
from curation.history.compact import STATE_FIELDS
from curation.history.models import EDITS, AnnotationChange, ChangeAction
from curation.history.triggers import SPAN
from curation.models import Annotation, Dataset, Item


def of_annotations(pks: Any) -> Q:
    """Changes of these annotations (a list of pks, or one pk): written so that both halves
    of the index serve it (creations by BRIN, edits by B-tree; models.py). Compact
    creation rows that cover them are included: read them through compact.expand."""
    many = isinstance(pks, list | tuple | set)
    lookup = "annotation_pk__in" if many else "annotation_pk"
    return (
        Q(**{lookup: pks}, action=ChangeAction.CREATED, last_pk__isnull=True)
        | Q(**{lookup: pks}, action__in=EDITS)
        | compact.covering(pks if many else [pks])
    )


def of_items(item_ids: Any) -> Q:
    """Changes on these items (a list of ids, or one id), indexed as of_annotations."""
    lookup = "item_id__in" if isinstance(item_ids, list | tuple | set) else "item_id"
    return Q(**{lookup: item_ids}, action=ChangeAction.CREATED) | Q(
        **{lookup: item_ids}, action__in=EDITS
    )


def _with_after(changes: QuerySet[AnnotationChange]) -> QuerySet[AnnotationChange]:
    """Annotate each change with what it left (`next_before`/`current`) and `is_latest`.

    The state after a change is not stored: it is the `before` of the annotation's next
    change, or, for its latest change, the annotation as it is now. What can follow a
    change is known: after a creation or a change comes a change or a deletion (an edit,
    B-tree indexed), after a deletion only a re-creation (a revert).
    """
    later = {"annotation_pk": OuterRef("annotation_pk"), "id__gt": OuterRef("id")}
    edits = AnnotationChange.objects.filter(**later, action__in=EDITS).order_by("id")
    recreated = AnnotationChange.objects.filter(**later, action=ChangeAction.CREATED)
    now = Annotation.objects.filter(pk=OuterRef("annotation_pk")).values(
        state=JSONObject(**{f: F(f) for f in STATE_FIELDS})
    )
    deleted = Q(action=ChangeAction.DELETED)
    return changes.select_related("event", "event__user").annotate(
        next_before=Case(When(deleted, then=None), default=Subquery(edits.values("before")[:1])),
        is_latest=Case(When(deleted, then=~Exists(recreated)), default=~Exists(edits)),
        current=Subquery(now[:1]),
    )


def after_of(change: Any) -> dict[str, Any] | None:
    """The annotation as `change` left it (None once deleted); `change` from a selector here."""
    if change.action == "deleted":
        return None
    state: dict[str, Any] | None = change.current if change.is_latest else change.next_before
    return state


def item_history(*, item: Item, limit: int = 200) -> list[AnnotationChange]:
    """The item's annotation changes, newest first (at most `limit`)."""
    changes = AnnotationChange.objects.filter(of_items(item.pk), dataset_id=item.dataset_id)
    # Each row is at least one change: `limit` rows are enough.
    found = compact.expand(_with_after(changes).order_by("-id")[:limit])
    return sorted(found, key=lambda c: -c.pk)[:limit]


def annotation_history(*, dataset: Dataset, annotation_pk: int) -> list[AnnotationChange]:
    """One annotation's changes, oldest first (it keeps its pk through a delete and revert)."""
    changes = AnnotationChange.objects.filter(of_annotations(annotation_pk), dataset=dataset)
    return compact.expand(_with_after(changes).order_by("id"), pks={annotation_pk})


@dataclass(frozen=True)
class HistoryRows:
    """A dataset's history rows, filtered, and what reading them as changes must keep:
    only annotations `pks` (None: all) and change ids after `since`."""

    rows: QuerySet[AnnotationChange]
    pks: frozenset[int] | None = None
    since: int | None = None


def dataset_history(
    *,
    dataset: Dataset,
    username: str | None = None,
    source: str | None = None,
    annotation_id: str | None = None,
    item_id: int | None = None,
    job_id: int | None = None,
    since: int | None = None,
) -> HistoryRows:
    """The dataset's changes, filtered; `since`: only those after that change id (for
    following the history: pass the newest id seen). Read a page with history_page."""
    changes = AnnotationChange.objects.filter(dataset=dataset)
    pks = None
    if username is not None:
        changes = changes.filter(event__user__username=username)
    if source is not None:
        changes = changes.filter(event__source=source)
    if annotation_id is not None:
        pks = frozenset(
            compact.annotation_pks_of(dataset_id=dataset.pk, annotation_id=annotation_id)
        )
        changes = changes.filter(Q(annotation_id=annotation_id) | compact.covering(pks))
    if item_id is not None:
        changes = changes.filter(of_items(item_id))
    if job_id is not None:
        changes = changes.filter(event__job_id=job_id)
    if since is not None:
        # A compact row's block may start at or before `since` and end after it.
        changes = changes.filter(Q(id__gt=since) | Q(last_pk__isnull=False, id__gt=since - SPAN))
    return HistoryRows(rows=changes, pks=pks, since=since)


def history_page(
    history: HistoryRows, *, before: int | None, limit: int
) -> tuple[list[AnnotationChange], bool]:
    """Up to `limit` changes, newest first, with ids below `before` (None: the newest);
    and whether there are more."""
    rows = history.rows
    if before is not None:
        rows = rows.filter(id__lt=before)
    low = 0 if history.since is None else history.since + 1
    high = (before - 1) if before is not None else 2**62
    rows = _with_after(rows).order_by("-id")
    # A row is at least one change, unless filtered to none (a compact row's block may lie
    # before `since`, or hold none of `pks`): read on until the page is full.
    found: list[AnnotationChange] = []
    start, chunk = 0, limit + 1
    while len(found) <= limit:
        batch = list(rows[start : start + chunk])
        found += compact.expand(batch, pks=history.pks, ids=(low, high))
        if len(batch) < chunk:
            break
        start += chunk
    found.sort(key=lambda c: -c.pk)
    return found[:limit], len(found) > limit


def change_of(*, dataset: Dataset, change_id: int) -> AnnotationChange:
    changes = AnnotationChange.objects.filter(dataset=dataset)
    found = _with_after(changes.filter(pk=change_id, last_pk__isnull=True)).first()
    if found is not None:
        return found
    # A creation in a compact row's block.
    row = (
        changes.filter(compact.covering_change(change_id))
        .select_related("event", "event__user")
        .order_by("-id")
        .first()
    )
    if row is None or compact.block_end(row) < change_id:
        raise NotFound("Change not found.")
    return compact.expand([row], ids=(change_id, change_id))[0]


@dataclass(frozen=True)
class ChangeInfo:
    """Who last changed an annotation, through what, and when."""

    change_id: int
    action: str
    user_id: int | None
    username: str | None
    source: str
    job_id: int | None
    entry_id: int | None
    at: datetime


def latest_changes(*, dataset: Dataset, annotation_pks: list[int]) -> dict[int, ChangeInfo]:
    """The latest change of each of these annotations (none if history has none)."""
    wanted = set(annotation_pks)
    plain = Q(annotation_pk__in=list(wanted), action=ChangeAction.CREATED, last_pk__isnull=True)
    rows = list(
        AnnotationChange.objects.filter(
            plain | Q(annotation_pk__in=list(wanted), action__in=EDITS), dataset=dataset
        ).select_related("event", "event__user")
    ) + compact.runs_covering(dataset_id=dataset.pk, pks=wanted)
    latest: dict[int, AnnotationChange] = {}
    for row in rows:
        if compact.is_compact(row):
            assert row.last_pk is not None
            pks = [pk for pk in range(row.annotation_pk, row.last_pk + 1) if pk in wanted]
            changes = [compact.one_of(row, pk) for pk in pks]
        else:
            changes = [row]
        for c in changes:
            if c.annotation_pk not in latest or latest[c.annotation_pk].pk < c.pk:
                latest[c.annotation_pk] = c
    return {
        pk: ChangeInfo(
            change_id=c.pk,
            action=c.action,
            user_id=c.event.user_id,
            username=c.event.user.username if c.event.user else None,
            source=c.event.source,
            job_id=c.event.job_id,
            entry_id=c.event.entry_id,
            at=c.event.created,
        )
        for pk, c in latest.items()
    }


def history_mark() -> int:
    """The id of the newest annotation change (0 if none; a compact row's block counts)."""
    newest = AnnotationChange.objects.order_by("-id").first()
    return 0 if newest is None else compact.block_end(newest)


def changes_between(
    *,
    dataset_id: int,
    annotation_ids: list[str],
    item_ids: list[int],
    after: int,
    until: int,
    most: int = 20,
) -> dict[tuple[int, str], list[dict[str, Any]]]:
    """Who changed these annotations (by item and client id) with change ids in
    (after, until], oldest first, at most `most` each: for comparing two frozen versions
    (their `history_mark`s)."""
    found: dict[tuple[int, str], list[dict[str, Any]]] = {}
    wanted = set(annotation_ids)
    rows = (
        AnnotationChange.objects.filter(of_items(list(item_ids)), dataset_id=dataset_id)
        .filter(
            Q(annotation_id__in=annotation_ids, id__gt=after, id__lte=until)
            | Q(last_pk__isnull=False, id__gt=after - SPAN, id__lte=until)
        )
        .select_related("event__user")
        .order_by("id")
    )
    changes = compact.expand(rows, ids=(after + 1, until))
    changes.sort(key=lambda c: c.pk)
    for change in changes:
        if change.annotation_id not in wanted:
            continue
        # A change that moved an annotation between items counts for the item it was on.
        listed = found.setdefault((change.item_id, change.annotation_id), [])
        if len(listed) < most:
            event = change.event
            listed.append(
                {
                    "change_id": change.pk,
                    "action": change.action,
                    "user": event.user.get_username() if event.user else None,
                    "source": event.source,
                    "at": event.created,
                }
            )
    return found


__all__ = [
    "ChangeInfo",
    "HistoryRows",
    "after_of",
    "annotation_history",
    "change_of",
    "changes_between",
    "dataset_history",
    "history_page",
    "item_history",
    "latest_changes",
    "of_annotations",
    "of_items",
]
