"""Input and output serializers of the embeddings API. Services decide; these only shape."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from curation.api.parsers import unstorable_detail
from curation.serializers import ItemSerializer
from curation.storable import Unstorable, json_loads
from embeddings.duplicates import SELECTIONS
from embeddings.models import MAX_INDEXED_DIMENSION, DuplicateGroup, DuplicateRun, EmbeddingModel
from embeddings.pipeline import MODE_ALL, MODE_MISSING
from embeddings.search import DEPTH_MESSAGE, MAX_SEARCH_DEPTH, METADATA_OPS
from embeddings.selectors import VECTOR_COUNT_EXACT_MAX

# ------------------------------------------------------------------------------ models


class EmbeddingModelSerializer(serializers.ModelSerializer[EmbeddingModel]):
    kind = serializers.CharField(
        help_text="open_clip (images and texts) or custom (uploaded vectors)."
    )
    shared = serializers.SerializerMethodField(help_text="An open_clip model all datasets share.")
    weights = serializers.SerializerMethodField(
        help_text="Pretrained tag, checkpoint file name, 'random', or empty for custom models."
    )
    random_weights = serializers.BooleanField(
        help_text="True when the model is randomly initialised: similarity is NOT semantic."
    )
    vector_count = serializers.IntegerField(
        read_only=True,
        default=None,
        allow_null=True,
        help_text="Vectors of this dataset's items under the model; exact up to "
        f"{VECTOR_COUNT_EXACT_MAX}, an estimate beyond (then vector_count_estimated).",
    )
    vector_count_estimated = serializers.BooleanField(read_only=True, default=False)
    is_default = serializers.SerializerMethodField()

    class Meta:
        model = EmbeddingModel
        fields = [
            "id",
            "name",
            "kind",
            "architecture",
            "weights",
            "dimension",
            "random_weights",
            "shared",
            "vector_count",
            "vector_count_estimated",
            "is_default",
            "description",
            "created",
        ]

    def get_shared(self, model: EmbeddingModel) -> bool:
        return model.dataset_id is None

    def get_weights(self, model: EmbeddingModel) -> str:
        # A checkpoint's full server path is nobody's business; its file name is enough.
        return model.weights.rsplit("/", 1)[-1]

    def get_is_default(self, model: EmbeddingModel) -> bool:
        return model.pk == self.context.get("default_model_id")


class CustomModelCreateSerializer(serializers.Serializer[dict[str, Any]]):
    name = serializers.CharField(max_length=200)
    dimension = serializers.IntegerField(min_value=1, max_value=MAX_INDEXED_DIMENSION)
    description = serializers.CharField(required=False, allow_blank=True, default="")


class DefaultModelSerializer(serializers.Serializer[dict[str, Any]]):
    model = serializers.CharField(help_text="Name of the model searches use when none is named.")


class VectorRowSerializer(serializers.Serializer[dict[str, Any]]):
    reference_id = serializers.CharField()
    vector = serializers.ListField(child=serializers.FloatField())


class VectorsUploadSerializer(serializers.Serializer[dict[str, Any]]):
    # Rows are validated by the service, fast and with per-row paths; this only describes them.
    vectors = serializers.ListField(child=serializers.DictField(), allow_empty=False)


class VectorsWrittenSerializer(serializers.Serializer[dict[str, Any]]):
    written = serializers.IntegerField()
    rows = serializers.IntegerField()


class EmbedJobSerializer(serializers.Serializer[dict[str, Any]]):
    model = serializers.CharField(
        required=False, help_text="An open_clip model's name; default: the configured model."
    )
    mode = serializers.ChoiceField(
        choices=[MODE_MISSING, MODE_ALL],
        default=MODE_MISSING,
        help_text="missing: only items without a vector yet; all: re-embed everything.",
    )
    slice = serializers.IntegerField(required=False, help_text="Embed only this slice's items.")


class ProjectionJobSerializer(serializers.Serializer[dict[str, Any]]):
    model = serializers.CharField(
        required=False, help_text="The model's name; default: the dataset's search model."
    )
    method = serializers.ChoiceField(
        choices=["pca", "umap"], default="pca", help_text="pca (fast, linear) or umap."
    )
    sample = serializers.IntegerField(
        min_value=2, max_value=50_000, default=20_000, help_text="Vectors the fit uses."
    )
    seed = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=0)
    n_neighbors = serializers.IntegerField(min_value=2, max_value=200, default=15)
    min_dist = serializers.FloatField(min_value=0.0, max_value=1.0, default=0.1)


# ------------------------------------------------------------------------------ search


class MetadataConditionSerializer(serializers.Serializer[dict[str, Any]]):
    key = serializers.CharField(help_text="A metadata key; dots go into nested objects.")
    op = serializers.ChoiceField(choices=METADATA_OPS, default="eq")
    value = serializers.JSONField(required=False)


class SearchFilterSerializer(serializers.Serializer[dict[str, Any]]):
    query = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="Only items matching this query (docs/query-language.md), e.g. "
        'metadata.weather = "rain" AND annotations.car >= 2.',
    )
    slice = serializers.IntegerField(required=False, help_text="Only items of this slice.")
    tags = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Only items with all these tags."
    )
    metadata = serializers.ListField(
        child=serializers.JSONField(),
        required=False,
        help_text='Conditions on item metadata, all must hold: [{"key": "weather", "op": "eq", '
        f'"value": "rain"}}]; ops: {", ".join(METADATA_OPS)}.',
    )

    def to_internal_value(self, data: Any) -> Any:
        # A misspelt option would otherwise be dropped, and the search run unfiltered.
        if isinstance(data, Mapping):
            unknown = sorted(str(key) for key in data if key not in self.fields)
            if unknown:
                message = f"is not a filter option; use {', '.join(self.fields)}"
                raise serializers.ValidationError({key: [message] for key in unknown})
        return super().to_internal_value(data)


@extend_schema_field(SearchFilterSerializer)
class SearchFilterField(serializers.Field[dict[str, Any], Any, dict[str, Any], Any]):
    """A search filter: a JSON object, or in a form (urlencoded or multipart) the same
    object as a JSON string, so that no form of request loses it."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str):
            try:
                data = json_loads(data)
            except Unstorable as exc:
                raise serializers.ValidationError(unstorable_detail(exc)) from None
            except ValueError:
                raise serializers.ValidationError("must be a JSON object") from None
        if not isinstance(data, Mapping):
            raise serializers.ValidationError("must be a JSON object")
        inner = SearchFilterSerializer(data=data)
        inner.is_valid(raise_exception=True)
        return inner.validated_data


