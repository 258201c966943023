"""Serializers of the autotag API (embeddings/autotag_api.py)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from curation.serializers import ItemSerializer, JobSerializer
from embeddings.autotag import threshold_query
from embeddings.models import Autotag, AutotagRound

MAX_REFS = 5000


def _refs(help_text: str) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.CharField(max_length=1024),
        required=False,
        max_length=MAX_REFS,
        help_text=help_text,
    )


class AutotagExamplesSerializer(serializers.Serializer[dict[str, Any]]):
    """Examples of both signs, each side from reference ids, a slice and/or a tag."""

    positives = _refs("Reference ids of items that are the tag.")
    positives_slice = serializers.IntegerField(
        required=False, min_value=1, help_text="A slice whose items are the tag."
    )
    positives_tag = serializers.CharField(
        required=False, max_length=200, help_text="A tag whose items are the tag."
    )
    negatives = _refs("Reference ids of items that are not.")
    negatives_slice = serializers.IntegerField(required=False, min_value=1)
    negatives_tag = serializers.CharField(required=False, max_length=200)


class AutotagCreateSerializer(AutotagExamplesSerializer):
    name = serializers.CharField(max_length=200, help_text="Unique in the dataset.")
    model = serializers.CharField(
        required=False,
        max_length=200,
        help_text="The embedding model (name); default: the dataset's default model.",
    )


class AutotagRoundSerializer(serializers.ModelSerializer[AutotagRound]):
    positives = serializers.IntegerField(source="positive_count", read_only=True)
    negatives = serializers.IntegerField(source="negative_count", read_only=True)
    sampled_negatives = serializers.IntegerField(
        source="sampled_count",
        read_only=True,
        help_text="Negatives drawn at random from the dataset (unlabelled background).",
    )

    class Meta:
        model = AutotagRound
        fields = [
            "number",
            "status",
            "job",
            "positives",
            "negatives",
            "sampled_negatives",
            "bias",
            "metrics",
            "random_weights",
            "item_count",
            "seconds",
            "created",
            "finished",
        ]


class AutotagSerializer(serializers.ModelSerializer[Autotag]):
    model = serializers.CharField(source="model.name")
    random_weights = serializers.BooleanField(source="model.random_weights")
    scored_round = serializers.IntegerField(
        source="scored_round.number", allow_null=True, default=None
    )
    query = serializers.SerializerMethodField()

    class Meta:
        model = Autotag
        fields = ["id", "name", "model", "random_weights", "scored_round", "query", "created"]

    def get_query(self, autotag: Autotag) -> str:
        """The query-language field of its scores."""
        return threshold_query(autotag, 0.8)


class AutotagDetailSerializer(serializers.Serializer[Any]):
    autotag = AutotagSerializer()
    positives = serializers.IntegerField(help_text="Positive examples so far.")
    negatives = serializers.IntegerField(help_text="Negative examples so far (not sampled).")
    rounds = AutotagRoundSerializer(many=True, help_text="Newest first.")


class AutotagRoundStartedSerializer(serializers.Serializer[dict[str, Any]]):
    autotag = AutotagSerializer()
    round = AutotagRoundSerializer()
    job = JobSerializer()


class AutotagScoreRowSerializer(serializers.Serializer[Any]):
    score = serializers.FloatField()
    example = serializers.BooleanField(
        source="label",
        allow_null=True,
        help_text="true: a positive example, false: a negative, null: neither.",
    )
    item = serializers.SerializerMethodField()

    def get_item(self, row: Any) -> dict[str, Any]:
        return dict(ItemSerializer(row.item, context=self.context).data)


class AutotagScoresPageSerializer(serializers.Serializer[dict[str, Any]]):
    autotag = AutotagSerializer()
    round = serializers.IntegerField(allow_null=True)
    random_weights = serializers.BooleanField()
    offset = serializers.IntegerField()
    limit = serializers.IntegerField()
    next_offset = serializers.IntegerField(allow_null=True)
    results = AutotagScoreRowSerializer(many=True)


class AutotagApplySerializer(serializers.Serializer[dict[str, Any]]):
    threshold = serializers.FloatField(help_text="Items scoring at least this, from 0 to 1.")
    tag = serializers.CharField(required=False, max_length=200, help_text="Tag them so.")
    slice = serializers.CharField(
        required=False, max_length=200, help_text="Or: a new static slice of them, so named."
    )


class AutotagAppliedSerializer(serializers.Serializer[dict[str, Any]]):
    threshold = serializers.FloatField()
    tag = serializers.CharField(allow_null=True)
    slice = serializers.IntegerField(allow_null=True)
    items = serializers.IntegerField(help_text="Items newly tagged, or put in the slice.")
