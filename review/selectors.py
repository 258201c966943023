"""Reads of the review app: queues, entries, stats, the reject reasons and who made the
annotations under review. The API's and the pages' views call these; they never query."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, Q, QuerySet

from curation.errors import NotFound, invalid_field
from curation.history.selectors import latest_changes
from curation.models import Annotation, Dataset
from curation.selectors import slices_of
from evaluation.selectors import finished_runs
from insights.label_error_selectors import TYPES, scans_of
from review.claims import stale_before
from review.models import DECIDED, ObjectDecision, RejectReason, ReviewEntry, ReviewQueue, Status


def queues_of(*, dataset: Dataset) -> QuerySet[ReviewQueue]:
    return ReviewQueue.objects.filter(dataset=dataset).select_related("created_by")


def queue_of(*, dataset: Dataset, queue_id: Any) -> ReviewQueue:
    try:
        pk = int(queue_id)
    except (TypeError, ValueError):
        raise NotFound("Review queue not found.") from None
    found = queues_of(dataset=dataset).filter(pk=pk).first()
    if found is None:
        raise NotFound("Review queue not found.")
    found.dataset = dataset
    return found


def entries_of(
    *, queue: ReviewQueue, status: str | None = None, after: int | None = None
) -> QuerySet[ReviewEntry]:
    """A queue's entries in position order, of one status when given, past position
    `after` when given (the queue page's keyset pages)."""
    rows = ReviewEntry.objects.filter(queue=queue).select_related(
        "item", "claimed_by", "decided_by", "reason"
    )
    if status is not None:
        if status not in Status.values:
            raise invalid_field("status", f"must be one of {', '.join(Status.values)}")
        rows = rows.filter(status=status)
    if after is not None:
        rows = rows.filter(position__gt=after)
    return rows.prefetch_related("objects_decided__reason").order_by("position")


def entry_of(*, queue: ReviewQueue, entry_id: Any) -> ReviewEntry:
    try:
        pk = int(entry_id)
    except (TypeError, ValueError):
        raise NotFound("Review entry not found.") from None
    found = entries_of(queue=queue).filter(pk=pk).first()
    if found is None:
        raise NotFound("Review entry not found.")
    found.queue = queue
    return found


def entries_in(*, queue: ReviewQueue, entry_ids: Sequence[int]) -> list[ReviewEntry]:
    return list(entries_of(queue=queue).filter(pk__in=list(entry_ids)))


def reasons_of(*, dataset: Dataset) -> list[RejectReason]:
    return list(RejectReason.objects.filter(dataset=dataset))


def usernames(user_ids: Iterable[int]) -> dict[int, str]:
    ids = list(user_ids)
    return dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username"))


# ------------------------------------------------------------------------------- stats


@dataclass
class ReviewerCounts:
    user_id: int
    username: str
    accepted: int = 0
    corrected: int = 0
    rejected: int = 0
    skipped: int = 0
    claimed: int = 0

    @property
    def decided(self) -> int:
        return self.accepted + self.corrected + self.rejected

    @property
    def acceptance_rate(self) -> float | None:
        return round(self.accepted / self.decided, 4) if self.decided else None

    def as_json(self) -> dict[str, Any]:
        return {
            "user": self.user_id,
            "username": self.username,
            "accepted": self.accepted,
            "corrected": self.corrected,
            "rejected": self.rejected,
            "skipped": self.skipped,
            "claimed": self.claimed,
            "decided": self.decided,
            "acceptance_rate": self.acceptance_rate,
        }


@dataclass
class QueueStats:
    """Progress (done of total), counts by status, the acceptance rate (accepted of the
    entries judged: accepted, corrected or rejected; skips are no judgement), per
    reviewer, and rejections per reason (entries and objects)."""

    total: int
    by_status: dict[str, int]
    reviewers: list[ReviewerCounts] = field(default_factory=list)
    reasons: list[dict[str, Any]] = field(default_factory=list)

    @property
    def done(self) -> int:
        return sum(self.by_status.get(s, 0) for s in DECIDED)

    @property
    def progress(self) -> float:
        return round(self.done / self.total, 4) if self.total else 0.0

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else 0

    @property
    def acceptance_rate(self) -> float | None:
        judged = sum(self.by_status.get(s, 0) for s in ("accepted", "corrected", "rejected"))
        return round(self.by_status.get("accepted", 0) / judged, 4) if judged else None

    def as_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "done": self.done,
            "progress": self.progress,
            "by_status": self.by_status,
            "acceptance_rate": self.acceptance_rate,
            "reviewers": [r.as_json() for r in self.reviewers],
            "reasons": self.reasons,
        }