class _SearchSerializer(serializers.Serializer[dict[str, Any]]):
    model = serializers.CharField(required=False, help_text="Default: the dataset's default model.")
    filter = SearchFilterField(required=False)
    offset = serializers.IntegerField(min_value=0, default=0)
    limit = serializers.IntegerField(min_value=1, max_value=1000, default=50)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["offset"] + attrs["limit"] > MAX_SEARCH_DEPTH:
            raise serializers.ValidationError({"offset": DEPTH_MESSAGE})
        return attrs


class ItemSearchSerializer(_SearchSerializer):
    item_id = serializers.IntegerField(required=False)
    reference_id = serializers.CharField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("item_id" in attrs) == ("reference_id" in attrs):
            raise serializers.ValidationError(
                {"item_id": "give item_id or reference_id (one of them)"}
            )
        return super().validate(attrs)


class TextSearchSerializer(_SearchSerializer):
    text = serializers.CharField(max_length=2000, help_text="A prompt, e.g. 'a red bus at night'.")


class VectorSearchSerializer(_SearchSerializer):
    vector = serializers.ListField(child=serializers.FloatField(), allow_empty=False)


class ImageSearchSerializer(_SearchSerializer):
    image = serializers.FileField(help_text="The query image (JPEG, PNG, WebP, ...).")


