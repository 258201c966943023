"""Writes of the review app's queues and reasons: create a queue from a source (one
INSERT ... SELECT), change its assignment, delete it, and the per-dataset reject reasons.
Claims are review/claims.py, decisions review/decisions.py."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.utils.text import slugify

from curation.access import has_role
from curation.errors import Conflict, InvalidInput, field_error, invalid_field
from curation.models import Dataset, Role
from review.models import (
    DEFAULT_REASONS,
    Assignment,
    ObjectDecision,
    RejectReason,
    ReviewEntry,
    ReviewQueue,
)
from review.sources import entry_rows

MAX_CLAIM_MINUTES = 7 * 24 * 60


def reasons_ensure(*, dataset: Dataset) -> None:
    """Give the dataset the default reject reasons the first time it is reviewed (a retry
    or a race adds nothing twice)."""
    if RejectReason.objects.filter(dataset=dataset).exists():
        return
    RejectReason.objects.bulk_create(
        [
            RejectReason(dataset=dataset, key=key, label=label, position=i)
            for i, (key, label) in enumerate(DEFAULT_REASONS)
        ],
        ignore_conflicts=True,
    )


@transaction.atomic
def reason_add(*, dataset: Dataset, label: str, key: str = "") -> RejectReason:
    """Add a reject reason to the dataset's list (after the defaults)."""
    reasons_ensure(dataset=dataset)
    label = label.strip() if isinstance(label, str) else ""
    if not label:
        raise invalid_field("label", "is required")
    if len(label) > 200:
        raise invalid_field("label", "at most 200 characters")
    key = slugify(key or label).replace("-", "_")[:64]
    if not key:
        raise invalid_field("key", "needs a letter or digit")
    last = RejectReason.objects.filter(dataset=dataset).order_by("-position").first()
    reason = RejectReason(
        dataset=dataset, key=key, label=label, position=(last.position + 1) if last else 0
    )
    try:
        with transaction.atomic():
            reason.save()
    except IntegrityError:
        message = f"a reason {key!r} already exists"
        raise Conflict(f"key: {message}", fields=[field_error("key", message)]) from None
    return reason


def _name(raw: Any) -> str:
    name = raw.strip() if isinstance(raw, str) else ""
    if not name:
        raise invalid_field("name", "is required")
    if len(name) > 200:
        raise invalid_field("name", "at most 200 characters")
    return name


def _assignment(
    dataset: Dataset, assignment: Any, assignees: Any, claim_minutes: Any
) -> tuple[str, list[int], int]:
    """Check an assignment: its mode, its assignees (usernames of curators on the
    dataset, in order) and the claim timeout."""
    if assignment not in Assignment.values:
        raise invalid_field("assignment", f"must be one of {', '.join(Assignment.values)}")
    if assignees is None:
        assignees = []
    if not isinstance(assignees, list) or not all(isinstance(a, str) for a in assignees):
        raise invalid_field("assignees", "must be a list of usernames")
    names = list(dict.fromkeys(a.strip() for a in assignees if a.strip()))
    users = {u.username: u for u in get_user_model().objects.filter(username__in=names)}
    ids: list[int] = []
    errors = []
    for index, username in enumerate(names):
        user = users.get(username)
        if user is None or not has_role(dataset.role_of(user), Role.CURATOR):
            errors.append(
                field_error(f"assignees[{index}]", f"{username!r} is not a curator of the dataset")
            )
        else:
            ids.append(int(user.pk))
    if errors:
        raise InvalidInput("Some assignees cannot review this dataset.", fields=errors)
    if assignment == Assignment.ROUND_ROBIN and not ids:
        raise invalid_field("assignees", "round robin needs at least one assignee")
    if isinstance(claim_minutes, bool) or not isinstance(claim_minutes, int):
        raise invalid_field("claim_minutes", "must be a whole number")
    if not 1 <= claim_minutes <= MAX_CLAIM_MINUTES:
        raise invalid_field("claim_minutes", f"must be from 1 to {MAX_CLAIM_MINUTES}")
    return str(assignment), ids, claim_minutes


