"""Items and their annotations."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from curation import selectors, services, vocabulary
from curation.access import dataset_for
from curation.annotations import annotation_create
from curation.api.common import api_change, errors, source_of, validated
from curation.api.pagination import Cursor, SortedCursor
from curation.bulk import write as bulk
from curation.errors import invalid_field
from curation.models import Dataset, Item, Role
from curation.paging import SortOrder
from curation.query import sort_expression
from curation.serializers import (
    AnnotationCreateSerializer,
    AnnotationIdsSerializer,
    AnnotationsBulkSerializer,
    AnnotationSerializer,
    DeletedSerializer,
    ErrorSerializer,
    ItemDetailSerializer,
    ItemsBulkSerializer,
    ItemSerializer,
    ItemsUpsertResultSerializer,
    QueryCheckSerializer,
    ReferenceIdsSerializer,
    ShapesWrittenSerializer,
)

TAGS = ["items"]
ANNOTATION_TAGS = ["annotations"]
INCLUDES = ("predictions",)

ITEM_FILTERS_HELP = """
Filter with query parameters; every one given applies (AND):

- `metadata.<key>[__<op>]=<value>`: `<key>` may be dotted for nested objects. Operators:
  `eq` (default), `ne`, `gt`, `gte`, `lt`, `lte`, `in` (comma-separated values),
  `exists` (`true`/`false`). Values are typed: `true`, `false`, `null`, numbers (which
  compare numerically and also match the same text stored as a string), `"quoted"` text
  is always a string. Example: `?metadata.weather=rain&metadata.speed__gt=10`.
- `reference_id` (repeatable: any of them), `tag` (repeatable: all of them), `slice` (id).

An unknown parameter or operator is a 400 naming the parameter.
"""

ITEM_FILTER_PARAMETERS = [
    OpenApiParameter("reference_id", OpenApiTypes.STR, many=True, description="Any of these."),
    OpenApiParameter(
        "tag", OpenApiTypes.STR, many=True, description="Items with all of these tags."
    ),
    OpenApiParameter("slice", OpenApiTypes.INT, description="Items in this slice."),
    OpenApiParameter("limit", OpenApiTypes.INT, description="Page size, 1 to 1000 (default 100)."),
]

SORT_PARAMETERS = [
    OpenApiParameter(
        "sort",
        OpenApiTypes.STR,
        description="List by a value of the query language instead of by id: a count "
        "(`annotations.car`), `width * height`, `metadata.<key>`, "
        "`predictions[<model>].confidence`, a registered score (`eval[<run>].fp`). Items "
        "without a value come last; each result gets `sort_value`. See "
        "docs/query-language.md, Sorting by a value.",
    ),
    OpenApiParameter(
        "order", OpenApiTypes.STR, enum=["asc", "desc"], description="With `sort`: asc (default)."
    ),
]


def sort_order_of(request: Request, dataset: Dataset) -> SortOrder | None:
    """The `sort` and `order` parameters (400 naming the one that is wrong); None: by id."""
    order = request.query_params.get("order", "asc")
    if order not in ("asc", "desc"):
        raise invalid_field("order", f"must be asc or desc, not {order!r}.")
    text = request.query_params.get("sort", "").strip()
    if not text:
        return None
    return SortOrder(sort_expression(text, dataset=dataset), descending=order == "desc")


def json_value(value: Any) -> Any:
    """A sort value as JSON: numbers as numbers, dates as ISO text."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


