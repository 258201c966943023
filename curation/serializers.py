"""Input and output serializers of the REST API. No business logic here: services decide.

Longer than 600 lines, for a reason: this is the API's contract in one place, declarations
only (no logic), grouped by the resource they describe; the views import what they use.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import tzinfo
from typing import Any, TypeVar

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import ISO_8601, serializers
from rest_framework.fields import SkipField
from rest_framework.settings import api_settings

from curation import slices
from curation.fetch import server_paths_hidden
from curation.models import (
    Annotation,
    ApiToken,
    Dataset,
    GeometryKind,
    Item,
    Job,
    Model,
    Prediction,
    Role,
    Slice,
    SliceVersion,
    Tag,
)
from curation.storage import MediaLinks

MAX_REFERENCE_IDS = 100_000

_Instance = TypeVar("_Instance")

# ------------------------------------------------------------------------------- errors


class ErrorFieldSerializer(serializers.Serializer[dict[str, Any]]):
    path = serializers.CharField(help_text="Where the problem is, e.g. items[3].geometry.width")
    message = serializers.CharField()


class ErrorDetailSerializer(serializers.Serializer[dict[str, Any]]):
    code = serializers.CharField(help_text="Machine-readable, e.g. invalid, not_found, conflict")
    message = serializers.CharField()
    # The API's field name hides a Field attribute in the stubs only: DRF's metaclass moves
    # declared fields off the class.
    fields = ErrorFieldSerializer(many=True)  # type: ignore[assignment]


class ErrorSerializer(serializers.Serializer[dict[str, Any]]):
    """The one error format of the API."""

    error = ErrorDetailSerializer()


# ------------------------------------------------------------------------------- tokens


class TokenSerializer(serializers.ModelSerializer[ApiToken]):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created", "last_used"]


class TokenCreatedSerializer(TokenSerializer):
    secret = serializers.CharField(help_text="The token itself. Shown only in this response.")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "secret"]


class TokenCreateSerializer(serializers.Serializer[dict[str, Any]]):
    name = serializers.CharField(max_length=200)


# ----------------------------------------------------------------------------- datasets


class DatasetSerializer(serializers.ModelSerializer[Dataset]):
    owner = serializers.CharField(source="owner.username", read_only=True)
    role = serializers.ChoiceField(
        source="user_role", choices=Role.choices, read_only=True, help_text="Your role on it."
    )
    item_count = serializers.IntegerField(
        read_only=True,
        help_text="Items in the dataset: exact up to 100,000, past that the database's "
        "estimate (see item_count_exact).",
    )
    item_count_exact = serializers.BooleanField(
        read_only=True, help_text="Whether item_count is an exact count or an estimate."
    )

    class Meta:
        model = Dataset
        fields = [
            "id",
            "name",
            "description",
            "owner",
            "role",
            "item_count",
            "item_count_exact",
            "created",
            "updated",
        ]


class DatasetCreateSerializer(serializers.Serializer[dict[str, Any]]):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")


class DatasetUpdateSerializer(serializers.Serializer[dict[str, Any]]):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)


# ------------------------------------------------------------------------------ members


class MemberSerializer(serializers.Serializer[dict[str, Any]]):
    user_id = serializers.IntegerField()
    username = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.choices)
    is_owner = serializers.BooleanField()
    created = serializers.DateTimeField()


class MemberSetSerializer(serializers.Serializer[dict[str, Any]]):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)


class MemberRoleSerializer(serializers.Serializer[dict[str, Any]]):
    role = serializers.ChoiceField(choices=Role.choices)


# --------------------------------------------------------------------- shapes and items


class AnnotationSerializer(serializers.ModelSerializer[Annotation]):
    id = serializers.CharField(
        source="annotation_id", help_text="The client's id for the annotation."
    )
    pk = serializers.IntegerField(
        read_only=True,
        help_text="The server's number for the annotation: PATCH and DELETE "
        "`.../annotations/{pk}` address it.",
    )
    reference_id = serializers.CharField(source="item.reference_id")
    geometry = serializers.JSONField()
    metadata = serializers.JSONField()
    version = serializers.IntegerField(
        read_only=True,
        help_text="Goes up by one with every change; send it back with a change, and a "
        "stale one is refused (409).",
    )

    class Meta:
        model = Annotation
        fields = [
            "id",
            "pk",
            "reference_id",
            "kind",
            "label",
            "geometry",
            "metadata",
            "version",
            "created",
            "updated",
        ]


class PredictionSerializer(serializers.ModelSerializer[Prediction]):
    id = serializers.CharField(
        source="prediction_id", help_text="The client's id for the prediction."
    )
    model = serializers.CharField(source="model.name")
    model_id = serializers.IntegerField()
    geometry = serializers.JSONField()
    metadata = serializers.JSONField()

    class Meta:
        model = Prediction
        fields = [
            "id",
            "model",
            "model_id",
            "kind",
            "label",
            "confidence",
            "geometry",
            "metadata",
            "created",
            "updated",
        ]


class HidesServerPaths(serializers.Serializer[_Instance]):
    """Members see server paths relative to the import root; staff users see them whole.

    Without a request in the context (a serializer used outside a view) paths are hidden.
    """

    server_path_fields: tuple[str, ...] = ()

    def to_representation(self, instance: Any) -> Any:
        return self.server_paths_hide(super().to_representation(instance))

    def server_paths_hide(self, data: Any) -> Any:
        request = self.context.get("request")
        if not getattr(getattr(request, "user", None), "is_staff", False):
            for name in self.server_path_fields:
                if name in data:
                    data[name] = server_paths_hidden(data[name])
        return data


class QualitySerializer(serializers.Serializer[Item]):
    """An item's image quality signals (curation.quality), read from its columns."""

    brightness = serializers.FloatField(
        source="quality_brightness", allow_null=True, help_text="Mean luma, 0 (black) to 255."
    )
    contrast = serializers.FloatField(
        source="quality_contrast", allow_null=True, help_text="Standard deviation of luma."
    )
    saturation = serializers.FloatField(
        source="quality_saturation", allow_null=True, help_text="Mean HSV saturation, 0-255."
    )
    blur = serializers.FloatField(
        source="quality_blur",
        allow_null=True,
        help_text="Sharpness: variance of the Laplacian at 256 px; lower is blurrier.",
    )
    entropy = serializers.FloatField(
        source="quality_entropy", allow_null=True, help_text="Luma histogram entropy, 0-8 bits."
    )
    aspect = serializers.FloatField(
        source="quality_aspect", allow_null=True, help_text="Width / height as shown."
    )
    uniform = serializers.BooleanField(
        source="quality_uniform", allow_null=True, help_text="Near-uniform or blank."
    )


