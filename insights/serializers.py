"""Serializers of the insights API (insights/api.py)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from curation.serializers import ItemSerializer
from insights.models import ItemScore, LeakPair, LeakReport, ScoreRun

SORTS = ["uniqueness", "-uniqueness", "representativeness", "-representativeness"]
SORTS += ["outlier", "-outlier"]


class ScoresJobSerializer(serializers.Serializer[dict[str, Any]]):
    model = serializers.CharField(
        required=False, help_text="The embedding model; default: the dataset's default."
    )
    neighbors = serializers.IntegerField(
        required=False, help_text="k, the nearest neighbours each score reads (1 to 100, 10)."
    )


class ScoreRunSerializer(serializers.ModelSerializer[ScoreRun]):
    model = serializers.CharField(source="model.name")

    class Meta:
        model = ScoreRun
        fields = [
            "id",
            "job",
            "model",
            "neighbors",
            "centroids",
            "random_weights",
            "item_count",
            "seconds",
            "finished",
        ]


class ItemScoreSerializer(serializers.ModelSerializer[ItemScore]):
    item = serializers.SerializerMethodField()

    class Meta:
        model = ItemScore
        fields = [
            "item",
            "uniqueness",
            "representativeness",
            "outlier",
            "knn_distance",
            "centroid_similarity",
            "lof",
        ]

    def get_item(self, score: ItemScore) -> dict[str, Any]:
        return dict(ItemSerializer(score.item, context=self.context).data)


class ScoresPageSerializer(serializers.Serializer[dict[str, Any]]):
    run = ScoreRunSerializer()
    random_weights = serializers.BooleanField(
        help_text="The model's weights are random: the scores are not semantic."
    )
    sort = serializers.CharField()
    offset = serializers.IntegerField()
    limit = serializers.IntegerField()
    next_offset = serializers.IntegerField(allow_null=True)
    results = ItemScoreSerializer(many=True)


class LeaksJobSerializer(serializers.Serializer[dict[str, Any]]):
    a = serializers.CharField(help_text="One side: slice:<name>, tag:<name>, or a bare name.")
    b = serializers.CharField(help_text="The other side, as `a`.")
    model = serializers.CharField(
        required=False,
        help_text="Embedding model for semantic near copies (real weights only); default: "
        "the dataset's default.",
    )


class LeakReportSerializer(serializers.ModelSerializer[LeakReport]):
    a = serializers.SerializerMethodField()
    b = serializers.SerializerMethodField()
    model = serializers.CharField(source="model.name", allow_null=True, default=None)

    class Meta:
        model = LeakReport
        fields = [
            "id",
            "job",
            "a",
            "b",
            "model",
            "hash_distance",
            "embedding_distance",
            "pair_count",
            "finished",
        ]

    def get_a(self, report: LeakReport) -> str:
        return f"{report.a_kind}:{report.a_name}"

    def get_b(self, report: LeakReport) -> str:
        return f"{report.b_kind}:{report.b_name}"


class LeakPairSerializer(serializers.ModelSerializer[LeakPair]):
    a = serializers.CharField(source="item_a.reference_id")
    b = serializers.CharField(source="item_b.reference_id")

    class Meta:
        model = LeakPair
        fields = ["a", "b", "item_a", "item_b", "evidence", "distance"]
        extra_kwargs = {
            "evidence": {"help_text": "same_item, exact (content hash), phash or embedding."},
            "distance": {
                "help_text": "0 for same_item and exact, bits of 256 for phash, cosine "
                "distance for embedding."
            },
        }


class LeaksPageSerializer(serializers.Serializer[dict[str, Any]]):
    report = LeakReportSerializer()
    offset = serializers.IntegerField()
    limit = serializers.IntegerField()
    next_offset = serializers.IntegerField(allow_null=True)
    pairs = LeakPairSerializer(many=True)


class LeaksRemoveSerializer(serializers.Serializer[dict[str, Any]]):
    side = serializers.ChoiceField(choices=["a", "b"], help_text="The side to take them out of.")
    report = serializers.IntegerField(required=False, help_text="The report; default: the newest.")


class LeaksRemovedSerializer(serializers.Serializer[dict[str, Any]]):
    side = serializers.CharField()
    removed_from = serializers.CharField()
    removed = serializers.IntegerField(help_text="Items taken out of the side.")
    items = serializers.IntegerField(help_text="Leaking items of that side in the report.")