@extend_schema_view(
    get=extend_schema(
        operation_id="items_list",
        tags=TAGS,
        summary="List a dataset's items, filtered, by id or sorted by a value",
        description=ITEM_FILTERS_HELP,
        parameters=ITEM_FILTER_PARAMETERS + SORT_PARAMETERS,
        responses={200: ItemSerializer(many=True), **errors(400, 404)},
    )
)
class ItemListView(generics.ListAPIView[Item]):
    serializer_class = ItemSerializer
    pagination_class = Cursor

    def get_queryset(self) -> QuerySet[Item]:
        return selectors.items_of(
            dataset=self.dataset,
            params=self.request.query_params,
            extra_params=("sort", "order"),
        )

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # Checked once per request: the sort reads it, and so does get_queryset.
        self.dataset = dataset = dataset_for(request.user, self.kwargs["dataset_id"], Role.VIEWER)
        order = sort_order_of(request, dataset)
        if order is None:
            return super().list(request, *args, **kwargs)
        paginator = SortedCursor()
        page = paginator.sorted_page(self.get_queryset(), request, order)
        rows = ItemSerializer(page.items, many=True, context=self.get_serializer_context()).data
        for row, item in zip(rows, page.items, strict=True):
            row["sort_value"] = json_value(getattr(item, "sort_value", None))
        return paginator.sorted_response(list(rows))


