"""Decisions on entries: accept, correct, reject (with a reason from the dataset's list
and free text) or skip an entry, and each of its objects; undo a reviewer's last one.

Deciding is idempotent: the same decision sent again is a no-op; a different one on a
decided entry is a 409 (undo it first). A decision that changes data (a prediction
accepted as a missing annotation) writes through curation's services, and undo reverts it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F
from django.db.models.expressions import RawSQL
from django.db.models.functions import Now

from curation.bulk.write import shapes_upsert
from curation.errors import Conflict, InvalidInput, field_error, invalid_field
from curation.history import change_context
from curation.models import Annotation, Prediction
from curation.services import annotations_delete
from review.claims import active_claim_q, entry_claim_next, reviewer_slot
from review.models import DECIDED, ObjectDecision, RejectReason, ReviewEntry, ReviewQueue, Status
from review.services import reasons_ensure

MAX_NOTE = 10_000
SOURCE = "review"  # what the annotation history records as the source of a review's writes


@dataclass(frozen=True)
class ObjectChoice:
    """One object's decision, checked: which object, the decision, its reason's id."""

    annotation_id: int | None
    prediction_id: int | None
    decision: str
    reason_id: int | None
    note: str
    add_annotation: bool = False

    def key(self) -> tuple[Any, ...]:
        return (self.annotation_id, self.prediction_id, self.decision, self.reason_id, self.note)


def _decision(raw: Any, path: str) -> str:
    if raw not in [s.value for s in DECIDED]:
        raise invalid_field(path, f"must be one of {', '.join(s.value for s in DECIDED)}")
    return str(raw)


def _note(raw: Any, path: str) -> str:
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise invalid_field(path, "must be a string")
    if len(raw) > MAX_NOTE:
        raise invalid_field(path, f"at most {MAX_NOTE} characters")
    return raw.strip()


def _reason(
    raw: Any, decision: str, reasons: Mapping[str, RejectReason], path: str
) -> RejectReason | None:
    """The reason of a rejection (required then, refused otherwise)."""
    if decision != Status.REJECTED:
        if raw not in (None, ""):
            raise invalid_field(path, "only a rejection takes a reason")
        return None
    if raw in (None, ""):
        raise invalid_field(path, "is required to reject")
    if raw not in reasons:
        raise invalid_field(path, f"must be one of {', '.join(reasons)}")
    return reasons[str(raw)]


def _object_id(raw: Any, path: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise invalid_field(path, "must be an id")
    return raw


def _objects(
    entry: ReviewEntry,
    raw: Any,
    decision: str,
    reason: RejectReason | None,
    note: str,
    reasons: Mapping[str, RejectReason],
) -> list[ObjectChoice]:
    """The decision on each object: those sent, and every object the entry lists that was
    not sent, which takes the entry's decision."""
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise invalid_field("objects", "must be a list")
    chosen: dict[tuple[str, int], ObjectChoice] = {}
    for i, obj in enumerate(raw):
        path = f"objects[{i}]"
        if not isinstance(obj, Mapping):
            raise invalid_field(path, "must be an object")
        has_a, has_p = obj.get("annotation") is not None, obj.get("prediction") is not None
        if has_a == has_p:
            raise invalid_field(path, "needs exactly one of annotation and prediction")
        kind = "annotation" if has_a else "prediction"
        pk = _object_id(obj[kind], f"{path}.{kind}")
        d = _decision(obj.get("decision", decision), f"{path}.decision")
        r = _reason(obj.get("reason"), d, reasons, f"{path}.reason") if "reason" in obj else None
        if d == Status.REJECTED and r is None:
            r = (
                reason
                if decision == Status.REJECTED
                else _reason(None, d, reasons, f"{path}.reason")
            )
        add = obj.get("add_annotation", False)
        if not isinstance(add, bool):
            raise invalid_field(f"{path}.add_annotation", "must be true or false")
        if add and (kind != "prediction" or d != Status.ACCEPTED):
            raise invalid_field(f"{path}.add_annotation", "only for an accepted prediction")
        chosen[(kind, pk)] = ObjectChoice(
            pk if has_a else None,
            pk if has_p else None,
            d,
            r.pk if r else None,
            _note(obj.get("note"), f"{path}.note"),
            add,
        )
    _check_objects_on_item(entry, chosen, raw)
    for pk in entry.annotations:
        chosen.setdefault(
            ("annotation", pk),
            ObjectChoice(pk, None, decision, reason.pk if reason else None, note),
        )
    for pk in entry.predictions:
        chosen.setdefault(
            ("prediction", pk),
            ObjectChoice(None, pk, decision, reason.pk if reason else None, note),
        )
    return sorted(chosen.values(), key=lambda c: (c.prediction_id or 0, c.annotation_id or 0))


def _check_objects_on_item(
    entry: ReviewEntry, chosen: Mapping[tuple[str, int], ObjectChoice], raw: Sequence[Any]
) -> None:
    """Every object sent is one the entry lists, or an object on the entry's item."""
    wanted_a = {pk for kind, pk in chosen if kind == "annotation"} - set(entry.annotations)
    wanted_p = {pk for kind, pk in chosen if kind == "prediction"} - set(entry.predictions)
    found_a = set(
        Annotation.objects.filter(item_id=entry.item_id, pk__in=wanted_a).values_list(
            "pk", flat=True
        )
    )
    found_p = set(
        Prediction.objects.filter(item_id=entry.item_id, pk__in=wanted_p).values_list(
            "pk", flat=True
        )
    )
    errors = []
    for i, obj in enumerate(raw):
        if obj.get("annotation") in wanted_a - found_a:
            errors.append(field_error(f"objects[{i}].annotation", "not an annotation of the item"))
        if obj.get("prediction") in wanted_p - found_p:
            errors.append(field_error(f"objects[{i}].prediction", "not a prediction of the item"))
    if errors:
        raise InvalidInput("Some objects are not on the entry's item.", fields=errors)