def queue_stats(*, queue: ReviewQueue) -> QueueStats:
    """The queue's stats, in three grouped queries."""
    by_status = {s: 0 for s in Status.values}
    for row in ReviewEntry.objects.filter(queue=queue).values("status").annotate(n=Count("id")):
        by_status[row["status"]] = row["n"]
    # Claims count as the reviewer's while active; a stale one counts as no one's.
    counts: dict[int, ReviewerCounts] = {}
    rows = (
        ReviewEntry.objects.filter(queue=queue)
        .filter(
            Q(status__in=DECIDED) | Q(status=Status.CLAIMED, claimed_at__gte=stale_before(queue))
        )
        .values("status", "decided_by", "claimed_by")
        .annotate(n=Count("id"))
    )
    found = list(rows)
    names = usernames(
        {r["decided_by"] for r in found if r["decided_by"]}
        | {r["claimed_by"] for r in found if r["claimed_by"]}
    )
    for row in found:
        user_id = row["decided_by"] if row["status"] in DECIDED else row["claimed_by"]
        if user_id is None:
            continue
        counts.setdefault(user_id, ReviewerCounts(user_id, names.get(user_id, "")))
        status = row["status"]
        attribute = status if status in DECIDED else "claimed"
        setattr(counts[user_id], attribute, getattr(counts[user_id], attribute) + row["n"])
    reasons = []
    by_entry = dict(
        ReviewEntry.objects.filter(queue=queue, status=Status.REJECTED)
        .values_list("reason")
        .annotate(n=Count("id"))
    )
    by_object = dict(
        ObjectDecision.objects.filter(entry__queue=queue, decision=Status.REJECTED)
        .values_list("reason")
        .annotate(n=Count("id"))
    )
    for r in RejectReason.objects.filter(dataset_id=queue.dataset_id):
        reasons.append(
            {
                "key": r.key,
                "label": r.label,
                "entries": by_entry.get(r.pk, 0),
                "objects": by_object.get(r.pk, 0),
            }
        )
    return QueueStats(
        total=queue.entry_count,
        by_status=by_status,
        reviewers=sorted(counts.values(), key=lambda c: c.username),
        reasons=reasons,
    )


# ------------------------------------------------------------ who made the annotations


@dataclass(frozen=True)
class AuthorInfo:
    """Who last changed an annotation, by what, and when. Until the annotation history
    is wired in, user and source are unknown (None) and `at` is the row's own time."""

    user: str | None
    source: str | None
    at: datetime
    created: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "source": self.source,
            "at": self.at.isoformat(),
            "created": self.created.isoformat(),
        }


def annotation_authors(dataset: Dataset, pks: Sequence[int]) -> dict[int, AuthorInfo]:
    """Who made each of these annotations of the dataset (the page and the API show it):
    the user and the source (ingest, api, editor, review, revert) of its latest change in
    the annotation history (curation.history), and when; an annotation the history has no
    change of (written before history was kept) keeps its row's times and no user."""
    rows = Annotation.objects.filter(dataset=dataset, pk__in=list(pks)).values_list(
        "pk", "created", "updated"
    )
    found = {pk: (created, updated) for pk, created, updated in rows}
    latest = latest_changes(dataset=dataset, annotation_pks=list(found))
    authors = {}
    for pk, (created, updated) in found.items():
        change = latest.get(pk)
        authors[pk] = AuthorInfo(
            user=change.username if change else None,
            source=change.source if change else None,
            at=change.at if change else updated,
            created=created,
        )
    return authors


# ------------------------------------------------------------------ the create form


@dataclass(frozen=True)
class FormChoices:
    """What the queue form offers: the dataset's slices, finished runs and scans."""

    slices: list[tuple[int, str]]
    runs: list[tuple[int, str]]
    scans: list[tuple[int, str]]
    types: list[str]


def form_choices(*, dataset: Dataset) -> FormChoices:
    return FormChoices(
        slices=[(s.pk, s.name) for s in slices_of(dataset=dataset).order_by("name")],
        runs=[(pk, name) for pk, name, _, _ in finished_runs(dataset=dataset)],
        scans=[
            (s.pk, f"#{s.pk} of run {s.run.name}")
            for s in scans_of(dataset=dataset).order_by("-id")[:50]
        ],
        types=TYPES,
    )


def queues_done(*, queues: Sequence[ReviewQueue]) -> dict[int, int]:
    """How many entries of each queue are decided, in one grouped query."""
    rows = (
        ReviewEntry.objects.filter(queue__in=[q.pk for q in queues], status__in=DECIDED)
        .values_list("queue")
        .annotate(n=Count("id"))
    )
    return {queue_id: n for queue_id, n in rows}