class ItemSerializer(HidesServerPaths[Item], serializers.ModelSerializer[Item]):
    server_path_fields = ("source_uri",)

    metadata = serializers.JSONField()
    media_url = serializers.SerializerMethodField(
        help_text="The image, through the authenticated media view; null without media."
    )
    thumbnail_url = serializers.SerializerMethodField()
    quality = QualitySerializer(
        source="*",
        read_only=True,
        help_text="Image quality signals (docs/insights.md); each null until computed, "
        "at ingest or by the quality job.",
    )

    class Meta:
        model = Item
        fields = [
            "id",
            "reference_id",
            "metadata",
            "width",
            "height",
            "sha256",
            "byte_size",
            "source_uri",
            "media_url",
            "thumbnail_url",
            "quality",
            "created",
            "updated",
        ]

    def get_media_url(self, item: Item) -> str | None:
        return self._media_links().url(item, "original")

    def get_thumbnail_url(self, item: Item) -> str | None:
        return self._media_links().url(item, "thumbnail")

    def _media_links(self) -> MediaLinks:
        # One per serializer: a list's items share their child serializer, so the media
        # view's URL is reversed once per response, not twice per item.
        links: MediaLinks | None = getattr(self, "_links", None)
        if links is None:
            links = self._links = MediaLinks(self.context.get("request"))
        return links

    def _zone(self) -> tzinfo | None:
        """The zone DRF writes datetimes in, for this response; None: not ISO 8601 text."""
        if not hasattr(self, "_output_zone"):
            iso = str(api_settings.DATETIME_FORMAT).lower() == ISO_8601 and settings.USE_TZ
            self._output_zone = timezone.get_current_timezone() if iso else None
        return self._output_zone

    def to_representation(self, instance: Item) -> dict[str, Any]:
        """What DRF's generic path gives (the declared fields above, which the schema
        shows), made directly for the fields in ITEM_FIELDS_DIRECT.

        Items are the bulk of the API's answers (lists of up to 1000, search hits, slice
        pages), and DRF's field-by-field walk (building the fields per serializer, then a
        get_attribute and a to_representation per field and item) cost most of a list's
        CPU. A field without a direct maker (a subclass's) takes the generic path.
        tests/test_api_serialization.py checks that both give the same answer.
        """
        data: dict[str, Any] = {}
        for name in self.Meta.fields:
            make = ITEM_FIELDS_DIRECT.get(name)
            if make is not None:
                data[name] = make(self, instance)
                continue
            field = self.fields[name]
            try:
                attribute = field.get_attribute(instance)
            except SkipField:
                continue
            data[name] = None if attribute is None else field.to_representation(attribute)
        hidden: dict[str, Any] = self.server_paths_hide(data)
        return hidden


