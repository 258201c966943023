"""Reads of annotation history: an item's, an annotation's, a dataset's (filtered), and
the latest change of given annotations (who made them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Case, Exists, F, OuterRef, Q, QuerySet, Subquery, When
from django.db.models.functions import JSONObject

from curation.errors import NotFound
from curation.history.models import EDITS, AnnotationChange, ChangeAction
from curation.models import Annotation, Dataset, Item

# An annotation's fields as history keeps them (curation.history.triggers, `_STATE`).
STATE_FIELDS = ("annotation_id", "item_id", "kind", "label", "geometry", "metadata")


def of_annotations(pks: Any) -> Q:
    """Changes of these annotations (a list of pks, or one pk or OuterRef): written so that
    both halves of the index serve it (creations by BRIN, edits by B-tree; models.py)."""
    lookup = "annotation_pk__in" if isinstance(pks, list | tuple | set) else "annotation_pk"
    return Q(**{lookup: pks}, action=ChangeAction.CREATED) | Q(**{lookup: pks}, action__in=EDITS)


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
    return list(_with_after(changes).order_by("-id")[:limit])


def annotation_history(*, dataset: Dataset, annotation_pk: int) -> list[AnnotationChange]:
    """One annotation's changes, oldest first (it keeps its pk through a delete and revert)."""
    changes = AnnotationChange.objects.filter(of_annotations(annotation_pk), dataset=dataset)
    return list(_with_after(changes).order_by("id"))


def dataset_history(
    *,
    dataset: Dataset,
    username: str | None = None,
    source: str | None = None,
    annotation_id: str | None = None,
    item_id: int | None = None,
    job_id: int | None = None,
    since: int | None = None,
) -> QuerySet[AnnotationChange]:
    """The dataset's changes, filtered; `since`: only those after that change id (for
    following the history: pass the newest id seen). Ordered and paged by the caller."""
    changes = AnnotationChange.objects.filter(dataset=dataset)
    if username is not None:
        changes = changes.filter(event__user__username=username)
    if source is not None:
        changes = changes.filter(event__source=source)
    if annotation_id is not None:
        changes = changes.filter(annotation_id=annotation_id)
    if item_id is not None:
        changes = changes.filter(of_items(item_id))
    if job_id is not None:
        changes = changes.filter(event__job_id=job_id)
    if since is not None:
        changes = changes.filter(id__gt=since)
    return _with_after(changes)


def change_of(*, dataset: Dataset, change_id: int) -> AnnotationChange:
    found = _with_after(AnnotationChange.objects.filter(pk=change_id, dataset=dataset)).first()
    if found is None:
        raise NotFound("Change not found.")
    return found


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
    latest = (
        AnnotationChange.objects.filter(of_annotations(list(annotation_pks)), dataset=dataset)
        .order_by("annotation_pk", "-id")
        .distinct("annotation_pk")
        .select_related("event", "event__user")
    )
    return {
        c.annotation_pk: ChangeInfo(
            change_id=c.pk,
            action=c.action,
            user_id=c.event.user_id,
            username=c.event.user.username if c.event.user else None,
            source=c.event.source,
            job_id=c.event.job_id,
            entry_id=c.event.entry_id,
            at=c.event.created,
        )
        for c in latest
    }


def history_mark() -> int:
    """The id of the newest annotation change (0 if none)."""
    newest = AnnotationChange.objects.order_by("-id").values_list("id", flat=True).first()
    return newest or 0


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
    changes = (
        AnnotationChange.objects.filter(
            of_items(list(item_ids)),
            dataset_id=dataset_id,
            annotation_id__in=annotation_ids,
            id__gt=after,
            id__lte=until,
        )
        .select_related("event__user")
        .order_by("id")
    )
    for change in changes:
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
    "after_of",
    "annotation_history",
    "change_of",
    "changes_between",
    "dataset_history",
    "item_history",
    "latest_changes",
    "of_annotations",
    "of_items",
]
