"""Slices beyond membership: versions, dynamic slices, set operations, samples, record
pages for pipelines, and tagging by query. The services are in curation.slices
and curation.versions."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from curation import itemsets, selectors, slices, versions
from curation.access import dataset_for
from curation.api.common import errors
from curation.errors import InvalidInput, field_error
from curation.export.formats import export_options_clean
from curation.export.jsonl import record_page
from curation.export.sources import export_source
from curation.models import Dataset, GeometryKind, Role, Slice, SliceVersion
from curation.serializers import MAX_REFERENCE_IDS, SliceSerializer, TagSerializer
from curation.storage import MediaUrls

TAGS = ["slices"]
VERSION_TAGS = ["slice versions"]
PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

# -------------------------------------------------------------------------- serializers


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


class SliceQuerySerializer(serializers.Serializer[dict[str, Any]]):
    query = serializers.CharField(allow_blank=True, trim_whitespace=False)
    similarity = SimilarityField(required=False, allow_null=True, default=None)


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


class DiffChangedSerializer(DiffEntrySerializer):
    annotations_changed = serializers.BooleanField()
    metadata_changed = serializers.BooleanField()


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


# ------------------------------------------------------------------------------ helpers


def slice_out(slice: Slice) -> dict[str, Any]:
    """A slice as the API shows it, with its item count now (a dynamic one's evaluated)."""
    selectors.slice_counts_attach([slice], dynamic=True)
    return dict(SliceDetailSerializer(slice).data)


def _slice(dataset: Dataset, slice_id: int) -> Slice:
    return selectors.slice_of(dataset=dataset, slice_id=slice_id)


def _item_set(dataset: Dataset, data: dict[str, Any] | None, path: str) -> itemsets.ItemSet:
    data = data or {}
    return itemsets.item_set_resolve(
        dataset=dataset,
        slice_id=data.get("slice"),
        version=data.get("version"),
        query=data.get("query") or "",
        path=path,
    )


def page_limit(request: Request, default: int = PAGE_SIZE, most: int = MAX_PAGE_SIZE) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= most:
        message = f"must be a whole number from 1 to {most}"
        raise InvalidInput(f"limit: {message}", fields=[field_error("limit", message)])
    return limit


def cursor_encode(after: int) -> str:
    return base64.urlsafe_b64encode(f"after:{after}".encode()).decode().rstrip("=")


def cursor_decode(request: Request) -> int:
    raw = request.query_params.get("cursor")
    if not raw:
        return 0
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        if not text.startswith("after:"):
            raise ValueError
        after = int(text.removeprefix("after:"))
        if after < 0:
            raise ValueError
    except (ValueError, binascii.Error, UnicodeDecodeError):
        message = "is not a cursor from a previous page's next link"
        raise InvalidInput(f"cursor: {message}", fields=[field_error("cursor", message)]) from None
    return after


def records_response(
    request: Request, dataset: Dataset, slice: Slice, version: SliceVersion | None
) -> Response:
    """One page of records with annotations inlined, by item id, and the next page's link."""
    options = export_options_clean(
        dataset=dataset, format="jsonl", predictions=request.query_params.get("predictions")
    )
    source = export_source(dataset=dataset, slice=slice, version=version)
    records, after = record_page(
        source,
        after=cursor_decode(request),
        limit=page_limit(request),
        urls=MediaUrls(request=request),
        model=options["model"],
    )
    next_url = None
    if after is not None:
        next_url = replace_query_param(request.build_absolute_uri(), "cursor", cursor_encode(after))
    return Response({"next": next_url, "results": records})


RECORD_PARAMETERS = [
    OpenApiParameter("cursor", OpenApiTypes.STR, description="From the previous page's `next`."),
    OpenApiParameter("limit", OpenApiTypes.INT, description="Page size, 1 to 1000 (default 100)."),
    OpenApiParameter(
        "predictions", OpenApiTypes.STR, description="A model's name: add its predictions."
    ),
]


# ------------------------------------------------------------------------ slice creation


class SliceFromQueryView(APIView):
    @extend_schema(
        operation_id="slices_create_from_query",
        tags=TAGS,
        summary="Create a slice from a query: dynamic (saved query) or static (matches now)",
        request=SliceFromQuerySerializer,
        responses={201: SliceResultSerializer, **errors(400, 403, 404, 409)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        data = SliceFromQuerySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        new, count = slices.slice_create_from_query(
            dataset=dataset, user=request.user, **data.validated_data
        )
        return Response(
            {"item_count": count, "slice": slice_out(new)}, status=status.HTTP_201_CREATED
        )


class SliceFromItemsView(APIView):
    @extend_schema(
        operation_id="slices_create_from_items",
        tags=TAGS,
        summary="Create a static slice from item ids (a search result, a duplicate group)",
        description="Unknown ids refuse the whole call with a 400 listing each one as "
        "`item_ids[<index>]` or `reference_ids[<index>]`.",
        request=SliceFromItemsSerializer,
        responses={201: SliceResultSerializer, **errors(400, 403, 404, 409)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        data = SliceFromItemsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        new, count = slices.slice_create_from_items(
            dataset=dataset, user=request.user, **data.validated_data
        )
        return Response(
            {"item_count": count, "slice": slice_out(new)}, status=status.HTTP_201_CREATED
        )


class SliceCombineView(APIView):
    @extend_schema(
        operation_id="slices_combine",
        tags=TAGS,
        summary="Create a slice from the union, intersection or difference of two item sets",
        description="`left` and `right` each name a slice (optionally one of its versions, "
        "and a query to narrow it) or, with no slice, the whole dataset.",
        request=SliceCombineSerializer,
        responses={201: SliceResultSerializer, **errors(400, 403, 404, 409)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        data = SliceCombineSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        new, count = slices.slice_combine(
            dataset=dataset,
            user=request.user,
            name=fields["name"],
            description=fields["description"],
            op=fields["op"],
            left=_item_set(dataset, fields["left"], "left"),
            right=_item_set(dataset, fields["right"], "right"),
        )
        return Response(
            {"item_count": count, "slice": slice_out(new)}, status=status.HTTP_201_CREATED
        )


class SliceSampleView(APIView):
    @extend_schema(
        operation_id="slices_sample",
        tags=TAGS,
        summary="Create a slice with a reproducible random or stratified sample",
        description="Items are ranked by md5(seed:item id): the same seed over the same items "
        "picks the same sample. Stratified, each stratum gets a share proportional to its "
        "size (largest remainder), so the sample keeps the source's proportions.",
        request=SliceSampleSerializer,
        responses={201: SliceResultSerializer, **errors(400, 403, 404, 409)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        data = SliceSampleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        new, count = slices.slice_sample(
            dataset=dataset,
            user=request.user,
            name=fields["name"],
            description=fields["description"],
            source=_item_set(dataset, fields.get("source"), "source"),
            size=fields["size"],
            seed=fields["seed"],
            stratify_by=fields["stratify_by"],
        )
        return Response(
            {"item_count": count, "slice": slice_out(new)}, status=status.HTTP_201_CREATED
        )


class SliceQueryView(APIView):
    @extend_schema(
        operation_id="slices_query_update",
        tags=TAGS,
        summary="Set a slice's query: make it dynamic, change its query, or make it static",
        description="A non-blank query (or a similarity condition) makes the slice dynamic "
        "and drops its member rows. A blank query without similarity makes a dynamic slice "
        "static, keeping the items it matched at that moment.",
        request=SliceQuerySerializer,
        responses={200: SliceDetailSerializer, **errors(400, 403, 404)},
    )
    def put(self, request: Request, dataset_id: int, slice_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        found = _slice(dataset, slice_id)
        data = SliceQuerySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        updated = slices.slice_query_update(slice=found, **data.validated_data)
        return Response(slice_out(updated))


class SliceRecordsView(APIView):
    @extend_schema(
        operation_id="slices_records_list",
        tags=TAGS,
        summary="Page through a slice's items now, with annotations inlined, by item id",
        description="Keyset pages by item id: no item is listed twice, even while the slice "
        "changes; items added behind the cursor meanwhile are not seen. For an exact, "
        "unchanging listing page through a version.",
        parameters=RECORD_PARAMETERS,
        responses={200: RecordPageSerializer, **errors(400, 404)},
    )
    def get(self, request: Request, dataset_id: int, slice_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        return records_response(request, dataset, _slice(dataset, slice_id), None)


# ----------------------------------------------------------------------------- versions


class VersionListView(APIView):
    @extend_schema(
        operation_id="slice_versions_list",
        tags=VERSION_TAGS,
        summary="List a slice's versions, oldest first",
        responses={
            200: inline_serializer("VersionList", {"results": VersionSerializer(many=True)}),
            **errors(404),
        },
    )
    def get(self, request: Request, dataset_id: int, slice_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        found = versions.slice_versions(slice=_slice(dataset, slice_id))
        return Response({"results": VersionSerializer(found, many=True).data})

    @extend_schema(
        operation_id="slice_versions_create",
        tags=VERSION_TAGS,
        summary="Freeze the slice: a new numbered version of its items and annotations now",
        description="The version keeps the items, their metadata and their annotations as "
        "they are now; later edits, and deleting items, do not change it.",
        request=VersionCreateSerializer,
        responses={201: VersionSerializer, **errors(400, 403, 404)},
    )
    def post(self, request: Request, dataset_id: int, slice_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        found = _slice(dataset, slice_id)
        data = VersionCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        version = versions.slice_version_create(
            slice=found, user=request.user, **data.validated_data
        )
        return Response(VersionSerializer(version).data, status=status.HTTP_201_CREATED)


class VersionDetailView(APIView):
    @extend_schema(
        operation_id="slice_versions_retrieve",
        tags=VERSION_TAGS,
        summary="Get one version of a slice",
        responses={200: VersionSerializer, **errors(404)},
    )
    def get(self, request: Request, dataset_id: int, slice_id: int, number: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        version = versions.slice_version_of(slice=_slice(dataset, slice_id), number=number)
        return Response(VersionSerializer(version).data)


def _version_param(request: Request, name: str) -> int:
    raw = request.query_params.get(name)
    try:
        number = int(raw) if raw is not None else 0
    except ValueError:
        number = 0
    if number < 1:
        message = "must be a version number (1, 2, ...)"
        raise InvalidInput(f"{name}: {message}", fields=[field_error(name, message)])
    return number


class VersionDiffView(APIView):
    @extend_schema(
        operation_id="slice_versions_diff",
        tags=VERSION_TAGS,
        summary="Compare two versions: items added, removed, and with changed annotations",
        parameters=[
            OpenApiParameter("from", OpenApiTypes.INT, required=True, description="Older."),
            OpenApiParameter("to", OpenApiTypes.INT, required=True, description="Newer."),
            OpenApiParameter(
                "limit", OpenApiTypes.INT, description="Most entries per list (default 1000)."
            ),
        ],
        responses={200: VersionDiffSerializer, **errors(400, 404)},
    )
    def get(self, request: Request, dataset_id: int, slice_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        found = _slice(dataset, slice_id)
        old_number, new_number = _version_param(request, "from"), _version_param(request, "to")
        limit = page_limit(request, default=1000, most=100_000)
        diff = versions.slice_versions_diff(
            old=versions.slice_version_of(slice=found, number=old_number),
            new=versions.slice_version_of(slice=found, number=new_number),
            limit=limit,
        )
        return Response(VersionDiffSerializer(diff).data)


class VersionRestoreView(APIView):
    @extend_schema(
        operation_id="slice_versions_restore",
        tags=VERSION_TAGS,
        summary="Make a version's items the slice's current items (the slice becomes static)",
        description="Items deleted since the version was frozen cannot come back: they are "
        "counted in `missing`. Annotations are not rolled back; the version keeps its own "
        "copy for export.",
        request=None,
        responses={200: RestoreResultSerializer, **errors(403, 404)},
    )
    def post(self, request: Request, dataset_id: int, slice_id: int, number: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        found = _slice(dataset, slice_id)
        version = versions.slice_version_of(slice=found, number=number)
        result = versions.slice_version_restore(slice=found, version=version)
        found.refresh_from_db()
        return Response({**result, "slice": slice_out(found)})


class VersionItemsView(APIView):
    @extend_schema(
        operation_id="slice_versions_items_list",
        tags=VERSION_TAGS,
        summary="Page through a version's items with their frozen annotations, by item id",
        description="Exact: a version never changes, so pages have no gaps or duplicates. "
        "Predictions, when asked for, are the model's current ones.",
        parameters=RECORD_PARAMETERS,
        responses={200: RecordPageSerializer, **errors(400, 404)},
    )
    def get(self, request: Request, dataset_id: int, slice_id: int, number: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        found = _slice(dataset, slice_id)
        version = versions.slice_version_of(slice=found, number=number)
        return records_response(request, dataset, found, version)


# --------------------------------------------------------------------------------- tags


class _TagMatchingView(APIView):
    def change(self, request: Request, dataset_id: int, *, remove: bool) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        data = TagMatchingSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        change = slices.tag_remove_matching if remove else slices.tag_add_matching
        tag, changed = change(dataset=dataset, **data.validated_data)
        tag = selectors.tag_of(dataset=dataset, tag_id=tag.pk)
        return Response({"changed": changed, "tag": TagSerializer(tag).data})


class TagAddMatchingView(_TagMatchingView):
    @extend_schema(
        operation_id="tags_add_matching",
        tags=["tags"],
        summary="Tag every item a query matches, or these item ids (the tag is created)",
        description="Give `query`, `item_ids`, or both (items must satisfy both). A blank "
        "query matches every item.",
        request=TagMatchingSerializer,
        responses={200: TagMatchingResultSerializer, **errors(400, 403, 404)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        return self.change(request, dataset_id, remove=False)


class TagRemoveMatchingView(_TagMatchingView):
    @extend_schema(
        operation_id="tags_remove_matching",
        tags=["tags"],
        summary="Untag every item a query matches, or these item ids",
        request=TagMatchingSerializer,
        responses={200: TagMatchingResultSerializer, **errors(400, 403, 404)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        return self.change(request, dataset_id, remove=True)