_DATETIME = serializers.DateTimeField()  # DRF's own output for datetimes (format, zone)


def _datetime(serializer: ItemSerializer, value: Any) -> Any:
    """DRF's ISO 8601 text of an aware datetime in the current zone, which DRF looks up
    for every value (a context-local read, a fifth of a list's CPU): here once per
    serializer, so once per response. Anything else goes to DRF's own field."""
    if value is None:
        return None
    zone = serializer._zone()
    if zone is None or value.tzinfo is None:
        return _DATETIME.to_representation(value)
    text: str = value.astimezone(zone).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


ITEM_FIELDS_DIRECT: dict[str, Callable[[ItemSerializer, Item], Any]] = {
    "id": lambda s, item: item.pk,
    "reference_id": lambda s, item: item.reference_id,
    "metadata": lambda s, item: item.metadata,
    "width": lambda s, item: item.width,
    "height": lambda s, item: item.height,
    "sha256": lambda s, item: item.sha256,
    "byte_size": lambda s, item: item.byte_size,
    "source_uri": lambda s, item: item.source_uri,
    "media_url": lambda s, item: s.get_media_url(item),
    "thumbnail_url": lambda s, item: s.get_thumbnail_url(item),
    "quality": lambda s, item: {
        "brightness": _float(item.quality_brightness),
        "contrast": _float(item.quality_contrast),
        "saturation": _float(item.quality_saturation),
        "blur": _float(item.quality_blur),
        "entropy": _float(item.quality_entropy),
        "aspect": _float(item.quality_aspect),
        "uniform": item.quality_uniform,
    },
    "created": lambda s, item: _datetime(s, item.created),
    "updated": lambda s, item: _datetime(s, item.updated),
}


class ItemDetailSerializer(ItemSerializer):
    tags = serializers.ListField(source="tag_names", child=serializers.CharField())
    annotations = AnnotationSerializer(source="annotation_list", many=True)
    predictions = PredictionSerializer(
        source="prediction_list",
        many=True,
        allow_null=True,
        help_text="Every model's predictions with ?include=predictions, else null.",
    )

    class Meta(ItemSerializer.Meta):
        fields = [*ItemSerializer.Meta.fields, "tags", "annotations", "predictions"]


# Rows of the bulk endpoints are validated by curation.bulk (fast, with per-row paths);
# these serializers only describe them in the schema.