@transaction.atomic
def queue_create(
    *,
    dataset: Dataset,
    user: Any,
    name: Any,
    source: Any,
    description: str = "",
    assignment: Any = Assignment.CLAIM,
    assignees: Sequence[str] | None = None,
    claim_minutes: Any = 30,
) -> ReviewQueue:
    """Make a queue and all its entries from `source` in one statement."""
    clean_name = _name(name)
    mode, ids, minutes = _assignment(dataset, assignment, assignees, claim_minutes)
    kind, rows = entry_rows(dataset, source)
    reasons_ensure(dataset=dataset)
    queue = ReviewQueue(
        dataset=dataset,
        name=clean_name,
        description=description or "",
        source_kind=kind,
        source_params=rows.recorded,
        created_by=user if getattr(user, "is_authenticated", False) else None,
        assignment=mode,
        assignees=ids,
        claim_minutes=minutes,
    )
    try:
        with transaction.atomic():
            queue.save()
    except IntegrityError:
        message = f"a queue named {clean_name!r} already exists"
        raise Conflict(f"name: {message}", fields=[field_error("name", message)]) from None
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO review_reviewentry (queue_id, item_id, position, annotations, "
            "predictions, evidence, status, note) "
            f"SELECT %s, r.item_id, r.position, r.annotations, r.predictions, r.evidence, "
            f"'pending', '' FROM ({rows.sql}) AS r(item_id, position, annotations, "
            "predictions, evidence)",
            [queue.pk, *rows.params],
        )
        count = int(cursor.rowcount)
    if count == 0:
        raise invalid_field("source", "selects nothing to review")
    queue.entry_count = count
    queue.save(update_fields=["entry_count"])
    return queue


@transaction.atomic
def queue_update(
    *,
    queue: ReviewQueue,
    name: Any = None,
    description: Any = None,
    assignment: Any = None,
    assignees: Any = None,
    claim_minutes: Any = None,
) -> ReviewQueue:
    """Rename a queue or change who reviews it; what is not given stays."""
    if name is not None:
        queue.name = _name(name)
    if description is not None:
        if not isinstance(description, str):
            raise invalid_field("description", "must be a string")
        queue.description = description
    if assignment is not None or assignees is not None or claim_minutes is not None:
        if assignees is None:  # keep them, in their order
            by_id = {
                u.pk: u.username for u in get_user_model().objects.filter(pk__in=queue.assignees)
            }
            assignees = [by_id[i] for i in queue.assignees if i in by_id]
        queue.assignment, queue.assignees, queue.claim_minutes = _assignment(
            queue.dataset,
            assignment if assignment is not None else queue.assignment,
            assignees,
            claim_minutes if claim_minutes is not None else queue.claim_minutes,
        )
    try:
        with transaction.atomic():
            queue.save()
    except IntegrityError:
        message = f"a queue named {queue.name!r} already exists"
        raise Conflict(f"name: {message}", fields=[field_error("name", message)]) from None
    return queue


@transaction.atomic
def queue_delete(*, queue: ReviewQueue) -> None:
    queue.delete()


def review_dataset_deleting(*, dataset: Dataset, **_: Any) -> None:
    """Empty the dataset's review tables set-based before it goes (the receiver of
    curation.signals.dataset_deleting): Django's cascade would load every entry first."""
    queues = ReviewQueue.objects.filter(dataset=dataset).values("pk")
    entries = ReviewEntry.objects.filter(queue__in=queues).values("pk")
    for rows in (
        ObjectDecision.objects.filter(entry__in=entries),
        ReviewEntry.objects.filter(queue__in=queues),
    ):
        # _raw_delete: one DELETE ... WHERE, as curation's dataset_delete does its tables.
        rows._raw_delete(rows.db)