class QueryCheckView(APIView):
    @extend_schema(
        operation_id="query_check",
        tags=TAGS,
        summary="Check a query: its error, or warnings about names the dataset lacks",
        description="A query that does not parse or compile is a 400 exactly as the item "
        "list would give (the field `query` with line, column, offsets and what was "
        "expected). A valid query gets `warnings`: each label, metadata key or tag it names "
        "that the dataset does not have (an unknown label counts 0, an unknown tag matches "
        "nothing), with the closest name the dataset has. See docs/query-language.md.",
        parameters=[
            OpenApiParameter("query", OpenApiTypes.STR, required=True, description="The query.")
        ],
        responses={200: QueryCheckSerializer, **errors(400, 404)},
    )
    def get(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        text = request.query_params.get("query")
        if text is None:
            raise invalid_field("query", "is required")
        found = vocabulary.query_check(text, dataset=dataset)
        return Response(QueryCheckSerializer({"warnings": [w.as_dict() for w in found]}).data)


class ItemsBulkView(APIView):
    @extend_schema(
        operation_id="items_bulk_upsert",
        tags=TAGS,
        summary="Create or update items by reference_id, with annotations and predictions",
        description="All rows or none: one bad row is a 400 listing every bad row by "
        "`items[<index>].<field>`, and nothing is written. Re-sending the same rows "
        "changes nothing. Items without media get it through ingest.",
        request=ItemsBulkSerializer,
        responses={200: ItemsUpsertResultSerializer, **errors(400, 403, 404)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        data = validated(ItemsBulkSerializer, request.data)
        with api_change(request):
            result = bulk.items_upsert(dataset=dataset, rows=data["items"])
        return Response(ItemsUpsertResultSerializer(result.as_dict()).data)


class ItemsDeleteView(APIView):
    @extend_schema(
        operation_id="items_bulk_delete",
        tags=TAGS,
        summary="Delete items by reference_id",
        description="Reference ids that are not items are listed in `missing`, not refused, "
        "so a retried delete succeeds.",
        request=ReferenceIdsSerializer,
        responses={200: DeletedSerializer, **errors(400, 403, 404)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        data = validated(ReferenceIdsSerializer, request.data)
        with api_change(request):
            deleted, missing = services.items_delete(
                dataset=dataset, reference_ids=data["reference_ids"]
            )
        return Response(DeletedSerializer({"deleted": deleted, "missing": missing}).data)


def _includes(request: Request) -> set[str]:
    raw = request.query_params.get("include", "")
    names = {name.strip() for name in raw.split(",") if name.strip()}
    unknown = names - set(INCLUDES)
    if unknown:
        message = f"unknown {', '.join(sorted(unknown))}; can include {', '.join(INCLUDES)}"
        raise invalid_field("include", message)
    return names


class ItemDetailView(APIView):
    @extend_schema(
        operation_id="items_retrieve",
        tags=TAGS,
        summary="Get an item with its tags and annotations (and predictions on request)",
        parameters=[
            OpenApiParameter(
                "include", OpenApiTypes.STR, description="`predictions` to add every model's."
            )
        ],
        responses={200: ItemDetailSerializer, **errors(400, 404)},
    )
    def get(self, request: Request, dataset_id: int, item_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        includes = _includes(request)
        item = selectors.item_detail(
            dataset=dataset, item_id=item_id, include_predictions="predictions" in includes
        )
        return Response(ItemDetailSerializer(item, context={"request": request}).data)

    @extend_schema(
        operation_id="items_delete",
        tags=TAGS,
        summary="Delete an item with its annotations and predictions",
        responses={204: None, **errors(403, 404)},
    )
    def delete(self, request: Request, dataset_id: int, item_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        item = selectors.item_of(dataset=dataset, item_id=item_id)
        with api_change(request):
            services.item_delete(item=item)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ItemAnnotationsView(APIView):
    @extend_schema(
        operation_id="items_annotations_list",
        tags=ANNOTATION_TAGS,
        summary="List an item's annotations",
        responses={
            200: inline_serializer("AnnotationList", {"results": AnnotationSerializer(many=True)}),
            **errors(404),
        },
    )
    def get(self, request: Request, dataset_id: int, item_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        item = selectors.item_of(dataset=dataset, item_id=item_id)
        annotations = selectors.item_annotations(item=item)
        return Response({"results": AnnotationSerializer(annotations, many=True).data})

    @extend_schema(
        operation_id="items_annotations_create",
        tags=ANNOTATION_TAGS,
        summary="Add one annotation to the item",
        description="Checked as a bulk row is (a field that is wrong is a 400 naming it). "
        "Idempotent by `id`: without one, the id is derived from the content; sending the "
        "same annotation again answers 200 with the stored one, and the same `id` with "
        "different content is a 409 naming `id`. Change it later with PATCH "
        "`.../annotations/{pk}` and its `version`.",
        request=AnnotationCreateSerializer,
        responses={
            201: AnnotationSerializer,
            200: AnnotationSerializer,
            409: OpenApiResponse(
                ErrorSerializer, description="Another annotation of the dataset has this id."
            ),
            **errors(400, 403, 404),
        },
    )
    def post(self, request: Request, dataset_id: int, item_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        item = selectors.item_of(dataset=dataset, item_id=item_id)
        data = validated(AnnotationCreateSerializer, request.data)
        annotation, created = annotation_create(
            item=item,
            kind=data["kind"],
            label=data["label"],
            geometry=data.get("geometry"),
            metadata=data.get("metadata"),
            annotation_id=data.get("id"),
            user=request.user,
            source=source_of(request),
        )
        return Response(
            AnnotationSerializer(annotation).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class AnnotationsBulkView(APIView):
    @extend_schema(
        operation_id="annotations_bulk_upsert",
        tags=ANNOTATION_TAGS,
        summary="Create or update annotations (by id) on existing items",
        description="All rows or none: one bad row is a 400 listing every bad row by "
        "`annotations[<index>].<field>`. Rows keep their `id`; rows without one get an id "
        "derived from their content, so re-sending the same rows changes nothing.",
        request=AnnotationsBulkSerializer,
        responses={200: ShapesWrittenSerializer, **errors(400, 403, 404)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        data = validated(AnnotationsBulkSerializer, request.data)
        rows = data["annotations"]
        with api_change(request):
            written = bulk.shapes_upsert(dataset=dataset, rows=rows)
        return Response(ShapesWrittenSerializer({"received": len(rows), "written": written}).data)


class AnnotationsDeleteView(APIView):
    @extend_schema(
        operation_id="annotations_bulk_delete",
        tags=ANNOTATION_TAGS,
        summary="Delete annotations by id",
        request=AnnotationIdsSerializer,
        responses={200: DeletedSerializer, **errors(400, 403, 404)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        data = validated(AnnotationIdsSerializer, request.data)
        with api_change(request):
            deleted, missing = services.annotations_delete(
                dataset=dataset, annotation_ids=data["ids"]
            )
        return Response(DeletedSerializer({"deleted": deleted, "missing": missing}).data)