class ShapeRowSerializer(serializers.Serializer[dict[str, Any]]):
    id = serializers.CharField(
        required=False,
        help_text="Your id for the shape; re-uploading the same id updates it. "
        "Without one, an id is derived from the content, so identical re-uploads are no-ops.",
    )
    kind = serializers.ChoiceField(choices=GeometryKind.choices, default=GeometryKind.BOX)
    # The API's field name hides a Field attribute in the stubs only: DRF's metaclass moves
    # declared fields off the class.
    label = serializers.CharField()  # type: ignore[assignment]
    geometry = serializers.JSONField(
        help_text="box: {x, y, width, height}; polygon/line: {vertices: [[x, y], ...]}; "
        "keypoints: {keypoints: [{x, y, visible, name?}], skeleton?}; "
        "segmentation: {rle: {size: [h, w], counts}}; category: {}",
    )
    metadata = serializers.JSONField(required=False)


class AnnotationCreateSerializer(ShapeRowSerializer):
    geometry = serializers.JSONField(
        required=False,
        help_text="As in the bulk rows (box: {x, y, width, height}; polygon/line: "
        "{vertices: [[x, y], ...]}; ...); leave it out for a category.",
    )


class AnnotationChangeSerializer(serializers.Serializer[dict[str, Any]]):
    version = serializers.IntegerField(
        min_value=1,
        max_value=2**31 - 1,
        help_text="The version you read; if the annotation has changed since, nothing is "
        "written and the answer is 409 with the `current` annotation.",
    )
    # The API's field name hides a Field attribute in the stubs only: DRF's metaclass moves
    # declared fields off the class.
    label = serializers.CharField(required=False)  # type: ignore[assignment]
    geometry = serializers.JSONField(required=False, help_text="Replaces the geometry.")
    metadata = serializers.JSONField(required=False, help_text="Replaces the metadata.")


class AnnotationConflictSerializer(ErrorSerializer):
    current = AnnotationSerializer(help_text="The annotation as it is now.")


class AnnotationRowSerializer(ShapeRowSerializer):
    reference_id = serializers.CharField(help_text="The item the annotation belongs to.")


class PredictionRowSerializer(AnnotationRowSerializer):
    confidence = serializers.FloatField(min_value=0, max_value=1)


class ItemPredictionRowSerializer(ShapeRowSerializer):
    model = serializers.CharField(help_text="Model name; created if it does not exist.")
    confidence = serializers.FloatField(min_value=0, max_value=1)


class ItemRowSerializer(serializers.Serializer[dict[str, Any]]):
    reference_id = serializers.CharField(help_text="Upsert key, unique per dataset.")
    metadata = serializers.JSONField(required=False, help_text="Replaces the stored metadata.")
    annotations = ShapeRowSerializer(many=True, required=False)
    predictions = ItemPredictionRowSerializer(many=True, required=False)


