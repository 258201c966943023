"""Claiming entries: the next open entries of a queue for one reviewer, so that two
reviewers never get the same entry (SELECT ... FOR UPDATE SKIP LOCKED), with round robin
by position and claims that go stale after the queue's `claim_minutes`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, Q, Value
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Now

from curation.errors import Forbidden
from review.models import Assignment, ReviewEntry, ReviewQueue, Status

MAX_CLAIM = 100


def stale_before(queue: ReviewQueue) -> ExpressionWrapper[CombinedExpression]:
    """The database's now() less the queue's claim timeout: a claim older is stale. The
    comparison runs in SQL, against the database's clock."""
    return ExpressionWrapper(
        Now() - Value(timedelta(minutes=queue.claim_minutes)), output_field=DateTimeField()
    )


def open_q(queue: ReviewQueue) -> Q:
    """Entries anyone may claim: pending, or claimed too long ago."""
    return Q(status=Status.PENDING) | Q(status=Status.CLAIMED, claimed_at__lt=stale_before(queue))


def active_claim_q(queue: ReviewQueue, user: Any) -> Q:
    return Q(status=Status.CLAIMED, claimed_by=user, claimed_at__gte=stale_before(queue))


def reviewer_slot(queue: ReviewQueue, user: Any) -> int | None:
    """Which positions `user` reviews in a round-robin queue (position % n == slot); None
    for any. Someone not among a queue's assignees may not review it."""
    if not queue.assignees:
        return None
    if user.pk not in queue.assignees:
        raise Forbidden("This queue is assigned to other reviewers.")
    if queue.assignment == Assignment.ROUND_ROBIN:
        return queue.assignees.index(user.pk)
    return None


@transaction.atomic
def entry_claim_next(
    *, queue: ReviewQueue, user: Any, count: int = 1, after: int | None = None
) -> list[ReviewEntry]:
    """Up to `count` entries for `user`: the claims they hold first, then the next open
    entries by position (their round-robin share); only those past position `after` when
    given (the review screen's "next"). Entries another transaction is claiming are
    skipped, not waited for, so concurrent reviewers get disjoint entries."""
    slot = reviewer_slot(queue, user)
    entries = ReviewEntry.objects.filter(queue=queue)
    if after is not None:
        entries = entries.filter(position__gt=after)
    held = list(entries.filter(active_claim_q(queue, user)).order_by("position")[:count])
    wanted = count - len(held)
    if wanted <= 0:
        return held
    rows = entries.filter(open_q(queue))
    if slot is not None:
        rows = rows.alias(slot=F("position") % len(queue.assignees)).filter(slot=slot)
    picked = list(
        rows.select_for_update(skip_locked=True)
        .order_by("position")
        .values_list("pk", flat=True)[:wanted]
    )
    if picked:
        ReviewEntry.objects.filter(pk__in=picked).update(
            status=Status.CLAIMED, claimed_by=user, claimed_at=Now()
        )
    return held + list(ReviewEntry.objects.filter(pk__in=picked).order_by("position"))
