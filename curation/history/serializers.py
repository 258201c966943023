"""What the API says about annotation history."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from curation.history.models import AnnotationChange, ChangeSource
from curation.history.selectors import after_of

STATE_HELP = (
    "The annotation's fields (`annotation_id`, `item_id`, `kind`, `label`, `geometry`, "
    "`metadata`); null where it did not exist."
)


class AnnotationChangeSerializer(serializers.ModelSerializer[AnnotationChange]):
    """One change, with who made it and through what (its event's context)."""

    event_id = serializers.IntegerField(read_only=True)
    user = serializers.SerializerMethodField(help_text="Username; null if unknown or deleted.")
    user_id = serializers.IntegerField(source="event.user_id", read_only=True, allow_null=True)
    source = serializers.ChoiceField(  # type: ignore[assignment]
        source="event.source", choices=ChangeSource.choices, read_only=True
    )
    job_id = serializers.IntegerField(source="event.job_id", read_only=True, allow_null=True)
    entry_id = serializers.IntegerField(
        source="event.entry_id",
        read_only=True,
        allow_null=True,
        help_text="The review-queue entry whose decision made it.",
    )
    reverts = serializers.IntegerField(
        source="event.reverts_id",
        read_only=True,
        allow_null=True,
        help_text="The change this one reverted.",
    )
    created = serializers.DateTimeField(source="event.created", read_only=True)
    before = serializers.JSONField(read_only=True, allow_null=True, help_text=STATE_HELP)
    after = serializers.SerializerMethodField(help_text=STATE_HELP)
    latest = serializers.BooleanField(
        source="is_latest",
        read_only=True,
        help_text="Whether it is the annotation's latest change (only those can be reverted).",
    )

    class Meta:
        model = AnnotationChange
        fields = [
            "id",
            "event_id",
            "action",
            "annotation_pk",
            "annotation_id",
            "item_id",
            "before",
            "after",
            "user",
            "user_id",
            "source",
            "job_id",
            "entry_id",
            "reverts",
            "created",
            "latest",
        ]

    def get_user(self, change: AnnotationChange) -> str | None:
        user = change.event.user
        return user.get_username() if user is not None else None

    @extend_schema_field({"type": "object", "additionalProperties": {}, "nullable": True})
    def get_after(self, change: AnnotationChange) -> dict[str, Any] | None:
        return after_of(change)


class HistoryListSerializer(serializers.Serializer[dict[str, Any]]):
    results = AnnotationChangeSerializer(many=True)


__all__ = ["AnnotationChangeSerializer", "HistoryListSerializer"]
