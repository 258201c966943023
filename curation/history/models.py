"""The history of annotations: one event per write (who, through what), one row per
annotation it created, changed or deleted.

Rows are written by PostgreSQL triggers on curation_annotation (curation.history.triggers),
never by Python, so every path is recorded: the COPY upserts of ingest and the bulk API,
ORM saves and deletes, item-delete cascades and raw SQL. Models refer to curation's by
name, so this module imports nothing of curation.models (which imports it).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now


class ChangeSource(models.TextChoices):
    INGEST = "ingest", "Ingest job"
    API = "api", "API"
    EDITOR = "editor", "Editor"
    REVIEW = "review", "Review"
    REVERT = "revert", "Revert"
    # A write outside any change context: the Django admin, a shell, a migration.
    ADMIN = "admin", "Admin"


class ChangeAction(models.TextChoices):
    CREATED = "created", "Created"
    CHANGED = "changed", "Changed"
    DELETED = "deleted", "Deleted"


# The actions indexed by B-tree (creations by BRIN, see AnnotationChange.Meta).
EDITS = [ChangeAction.CHANGED.value, ChangeAction.DELETED.value]


class AnnotationEvent(models.Model):
    """One write of one context in one transaction: a bulk upsert of 10,000 rows is one.

    `job_id`, `entry_id` and `reverts_id` are plain integers, not foreign keys: history
    outlives jobs, review entries and (for reverts) nothing points back into it.
    """

    # No FK constraint: deleting a dataset through the ORM's cascade records the deletion
    # of its annotations after the cascade collected its events (curation.services's
    # dataset_delete records nothing and deletes the history first).
    dataset = models.ForeignKey(
        "curation.Dataset",
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    source = models.CharField(max_length=16, choices=ChangeSource.choices)
    job_id = models.BigIntegerField(null=True, blank=True)
    entry_id = models.BigIntegerField(null=True, blank=True)
    reverts_id = models.BigIntegerField(null=True, blank=True)  # the AnnotationChange undone
    created = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["dataset", "id"], name="annotationevent_dataset")]

    def __str__(self) -> str:
        return f"{self.source} event #{self.pk}"


class AnnotationChange(models.Model):
    """One annotation created, changed or deleted by an event.

    Compact on purpose: only `before` is kept, null for a creation, and the creations of a
    bulk statement are one row per run of annotation pks on an item (`last_pk`, see
    curation.history.compact; the selectors read them as one change per annotation). The
    state after a change is the `before` of the annotation's next change, or the annotation
    as it is now (curation.history.selectors derives it).
    `annotation_pk` and `item_id` are not foreign keys, so history outlives both.
    """

    event = models.ForeignKey(
        AnnotationEvent,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="changes",
    )
    # Repeats event.dataset so a dataset's history pages by one index, with no join.
    dataset = models.ForeignKey(
        "curation.Dataset",
        on_delete=models.CASCADE,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    annotation_pk = models.BigIntegerField()
    # Set only on the creations of a bulk statement: the row stands for the creation of
    # annotation pks annotation_pk..last_pk on item_id, with change ids id..id + (last_pk -
    # annotation_pk), and has no annotation_id (curation.history.compact; triggers.py).
    last_pk = models.BigIntegerField(null=True, blank=True)
    annotation_id = models.CharField(max_length=512)
    item_id = models.BigIntegerField()
    action = models.CharField(max_length=8, choices=ChangeAction.choices)
    # {"annotation_id", "item_id", "kind", "label", "geometry", "metadata"}; null if created
    before = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        # Creations are most of the rows (a first ingest is nothing else) and arrive in
        # bulk, in the order of their annotation and item ids: BRIN indexes them at almost
        # no cost per row (B-trees on both columns made a first ingest's database writes
        # 19% slower; BRIN 7%). Changes and deletions, fewer and scattered, get B-trees.
        # Lookups name both halves (curation.history.selectors.of_annotation / of_item).
        indexes = [
            models.Index(fields=["dataset", "id"], name="annotationchange_dataset"),
            models.Index(
                fields=["annotation_pk", "id"],
                name="annotationchange_annotation",
                condition=Q(action__in=EDITS),
            ),
            models.Index(
                fields=["item_id", "id"],
                name="annotationchange_item",
                condition=Q(action__in=EDITS),
            ),
            # The rows of bulk creations (curation.history.compact), one per item and
            # statement: few enough for a B-tree, which finds the run holding a pk.
            models.Index(
                fields=["annotation_pk"],
                name="annotationchange_runs",
                condition=Q(last_pk__isnull=False),
            ),
            BrinIndex(
                fields=["annotation_pk"],
                name="annotationchange_created_ann",
                opclasses=["int8_minmax_multi_ops"],
                pages_per_range=16,
                condition=Q(action=ChangeAction.CREATED),
            ),
            BrinIndex(
                fields=["item_id"],
                name="annotationchange_created_item",
                opclasses=["int8_minmax_multi_ops"],
                pages_per_range=16,
                condition=Q(action=ChangeAction.CREATED),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.annotation_id} (#{self.pk})"


__all__ = ["EDITS", "AnnotationChange", "AnnotationEvent", "ChangeAction", "ChangeSource"]