class SearchModelSerializer(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    dimension = serializers.IntegerField()
    random_weights = serializers.BooleanField()


class SearchHitSerializer(serializers.Serializer[dict[str, Any]]):
    score = serializers.FloatField(help_text="Cosine similarity to the query, 1 = same direction.")
    item = ItemSerializer()


class SearchResultSerializer(serializers.Serializer[dict[str, Any]]):
    model = SearchModelSerializer()
    random_weights = serializers.BooleanField(
        help_text="True when the model has random weights: these results are NOT semantic."
    )
    strategy = serializers.CharField(help_text="exact, hnsw, hnsw-filtered or hnsw-iterative.")
    offset = serializers.IntegerField()
    limit = serializers.IntegerField()
    next_offset = serializers.IntegerField(allow_null=True)
    results = SearchHitSerializer(many=True)


# -------------------------------------------------------------------------- duplicates


class DuplicatesJobSerializer(serializers.Serializer[dict[str, Any]]):
    model = serializers.CharField(
        required=False, help_text="Model for near duplicates; default: the dataset's default."
    )
    threshold = serializers.FloatField(
        required=False, help_text="Cosine similarity for near duplicates; default 0.95."
    )
    neighbors = serializers.IntegerField(required=False, help_text="Neighbours checked per item.")


class DuplicateMemberSerializer(serializers.Serializer[dict[str, Any]]):
    item_id = serializers.IntegerField()
    reference_id = serializers.CharField(source="item.reference_id")
    is_representative = serializers.BooleanField()
    same_hash = serializers.BooleanField()
    similarity = serializers.FloatField(allow_null=True)
    signal = serializers.CharField(help_text="exact, phash (perceptual hash) or embedding.")
    distance = serializers.FloatField(
        help_text="To the representative: 0 for exact, Hamming bits of 256 for phash, "
        "cosine distance for embedding."
    )


class DuplicateGroupSerializer(serializers.ModelSerializer[DuplicateGroup]):
    kind = serializers.CharField(help_text="exact (all members share a content hash) or near.")
    signal = serializers.CharField(
        help_text="What found the group: exact (content hash), phash (perceptual hash) or "
        "embedding (cosine similarity, only with real model weights)."
    )
    distance = serializers.FloatField(
        help_text="Largest distance of a member to the representative, in the signal's unit."
    )
    representative = serializers.SerializerMethodField()
    members = DuplicateMemberSerializer(many=True)

    class Meta:
        model = DuplicateGroup
        fields = ["id", "kind", "signal", "distance", "size", "representative", "members"]

    def get_representative(self, group: DuplicateGroup) -> dict[str, Any]:
        return {
            "item_id": group.representative_id,
            "reference_id": group.representative.reference_id,
        }


class DuplicateRunSerializer(serializers.ModelSerializer[DuplicateRun]):
    model = serializers.CharField(source="model.name", allow_null=True, default=None)

    class Meta:
        model = DuplicateRun
        fields = [
            "id",
            "job",
            "model",
            "threshold",
            "neighbors",
            "hash_distance",
            "embedding_signal",
            "group_count",
            "item_count",
            "finished",
        ]


class DuplicatesPageSerializer(serializers.Serializer[dict[str, Any]]):
    run = DuplicateRunSerializer()
    offset = serializers.IntegerField()
    limit = serializers.IntegerField()
    next_offset = serializers.IntegerField(allow_null=True)
    groups = DuplicateGroupSerializer(many=True)


class DuplicatesApplySerializer(serializers.Serializer[dict[str, Any]]):
    target = serializers.ChoiceField(choices=["tag", "slice"])
    name = serializers.CharField(max_length=200)
    select = serializers.ChoiceField(
        choices=list(SELECTIONS),
        default="extras",
        help_text="extras: all but each group's representative; representatives; members; "
        "keep_one: the whole dataset with one item per group.",
    )
    groups = serializers.ListField(
        child=serializers.IntegerField(), required=False, help_text="Only these groups."
    )


class DuplicatesAppliedSerializer(serializers.Serializer[dict[str, Any]]):
    target = serializers.CharField()
    id = serializers.IntegerField()
    name = serializers.CharField()
    select = serializers.CharField()
    added = serializers.IntegerField()
    run = serializers.IntegerField()
