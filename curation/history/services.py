"""Reverting an annotation change: the annotation goes back to what it was before it.

Only the latest change of an annotation can be reverted: once it has changed again, the
state to go back to is ambiguous (undo both? keep the later edit?), so the answer is a
409 naming the later change, which can be reverted first. A revert is itself recorded
(source "revert", `reverts_id` naming the change), so it can be reverted in turn.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from curation.errors import Conflict
from curation.history.context import change_context
from curation.history.models import AnnotationChange, ChangeSource
from curation.history.selectors import of_annotations
from curation.models import Annotation, Item

_RESTORED = ("annotation_id", "kind", "label", "geometry", "metadata")


def _conflict(message: str) -> Conflict:
    return Conflict(message)


def _restore(change: AnnotationChange, before: dict[str, Any]) -> None:
    if not Item.objects.filter(pk=before["item_id"], dataset_id=change.dataset_id).exists():
        raise _conflict(
            f"Annotation {before['annotation_id']!r} was on item {before['item_id']}, "
            "which no longer exists."
        )
    values = {f: before[f] for f in _RESTORED} | {"item_id": before["item_id"]}
    try:
        with transaction.atomic():
            if change.action == "deleted":
                Annotation.objects.create(
                    id=change.annotation_pk, dataset_id=change.dataset_id, **values
                )
            else:
                # A revert is a change like any other: its version moves on, so an editor
                # still holding the reverted state gets a 409 (curation.annotations).
                Annotation.objects.filter(pk=change.annotation_pk).update(
                    **values, version=F("version") + 1, updated=timezone.now()
                )
    except IntegrityError:
        raise _conflict(
            f"Another annotation now has the id {before['annotation_id']!r} in this dataset."
        ) from None


@transaction.atomic
def annotation_change_revert(*, change: AnnotationChange, user: Any) -> AnnotationChange:
    """Undo `change` (the latest of its annotation); returns the change the revert made."""
    # Lock the annotation (if it exists) so no write slips in between the check and ours.
    current = Annotation.objects.select_for_update().filter(pk=change.annotation_pk).first()
    later = (
        AnnotationChange.objects.filter(of_annotations(change.annotation_pk), id__gt=change.pk)
        .order_by("id")
        .first()
    )
    if later is not None:
        raise _conflict(
            f"Annotation {change.annotation_id!r} has changed since (change {later.pk}); "
            "revert the later changes first."
        )
    if (current is None) != (change.action == "deleted"):
        # History and table disagree: the annotation went without a record (its dataset
        # being deleted), or came back by a path history did not see.
        raise _conflict(f"Annotation {change.annotation_id!r} is not as this change left it.")
    with change_context(user=user, source=ChangeSource.REVERT, reverts_id=change.pk):
        if change.action == "created":
            Annotation.objects.filter(pk=change.annotation_pk).delete()
        else:
            assert change.before is not None
            _restore(change, change.before)
    made = (
        AnnotationChange.objects.filter(of_annotations(change.annotation_pk), id__gt=change.pk)
        .select_related("event")
        .order_by("-id")
        .first()
    )
    assert made is not None, "the history triggers recorded no revert"
    return made


__all__ = ["annotation_change_revert"]
