"""Review queues: entries (an item, optionally with the objects to check) that curators
claim and decide, per entry and per object, with reasons from a per-dataset list.

See docs/review.md. Items, annotations and predictions under review are kept by id: an
entry about an annotation a reviewer then deleted still says what was reviewed.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from curation.models import Dataset, Item


class SourceKind(models.TextChoices):
    SLICE = "slice", "A slice"
    QUERY = "query", "A query"
    ITEMS = "items", "A list of reference ids (a selection)"
    LABEL_ERRORS = "label_errors", "Label-error candidates"
    EVALUATION = "evaluation", "An evaluation run's false positives or negatives"


class Assignment(models.TextChoices):
    CLAIM = "claim", "Claim the next entry"
    ROUND_ROBIN = "round_robin", "Round robin among the assignees"


class Status(models.TextChoices):
    PENDING = "pending", "Pending"
    CLAIMED = "claimed", "Claimed"
    ACCEPTED = "accepted", "Accepted"
    CORRECTED = "corrected", "Corrected"
    REJECTED = "rejected", "Rejected"
    SKIPPED = "skipped", "Skipped"


# The statuses an entry ends in (a decision), in the order the stats list them.
DECIDED = [Status.ACCEPTED, Status.CORRECTED, Status.REJECTED, Status.SKIPPED]
DECISION_CHOICES = [(s.value, s.label) for s in DECIDED]


class ReviewQueue(models.Model):
    """A named list of entries to review, made once from a source (recorded with its
    parameters) and assigned to reviewers by claiming or round robin."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    source_kind = models.CharField(max_length=16, choices=SourceKind.choices)
    source_params = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    assignment = models.CharField(max_length=16, choices=Assignment.choices, default="claim")
    # User ids, in order: round robin gives assignee k the entries whose position % n == k;
    # in claim mode a non-empty list limits who may claim.
    assignees = ArrayField(models.BigIntegerField(), default=list, blank=True)
    # A claim older than this may be claimed by someone else (a reviewer who left).
    claim_minutes = models.PositiveIntegerField(default=30)
    entry_count = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "name"], name="reviewqueue_unique_name"),
            models.CheckConstraint(
                condition=Q(source_kind__in=[k.value for k in SourceKind]),
                name="reviewqueue_source_kind",
            ),
            models.CheckConstraint(
                condition=Q(assignment__in=[a.value for a in Assignment]),
                name="reviewqueue_assignment",
            ),
            models.CheckConstraint(condition=Q(claim_minutes__gte=1), name="reviewqueue_claim"),
        ]

    def __str__(self) -> str:
        return self.name


class ReviewEntry(models.Model):
    """One thing to review: an item, the annotations and predictions to check on it (none:
    the item as a whole) and the evidence that put it here (a candidate's, a match's)."""

    queue = models.ForeignKey(ReviewQueue, on_delete=models.CASCADE, related_name="entries")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+", db_index=False)
    position = models.PositiveIntegerField()
    annotations = ArrayField(models.BigIntegerField(), default=list, blank=True)
    predictions = ArrayField(models.BigIntegerField(), default=list, blank=True)
    evidence = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    # The order of decisions (from the sequence review_decision_seq), which undo takes
    # the last of: decided_at is the transaction's time, equal for decisions made in one.
    decided_seq = models.BigIntegerField(null=True, blank=True)
    reason = models.ForeignKey(
        "RejectReason", on_delete=models.RESTRICT, null=True, blank=True, related_name="+"
    )
    note = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["queue", "position"]
        constraints = [
            models.UniqueConstraint(fields=["queue", "position"], name="reviewentry_position"),
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in Status]), name="reviewentry_status"
            ),
        ]
        indexes = [
            # Claiming walks the open entries of a queue in position order.
            models.Index(
                fields=["queue", "position"],
                name="reviewentry_open",
                condition=Q(status__in=["pending", "claimed"]),
            ),
            # A reviewer's own entries (held claims, undo, per-reviewer counts). Partial: a
            # new queue's pending rows stay out of them, which keeps its INSERT lighter.
            models.Index(
                fields=["queue", "decided_by", "decided_seq"],
                name="reviewentry_decided",
                condition=Q(decided_by__isnull=False),
            ),
            models.Index(
                fields=["queue", "claimed_by"],
                name="reviewentry_claimed",
                condition=Q(claimed_by__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.queue_id}#{self.position}"

    @property
    def object_count(self) -> int:
        return len(self.annotations) + len(self.predictions)


class RejectReason(models.Model):
    """One reason a reviewer may give for a rejection; each dataset gets DEFAULT_REASONS
    the first time it is reviewed, and curators may add their own."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    key = models.SlugField(max_length=64)
    label = models.CharField(max_length=200)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["dataset", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "key"], name="rejectreason_unique_key"),
        ]

    def __str__(self) -> str:
        return self.key


DEFAULT_REASONS = [
    ("wrong_label", "Wrong label"),
    ("bad_box", "Bad box"),
    ("missing_object", "Missing object"),
    ("not_an_object", "Not an object"),
    ("duplicate", "Duplicate"),
    ("other", "Other"),
]


class ObjectDecision(models.Model):
    """The decision on one annotation or prediction of an entry. `added_annotation` is the
    client id of an annotation the decision created (a prediction accepted as a missing
    annotation), which undo deletes again."""

    entry = models.ForeignKey(ReviewEntry, on_delete=models.CASCADE, related_name="objects_decided")
    annotation_id = models.BigIntegerField(null=True, blank=True)
    prediction_id = models.BigIntegerField(null=True, blank=True)
    decision = models.CharField(max_length=16, choices=Status.choices)
    reason = models.ForeignKey(
        RejectReason, on_delete=models.RESTRICT, null=True, blank=True, related_name="+"
    )
    note = models.TextField(blank=True, default="")
    added_annotation = models.CharField(max_length=512, blank=True, default="")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(annotation_id__isnull=True) ^ Q(prediction_id__isnull=True),
                name="objectdecision_one_object",
            ),
            models.CheckConstraint(
                condition=Q(decision__in=[s.value for s in DECIDED]),
                name="objectdecision_decision",
            ),
            models.UniqueConstraint(
                fields=["entry", "annotation_id"],
                name="objectdecision_annotation",
                condition=Q(annotation_id__isnull=False),
            ),
            models.UniqueConstraint(
                fields=["entry", "prediction_id"],
                name="objectdecision_prediction",
                condition=Q(prediction_id__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return self.decision
