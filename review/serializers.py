"""What the review API reads and writes (input checked here for types; the services
check the rest and name the field of each 400)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from rest_framework import serializers

from review.models import (
    DECISION_CHOICES,
    Assignment,
    ObjectDecision,
    RejectReason,
    ReviewEntry,
    ReviewQueue,
)
from review.selectors import AuthorInfo


class ReasonSerializer(serializers.ModelSerializer[RejectReason]):
    class Meta:
        model = RejectReason
        fields = ["key", "label", "position"]


class ReasonCreateSerializer(serializers.Serializer[dict[str, Any]]):
    # `label` and `source` name attributes of DRF's Field too: mypy sees the clash.
    label = serializers.CharField(max_length=200)  # type: ignore[assignment]
    key = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")


class QueueSerializer(serializers.ModelSerializer[ReviewQueue]):
    created_by = serializers.CharField(
        source="created_by.username", default=None, allow_null=True, read_only=True
    )
    assignees = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = ReviewQueue
        fields = [
            "id",
            "name",
            "description",
            "source_kind",
            "source_params",
            "assignment",
            "assignees",
            "claim_minutes",
            "entry_count",
            "created_by",
            "created",
            "url",
        ]

    def get_assignees(self, queue: ReviewQueue) -> list[str]:
        names: dict[int, str] = self.context.get("usernames", {})
        return [names.get(pk, str(pk)) for pk in queue.assignees]

    def get_url(self, queue: ReviewQueue) -> str:
        return reverse("review-ui:queue", args=[queue.dataset_id, queue.pk])


class QueueCreateSerializer(serializers.Serializer[dict[str, Any]]):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    source = serializers.DictField(  # type: ignore[assignment]
        help_text='What to review: {"kind": "slice", "slice": 3, "with_annotations": true}, '
        '{"kind": "query", "query": "..."}, {"kind": "items", "reference_ids": [...]}, '
        '{"kind": "label_errors", "scan": 5, "type": "wrong_label", "min_score": 0.5}, '
        '{"kind": "evaluation", "run": 2, "outcome": "fp", "label": "car"}; each takes '
        "an optional `limit`."
    )
    assignment = serializers.ChoiceField(choices=Assignment.choices, default=Assignment.CLAIM)
    assignees = serializers.ListField(
        child=serializers.CharField(), required=False, default=list, help_text="Usernames."
    )
    claim_minutes = serializers.IntegerField(required=False, default=30)


class QueueUpdateSerializer(serializers.Serializer[dict[str, Any]]):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    assignment = serializers.ChoiceField(choices=Assignment.choices, required=False)
    assignees = serializers.ListField(child=serializers.CharField(), required=False)
    claim_minutes = serializers.IntegerField(required=False)


class ClaimSerializer(serializers.Serializer[dict[str, Any]]):
    count = serializers.IntegerField(required=False, default=1, min_value=1, max_value=100)


class ObjectInputSerializer(serializers.Serializer[dict[str, Any]]):
    annotation = serializers.IntegerField(required=False)
    prediction = serializers.IntegerField(required=False)
    decision = serializers.ChoiceField(choices=DECISION_CHOICES, required=False)
    reason = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    note = serializers.CharField(required=False, allow_blank=True)
    add_annotation = serializers.BooleanField(
        required=False, help_text="An accepted prediction becomes an annotation of the item."
    )


class DecideSerializer(serializers.Serializer[dict[str, Any]]):
    decision = serializers.ChoiceField(choices=DECISION_CHOICES)
    reason = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, help_text="A reason key; to reject."
    )
    note = serializers.CharField(required=False, allow_blank=True, default="")
    objects = ObjectInputSerializer(many=True, required=False)


class ObjectDecisionSerializer(serializers.ModelSerializer[ObjectDecision]):
    annotation = serializers.IntegerField(source="annotation_id", allow_null=True, read_only=True)
    prediction = serializers.IntegerField(source="prediction_id", allow_null=True, read_only=True)
    decision = serializers.ChoiceField(choices=DECISION_CHOICES)
    reason = serializers.CharField(
        source="reason.key", default=None, allow_null=True, read_only=True
    )

    class Meta:
        model = ObjectDecision
        fields = ["annotation", "prediction", "decision", "reason", "note", "added_annotation"]


class EntrySerializer(serializers.ModelSerializer[ReviewEntry]):
    reference_id = serializers.CharField(source="item.reference_id", read_only=True)
    claimed_by = serializers.CharField(
        source="claimed_by.username", default=None, allow_null=True, read_only=True
    )
    decided_by = serializers.CharField(
        source="decided_by.username", default=None, allow_null=True, read_only=True
    )
    reason = serializers.CharField(
        source="reason.key", default=None, allow_null=True, read_only=True
    )
    objects = ObjectDecisionSerializer(source="objects_decided", many=True, read_only=True)
    authors = serializers.SerializerMethodField(
        help_text="Who last changed each annotation under review, by annotation id."
    )
    review_url = serializers.SerializerMethodField()

    class Meta:
        model = ReviewEntry
        fields = [
            "id",
            "queue",
            "position",
            "item",
            "reference_id",
            "annotations",
            "predictions",
            "evidence",
            "status",
            "claimed_by",
            "claimed_at",
            "decided_by",
            "decided_at",
            "reason",
            "note",
            "objects",
            "authors",
            "review_url",
        ]

    def get_authors(self, entry: ReviewEntry) -> dict[str, Any]:
        found: dict[int, AuthorInfo] = self.context.get("authors", {})
        return {str(pk): found[pk].as_json() for pk in entry.annotations if pk in found}

    def get_review_url(self, entry: ReviewEntry) -> str:
        dataset_id = self.context.get("dataset_id")
        return reverse("review-ui:entry", args=[dataset_id, entry.queue_id, entry.pk])


class EntryPageSerializer(serializers.Serializer[dict[str, Any]]):
    """A page of entries (keyset by position: follow `next`)."""

    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = EntrySerializer(many=True)