def _add_annotation(entry: ReviewEntry, user: Any, prediction_id: int) -> str:
    """Write an accepted prediction as an annotation of the item; returns its client id
    (the same for a retry, so nothing is written twice)."""
    p = Prediction.objects.filter(pk=prediction_id, item_id=entry.item_id).first()
    if p is None:
        raise invalid_field("objects", f"prediction {prediction_id} is gone")
    client_id = f"review-{entry.pk}-p{p.pk}"
    # Recorded in the annotation history as this reviewer's, through this entry.
    with change_context(user=user, source=SOURCE, entry_id=entry.pk):
        shapes_upsert(
            dataset=entry.queue.dataset,
            rows=[
                {
                    "reference_id": entry.item.reference_id,
                    "id": client_id,
                    "kind": p.kind,
                    "label": p.label,
                    "geometry": p.geometry,
                    "metadata": {"review": {"entry": entry.pk, "prediction": p.pk}},
                }
            ],
        )
    return client_id


def _stored(entry: ReviewEntry) -> list[tuple[Any, ...]]:
    return sorted(
        (
            (o.annotation_id, o.prediction_id, o.decision, o.reason_id, o.note)
            for o in entry.objects_decided.all()
        ),
        key=lambda t: (t[1] or 0, t[0] or 0),
    )


@transaction.atomic
def entry_decide(
    *,
    entry: ReviewEntry,
    user: Any,
    decision: Any,
    reason: Any = None,
    note: Any = "",
    objects: Any = None,
) -> tuple[ReviewEntry, bool]:
    """Decide an entry (and its objects); returns it and whether anything changed."""
    queue = entry.queue
    dataset = queue.dataset
    reasons_ensure(dataset=dataset)
    reasons = {r.key: r for r in RejectReason.objects.filter(dataset=dataset)}
    clean = _decision(decision, "decision")
    clean_reason = _reason(reason, clean, reasons, "reason")
    clean_note = _note(note, "note")
    locked = (
        ReviewEntry.objects.select_for_update()
        .select_related("queue", "queue__dataset", "item")
        .get(pk=entry.pk)
    )
    choices = _objects(locked, objects, clean, clean_reason, clean_note, reasons)
    if locked.status in DECIDED:
        same = (
            locked.status == clean
            and locked.reason_id == (clean_reason.pk if clean_reason else None)
            and locked.note == clean_note
            and _stored(locked) == [c.key() for c in choices]
        )
        if same:
            return locked, False
        raise Conflict(f"This entry was already decided ({locked.status}); undo it first.")
    reviewer_slot(queue, user)
    held_by_other = (
        locked.status == Status.CLAIMED
        and locked.claimed_by_id != user.pk
        and ReviewEntry.objects.filter(pk=locked.pk)
        .filter(active_claim_q(queue, locked.claimed_by_id))
        .exists()
    )
    if held_by_other:
        raise Conflict("Another reviewer holds this entry.")
    ReviewEntry.objects.filter(pk=locked.pk).update(
        status=clean,
        decided_by=user,
        decided_at=Now(),
        decided_seq=RawSQL("nextval('review_decision_seq')", []),
        claimed_by=F("claimed_by") if locked.claimed_by_id else user,
        claimed_at=F("claimed_at") if locked.claimed_at else Now(),
        reason=clean_reason,
        note=clean_note,
    )
    ObjectDecision.objects.bulk_create(
        [
            ObjectDecision(
                entry=locked,
                annotation_id=c.annotation_id,
                prediction_id=c.prediction_id,
                decision=c.decision,
                reason_id=c.reason_id,
                note=c.note,
                added_annotation=(
                    _add_annotation(locked, user, c.prediction_id)
                    if c.add_annotation and c.prediction_id
                    else ""
                ),
            )
            for c in choices
        ]
    )
    locked.refresh_from_db()
    return locked, True


@transaction.atomic
def entry_undo(*, queue: ReviewQueue, user: Any) -> ReviewEntry:
    """Take back `user`'s last decision in the queue: the entry is theirs again (claimed),
    its object decisions go, and an annotation it added is deleted."""
    last = (
        ReviewEntry.objects.select_for_update()
        .filter(queue=queue, decided_by=user, status__in=DECIDED)
        .order_by("-decided_seq", "-id")
        .first()
    )
    if last is None:
        raise Conflict("You have no decision in this queue to undo.")
    added = [o.added_annotation for o in last.objects_decided.all() if o.added_annotation]
    if added:
        with change_context(user=user, source=SOURCE, entry_id=last.pk):
            annotations_delete(dataset=queue.dataset, annotation_ids=added)
    last.objects_decided.all().delete()
    ReviewEntry.objects.filter(pk=last.pk).update(
        status=Status.CLAIMED,
        claimed_by=user,
        claimed_at=Now(),
        decided_by=None,
        decided_at=None,
        decided_seq=None,
        reason=None,
        note="",
    )
    last.refresh_from_db()
    return last


@transaction.atomic
def entry_decide_and_claim_next(
    *,
    entry: ReviewEntry,
    user: Any,
    decision: Any,
    reason: Any = None,
    note: Any = "",
    objects: Any = None,
) -> tuple[ReviewEntry, ReviewEntry | None]:
    """Decide an entry, then claim the reviewer's next one (the review screen's step)."""
    decided, _ = entry_decide(
        entry=entry, user=user, decision=decision, reason=reason, note=note, objects=objects
    )
    following = entry_claim_next(queue=decided.queue, user=user, count=1)
    return decided, following[0] if following else None