class _RowsField(serializers.ListField):
    """A list of JSON objects, checked only for its length; curation.bulk checks the rows."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(child=serializers.DictField(), **kwargs)

    def to_internal_value(self, data: Any) -> list[dict[str, Any]]:
        if not isinstance(data, list):
            self.fail("not_a_list", input_type=type(data).__name__)
        limit = settings.NUCLEUS_BULK_MAX_ROWS
        if len(data) > limit:
            raise serializers.ValidationError(
                f"has {len(data)} rows; send at most {limit} per request"
            )
        # Rows stay as they are: curation.bulk reports each bad row with its index and path.
        return data


@extend_schema_field(ItemRowSerializer(many=True))
class ItemRowsField(_RowsField):
    pass


@extend_schema_field(AnnotationRowSerializer(many=True))
class AnnotationRowsField(_RowsField):
    pass


@extend_schema_field(PredictionRowSerializer(many=True))
class PredictionRowsField(_RowsField):
    pass


class ItemsBulkSerializer(serializers.Serializer[dict[str, Any]]):
    items = ItemRowsField()


class AnnotationsBulkSerializer(serializers.Serializer[dict[str, Any]]):
    annotations = AnnotationRowsField()


class PredictionsBulkSerializer(serializers.Serializer[dict[str, Any]]):
    predictions = PredictionRowsField()


class ItemsUpsertResultSerializer(serializers.Serializer[dict[str, Any]]):
    items_created = serializers.IntegerField()
    items_updated = serializers.IntegerField()
    items_unchanged = serializers.IntegerField()
    annotations_written = serializers.IntegerField(help_text="Annotations inserted or changed.")
    predictions_written = serializers.IntegerField(help_text="Predictions inserted or changed.")
    error_count = serializers.IntegerField()


class ShapesWrittenSerializer(serializers.Serializer[dict[str, Any]]):
    received = serializers.IntegerField()
    written = serializers.IntegerField(
        help_text="Rows inserted or changed; 0 on an identical re-upload."
    )


class ReferenceIdsSerializer(serializers.Serializer[dict[str, Any]]):
    reference_ids = serializers.ListField(
        child=serializers.CharField(max_length=512, trim_whitespace=False),
        max_length=MAX_REFERENCE_IDS,
    )


class AnnotationIdsSerializer(serializers.Serializer[dict[str, Any]]):
    ids = serializers.ListField(
        child=serializers.CharField(max_length=512, trim_whitespace=False),
        max_length=MAX_REFERENCE_IDS,
        help_text="Client ids of the annotations.",
    )


class DeletedSerializer(serializers.Serializer[dict[str, Any]]):
    deleted = serializers.IntegerField()
    missing = serializers.ListField(
        child=serializers.CharField(), help_text="Ids that were not found (e.g. already deleted)."
    )


# ------------------------------------------------------------------------------- models


class ModelSerializer(serializers.ModelSerializer[Model]):
    metadata = serializers.JSONField()
    prediction_count = serializers.IntegerField(
        read_only=True,
        help_text="The model's predictions: exact up to 100,000, past that the database's "
        "estimate (see prediction_count_exact).",
    )
    prediction_count_exact = serializers.BooleanField(
        read_only=True, help_text="Whether prediction_count is an exact count or an estimate."
    )

    class Meta:
        model = Model
        fields = [
            "id",
            "name",
            "description",
            "metadata",
            "prediction_count",
            "prediction_count_exact",
            "created",
        ]


class ModelCreateSerializer(serializers.Serializer[dict[str, Any]]):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    # NUL and lone surrogates never get here: the API's parsers refuse them (curation.storable).
    metadata = serializers.DictField(required=False, default=dict)


# ------------------------------------------------------------------------------- slices


class SliceSerializer(serializers.ModelSerializer[Slice]):
    created_by = serializers.CharField(
        source="created_by.username", read_only=True, allow_null=True
    )
    item_count = serializers.IntegerField(
        read_only=True,
        allow_null=True,
        help_text="Items in the slice: exact up to 100,000, past that an estimate (see "
        "item_count_exact). Null for a dynamic slice in listings (see its detail), in "
        "append/remove answers, and when a dynamic slice's query no longer evaluates.",
    )
    item_count_exact = serializers.BooleanField(
        read_only=True,
        allow_null=True,
        help_text="Whether item_count is an exact count or an estimate; null with it.",
    )
    query_error = serializers.CharField(
        read_only=True,
        allow_null=True,
        help_text="Why a dynamic slice's query no longer evaluates (e.g. it names a slice "
        "since deleted); null when it does, or when it was not evaluated.",
    )
    is_dynamic = serializers.BooleanField(read_only=True)

    class Meta:
        model = Slice
        fields = [
            "id",
            "name",
            "description",
            "created_by",
            "item_count",
            "item_count_exact",
            "query_error",
            "query",
            "similarity",
            "is_dynamic",
            "created",
            "updated",
        ]
        read_only_fields = ["query", "similarity"]


class SliceCreateSerializer(serializers.Serializer[dict[str, Any]]):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    reference_ids = serializers.ListField(
        child=serializers.CharField(max_length=512, trim_whitespace=False),
        required=False,
        default=list,
        max_length=MAX_REFERENCE_IDS,
    )


class SliceUpdateSerializer(serializers.Serializer[dict[str, Any]]):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)


class SliceChangedSerializer(serializers.Serializer[dict[str, Any]]):
    changed = serializers.IntegerField(help_text="Items added (append) or removed (remove).")
    slice = SliceSerializer()


class SliceDetailSerializer(SliceSerializer):
    """A slice with what makes it dynamic (its saved query and similarity condition)."""

    query = serializers.CharField(
        allow_blank=True, help_text="A dynamic slice's query; blank for a static slice."
    )
    similarity = serializers.JSONField(
        allow_null=True, help_text="A dynamic slice's similarity condition, or null."
    )
    is_dynamic = serializers.BooleanField(read_only=True)

    class Meta(SliceSerializer.Meta):
        fields = [*SliceSerializer.Meta.fields, "query", "similarity", "is_dynamic"]


class SliceResultSerializer(serializers.Serializer[dict[str, Any]]):
    item_count = serializers.IntegerField(
        help_text="Items the new slice got (0 for a dynamic slice: see slice.item_count)."
    )
    slice = SliceDetailSerializer()


class _ItemIdsField(serializers.ListField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            child=serializers.IntegerField(min_value=1),
            max_length=MAX_REFERENCE_IDS,
            **kwargs,
        )


class SimilarityField(serializers.JSONField):
    """{reference_id | text, model?, limit? (1-1000, default 100), min_score?}."""


class SliceFromQuerySerializer(serializers.Serializer[dict[str, Any]]):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    query = serializers.CharField(
        allow_blank=True, trim_whitespace=False, help_text="Query language text."
    )
    similarity = SimilarityField(
        required=False,
        allow_null=True,
        default=None,
        help_text='Optional: {"reference_id": ..., or "text": ..., "model"?, "limit"?, '
        '"min_score"?}: keep only the `limit` items most like it.',
    )
    dynamic = serializers.BooleanField(
        default=True,
        help_text="true: save the query, evaluated on every read; false: a static slice "
        "of what matches now.",
    )


class SliceFromItemsSerializer(serializers.Serializer[dict[str, Any]]):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    item_ids = _ItemIdsField(
        required=False, default=list, help_text="Item ids, e.g. a search result's."
    )
    reference_ids = serializers.ListField(
        child=serializers.CharField(max_length=512, trim_whitespace=False),
        required=False,
        default=list,
        max_length=MAX_REFERENCE_IDS,
    )


class ItemSetSerializer(serializers.Serializer[dict[str, Any]]):
    slice = serializers.IntegerField(required=False, help_text="A slice's id (else the dataset).")
    version = serializers.IntegerField(
        required=False, min_value=1, help_text="That slice's version (its items still present)."
    )
    query = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        trim_whitespace=False,
        help_text="Narrow to the items this query matches.",
    )


class SliceCombineSerializer(serializers.Serializer[dict[str, Any]]):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    op = serializers.ChoiceField(choices=slices.SET_OPERATIONS)
    left = ItemSetSerializer()
    right = ItemSetSerializer()


class SliceSampleSerializer(serializers.Serializer[dict[str, Any]]):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    # The API's field name hides a Field attribute in the stubs only: DRF's metaclass moves
    # declared fields off the class.
    source = ItemSetSerializer(  # type: ignore[assignment]
        required=False, help_text="Where to sample from; the whole dataset if left out."
    )
    size = serializers.IntegerField(min_value=1, max_value=slices.MAX_SAMPLE_SIZE)
    seed = serializers.IntegerField(
        min_value=0, default=0, help_text="Same seed, same items: samples are reproducible."
    )
    stratify_by = serializers.CharField(
        required=False,
        allow_null=True,
        default=None,
        help_text="`label` (each item's most frequent label) or `metadata.<key>`.",
    )


class QueryWarningSerializer(serializers.Serializer[dict[str, Any]]):
    message = serializers.CharField()
    offset = serializers.IntegerField(help_text="0-based offset of the name in the query.")
    end_offset = serializers.IntegerField()
    suggestion = serializers.CharField(
        allow_null=True, help_text="The closest name the dataset has, if any is close."
    )


class QueryCheckSerializer(serializers.Serializer[dict[str, Any]]):
    warnings = QueryWarningSerializer(many=True)


class SliceQuerySerializer(serializers.Serializer[dict[str, Any]]):
    query = serializers.CharField(allow_blank=True, trim_whitespace=False)
    similarity = SimilarityField(required=False, allow_null=True, default=None)


# ------------------------------------------------------------------------ slice versions


class VersionSerializer(serializers.ModelSerializer[SliceVersion]):
    created_by = serializers.CharField(
        source="created_by.username", read_only=True, allow_null=True
    )
    similarity = serializers.JSONField(allow_null=True)
    slice = serializers.IntegerField(source="slice_id")

    class Meta:
        model = SliceVersion
        fields = [
            "number",
            "slice",
            "note",
            "query",
            "similarity",
            "item_count",
            "annotation_count",
            "created_by",
            "created",
        ]


class VersionCreateSerializer(serializers.Serializer[dict[str, Any]]):
    note = serializers.CharField(required=False, allow_blank=True, default="")


class DiffEntrySerializer(serializers.Serializer[dict[str, Any]]):
    item_id = serializers.IntegerField()
    reference_id = serializers.CharField()


class CorrectionBySerializer(serializers.Serializer[dict[str, Any]]):
    change_id = serializers.IntegerField()
    action = serializers.CharField()
    user = serializers.CharField(allow_null=True)
    source = serializers.CharField()  # type: ignore[assignment]
    at = serializers.DateTimeField()


class CorrectionSerializer(serializers.Serializer[dict[str, Any]]):
    annotation_id = serializers.CharField()
    change = serializers.ChoiceField(choices=["added", "removed", "changed"])
    fields = serializers.ListField(  # type: ignore[assignment]
        child=serializers.CharField(),
        help_text="For `changed`: which of kind, label, geometry, metadata.",
    )
    before = serializers.JSONField(allow_null=True)
    after = serializers.JSONField(allow_null=True)
    by = CorrectionBySerializer(
        many=True, help_text="The recorded changes between the two versions, oldest first."
    )


class DiffChangedSerializer(DiffEntrySerializer):
    annotations_changed = serializers.BooleanField()
    metadata_changed = serializers.BooleanField()
    annotations = CorrectionSerializer(
        many=True,
        required=False,
        help_text="Where annotations changed: each annotation added, removed or changed, "
        "with who changed it (annotation history).",
    )


class DiffCountsSerializer(serializers.Serializer[dict[str, Any]]):
    added = serializers.IntegerField()
    removed = serializers.IntegerField()
    changed = serializers.IntegerField()


class VersionDiffSerializer(serializers.Serializer[dict[str, Any]]):
    from_version = serializers.IntegerField()
    to_version = serializers.IntegerField()
    counts = DiffCountsSerializer()
    added = DiffEntrySerializer(many=True)
    removed = DiffEntrySerializer(many=True)
    changed = DiffChangedSerializer(many=True)
    truncated = serializers.BooleanField(help_text="Whether a list holds fewer than its count.")


class RestoreResultSerializer(serializers.Serializer[dict[str, Any]]):
    added = serializers.IntegerField()
    removed = serializers.IntegerField()
    missing = serializers.IntegerField(
        help_text="Items of the version deleted from the dataset since; they cannot return."
    )
    item_count = serializers.IntegerField()
    slice = SliceDetailSerializer()


# ------------------------------------------------------------------------- record pages


class RecordShapeSerializer(serializers.Serializer[dict[str, Any]]):
    id = serializers.CharField(help_text="The client's id for the annotation.")
    kind = serializers.ChoiceField(choices=GeometryKind.choices)
    # The API's field name hides a Field attribute in the stubs only: DRF's metaclass moves
    # declared fields off the class.
    label = serializers.CharField()  # type: ignore[assignment]
    geometry = serializers.JSONField()
    metadata = serializers.JSONField()


class RecordPredictionSerializer(RecordShapeSerializer):
    confidence = serializers.FloatField()


class RecordSerializer(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField(help_text="The item's id.")
    reference_id = serializers.CharField()
    width = serializers.IntegerField(allow_null=True)
    height = serializers.IntegerField(allow_null=True)
    metadata = serializers.JSONField()
    annotations = RecordShapeSerializer(many=True)
    predictions = RecordPredictionSerializer(
        many=True, required=False, help_text="Only with ?predictions=<model>."
    )
    media_url = serializers.CharField(
        allow_null=True, help_text="Signed; works without credentials until it expires."
    )


class RecordPageSerializer(serializers.Serializer[dict[str, Any]]):
    next = serializers.URLField(allow_null=True, help_text="The next page; null on the last.")
    results = RecordSerializer(many=True)


# --------------------------------------------------------------------------------- tags


class TagSerializer(serializers.ModelSerializer[Tag]):
    item_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Tag
        fields = ["id", "name", "item_count", "created"]


class TagItemsSerializer(ReferenceIdsSerializer):
    name = serializers.CharField(max_length=200)


class TagChangedSerializer(serializers.Serializer[dict[str, Any]]):
    changed = serializers.IntegerField(
        help_text="Items that gained (add) or lost (remove) the tag."
    )
    tag = TagSerializer()


class TagMatchingSerializer(serializers.Serializer[dict[str, Any]]):
    name = serializers.CharField(max_length=200)
    query = serializers.CharField(
        required=False,
        allow_blank=True,
        allow_null=True,
        default=None,
        trim_whitespace=False,
        help_text="Items this query matches (blank: all items).",
    )
    item_ids = _ItemIdsField(required=False, allow_null=True, default=None)


class TagMatchingResultSerializer(serializers.Serializer[dict[str, Any]]):
    changed = serializers.IntegerField(help_text="Items that gained (add) or lost (remove) it.")
    tag = TagSerializer()


# --------------------------------------------------------------------------------- jobs


class JobErrorSerializer(serializers.Serializer[dict[str, Any]]):
    index = serializers.IntegerField(required=False, allow_null=True)
    reference_id = serializers.CharField(required=False, allow_null=True)
    path = serializers.CharField(required=False, allow_blank=True)
    message = serializers.CharField()


class JobProgressSerializer(serializers.Serializer[dict[str, Any]]):
    done = serializers.IntegerField(source="progress_done")
    total = serializers.IntegerField(source="progress_total", allow_null=True)


class JobSerializer(HidesServerPaths[Job], serializers.ModelSerializer[Job]):
    server_path_fields = ("errors", "message", "params", "result")

    created_by = serializers.CharField(
        source="created_by.username", read_only=True, allow_null=True
    )
    progress = JobProgressSerializer(source="*")
    # The API's field name hides a Field attribute in the stubs only: DRF's metaclass moves
    # declared fields off the class.
    errors = serializers.ListField(  # type: ignore[assignment]
        child=serializers.DictField(),
        help_text=f"The first {settings.NUCLEUS_JOB_ERRORS_KEPT} errors.",
    )
    params = serializers.JSONField()
    result = serializers.JSONField()

    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "dataset",
            "status",
            "progress",
            "error_count",
            "errors",
            "message",
            "params",
            "result",
            "attempts",
            "created_by",
            "created",
            "started",
            "finished",
        ]


# ------------------------------------------------------------------------------- ingest


class IngestSerializer(serializers.Serializer[dict[str, Any]]):
    # The API's field name hides a Field attribute in the stubs only: DRF's metaclass moves
    # declared fields off the class.
    source = serializers.DictField(  # type: ignore[assignment]
        help_text='What to ingest, e.g. {"type": "manifest", "path": "..."}; see docs/api.md.'
    )


class IngestUploadSerializer(serializers.Serializer[dict[str, Any]]):
    file = serializers.FileField(help_text="A JSONL manifest or a COCO JSON file.")
    type = serializers.ChoiceField(choices=["manifest", "coco"])
    images_root = serializers.CharField(
        required=False,
        help_text="Where relative image paths in the file point: a folder under an import "
        "root, or an http(s)/s3 URL prefix.",
    )
