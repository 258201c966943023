"""Serializers of the selection API (selection/api.py). The recipe's fields are checked by
selection.recipe.recipe_clean, whose 400s name the field (`weights.<name>`,
`strategies[i].model`); these only shape and document them."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from curation.serializers import ItemSerializer, ItemSetSerializer, JobSerializer
from selection.models import Selection
from selection.recipe import MAX_BUDGET

STRATEGY_HELP = (
    "One strategy: {name, ...options}. uncertainty {model, field}, uniqueness {model?, "
    "field}, similarity {model?, slice|tag}, metadata {key, values, default}, random {}, "
    "diversity {model?, dims}, balance {source: annotations|predictions, model}, exclude "
    "{slice|tag, radius, model?, neighbors} (docs/selection.md)."
)


class RecipeSerializer(serializers.Serializer[dict[str, Any]]):
    pool = ItemSetSerializer(
        required=False,
        help_text="What to pick from (a slice, its version, a query); the "
        "whole dataset if left out.",
    )
    strategies = serializers.ListField(
        child=serializers.DictField(help_text=STRATEGY_HELP), help_text=STRATEGY_HELP
    )
    weights = serializers.DictField(
        required=False,
        help_text="Strategy name: weight >= 0 (1 when left out). Filters (exclude) take none.",
    )
    budget = serializers.IntegerField(
        min_value=1, max_value=MAX_BUDGET, help_text="How many items to select."
    )
    seed = serializers.IntegerField(
        min_value=0, default=0, help_text="Same seed, same recipe, same data: same items."
    )


class SelectionCreateSerializer(RecipeSerializer):
    name = serializers.CharField(max_length=200, help_text="The new slice's name.")
    description = serializers.CharField(required=False, allow_blank=True, default="")


class SliceRefSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()


class SelectionSerializer(serializers.ModelSerializer[Selection]):
    slice = SliceRefSerializer(allow_null=True, read_only=True)
    version = serializers.IntegerField(
        source="version.number",
        allow_null=True,
        default=None,
        read_only=True,
        help_text="The slice's frozen version that goes to labelling (1).",
    )
    job = JobSerializer(allow_null=True, read_only=True)
    status = serializers.SerializerMethodField()

    class Meta:
        model = Selection
        fields = [
            "id",
            "status",
            "slice",
            "version",
            "item_count",
            "recipe",
            "figures",
            "job",
            "created",
        ]

    def get_status(self, selection: Selection) -> str:
        """done (the slice exists), or the job's status."""
        if selection.slice_id is not None:
            return "done"
        return selection.job.status if selection.job is not None else "failed"


class PreviewSerializer(serializers.Serializer[Any]):
    recipe = serializers.DictField()
    item_count = serializers.IntegerField(help_text="How many items the selection would hold.")
    figures = serializers.DictField(help_text="Each strategy's contribution, timings.")
    items = ItemSerializer(many=True, help_text="The first 50 picks, in pick order.")
