"""Slices: named sets of a dataset's items, and the operations that make them (from a
query, from item ids, set operations, samples) or make them dynamic."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from curation import itemsets, selectors, services, slices
from curation.access import dataset_for
from curation.api.common import errors, post_schema, validated
from curation.api.pagination import Cursor
from curation.models import Dataset, Item, Role, Slice
from curation.serializers import (
    ItemSerializer,
    ReferenceIdsSerializer,
    SliceChangedSerializer,
    SliceCombineSerializer,
    SliceCreateSerializer,
    SliceDetailSerializer,
    SliceFromItemsSerializer,
    SliceFromQuerySerializer,
    SliceQuerySerializer,
    SliceResultSerializer,
    SliceSampleSerializer,
    SliceSerializer,
    SliceUpdateSerializer,
)

TAGS = ["slices"]


@extend_schema_view(
    get=extend_schema(
        operation_id="slices_list",
        tags=TAGS,
        summary="List a dataset's slices with their item counts",
        responses={200: SliceSerializer(many=True), **errors(400, 404)},
    )
)
class SliceListView(generics.ListAPIView[Slice]):
    serializer_class = SliceSerializer
    pagination_class = Cursor

    def get_queryset(self) -> QuerySet[Slice]:
        dataset = dataset_for(self.request.user, self.kwargs["dataset_id"], Role.VIEWER)
        return selectors.slices_of(dataset=dataset)

    def paginate_queryset(self, queryset: QuerySet[Slice, Any] | Sequence[Any]) -> list[Any] | None:
        # Count this page's static slices only, each count bounded; dynamic ones stay null.
        page = super().paginate_queryset(queryset)
        selectors.slice_counts_attach(page or [])
        return page

    @extend_schema(
        operation_id="slices_create",
        tags=TAGS,
        summary="Create a slice, optionally with items",
        description="Unknown reference ids refuse the whole call with a 400 listing each one "
        "as `reference_ids[<index>]`.",
        request=SliceCreateSerializer,
        responses={201: SliceSerializer, **errors(400, 403, 404, 409)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        data = validated(SliceCreateSerializer, request.data)
        new, _ = services.slice_create(dataset=dataset, user=request.user, **data)
        new = selectors.slice_detail(dataset=dataset, slice_id=new.pk)
        return Response(SliceSerializer(new).data, status=status.HTTP_201_CREATED)


class SliceDetailView(APIView):
    @extend_schema(
        operation_id="slices_retrieve",
        tags=TAGS,
        summary="Get a slice with its item count",
        description="A dynamic slice's query is evaluated for the count; if it no longer "
        "evaluates (it names a slice since renamed or deleted), `item_count` is null and "
        "`query_error` says why: fix it with PUT .../query, or delete the slice.",
        responses={200: SliceSerializer, **errors(404)},
    )
    def get(self, request: Request, dataset_id: int, slice_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        found = selectors.slice_detail(dataset=dataset, slice_id=slice_id)
        return Response(SliceSerializer(found).data)

    @extend_schema(
        operation_id="slices_update",
        tags=TAGS,
        summary="Rename a slice or change its description",
        request=SliceUpdateSerializer,
        responses={200: SliceSerializer, **errors(400, 403, 404, 409)},
    )
    def patch(self, request: Request, dataset_id: int, slice_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        found = selectors.slice_of(dataset=dataset, slice_id=slice_id)
        data = validated(SliceUpdateSerializer, request.data)
        services.slice_update(slice=found, **data)
        found = selectors.slice_detail(dataset=dataset, slice_id=slice_id)
        return Response(SliceSerializer(found).data)

    @extend_schema(
        operation_id="slices_delete",
        tags=TAGS,
        summary="Delete a slice (its items stay in the dataset)",
        responses={204: None, **errors(403, 404)},
    )
    def delete(self, request: Request, dataset_id: int, slice_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        found = selectors.slice_of(dataset=dataset, slice_id=slice_id)
        services.slice_delete(slice=found)
        return Response(status=status.HTTP_204_NO_CONTENT)


class _SliceChangeView(APIView):
    # POST: add items to a slice or take them out, by reference id; subclasses name the
    # service and document the operation. (No docstring: the schema would take it.)
    service: ClassVar[Callable[..., int]]

    def post(self, request: Request, dataset_id: int, slice_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        found = selectors.slice_of(dataset=dataset, slice_id=slice_id)
        data = validated(ReferenceIdsSerializer, request.data)
        changed = self.service(slice=found, reference_ids=data["reference_ids"])
        # No count here: pipelines append in many chunks, and recounting a large slice
        # after each one would cost more than the append. GET the slice for its count.
        return Response(SliceChangedSerializer({"changed": changed, "slice": found}).data)


@post_schema(
    operation_id="slices_append",
    tags=TAGS,
    summary="Add items to a static slice by reference_id",
    description="Unknown reference ids refuse the whole call with a 400 listing each one. "
    "A dynamic slice's items are its query's matches: appending to one is a 400. The "
    "answer's `slice.item_count` is null (GET the slice for its count).",
    request=ReferenceIdsSerializer,
    responses={200: SliceChangedSerializer, **errors(400, 403, 404)},
)
class SliceAppendView(_SliceChangeView):
    service = staticmethod(services.slice_append)


@post_schema(
    operation_id="slices_remove",
    tags=TAGS,
    summary="Take items out of a static slice by reference_id",
    description="Unknown reference ids refuse the whole call with a 400 listing each one. "
    "Removing from a dynamic slice is a 400. The answer's `slice.item_count` is null.",
    request=ReferenceIdsSerializer,
    responses={200: SliceChangedSerializer, **errors(400, 403, 404)},
)
class SliceRemoveView(_SliceChangeView):
    service = staticmethod(services.slice_remove)


@extend_schema_view(
    get=extend_schema(
        operation_id="slices_items_list",
        tags=TAGS,
        summary="List a slice's items, by id",
        responses={200: ItemSerializer(many=True), **errors(400, 404)},
    )
)
class SliceItemsView(generics.ListAPIView[Item]):
    serializer_class = ItemSerializer
    pagination_class = Cursor

    def get_queryset(self) -> QuerySet[Item]:
        dataset = dataset_for(self.request.user, self.kwargs["dataset_id"], Role.VIEWER)
        found = selectors.slice_of(dataset=dataset, slice_id=self.kwargs["slice_id"])
        return selectors.slice_items(slice=found)


# ------------------------------------------------------------------ operations on slices


def slice_out(slice: Slice) -> dict[str, Any]:
    """A slice as the API shows it, with its item count now (a dynamic one's evaluated)."""
    selectors.slice_counts_attach([slice], dynamic=True)
    return dict(SliceDetailSerializer(slice).data)


def _item_set(dataset: Dataset, data: dict[str, Any] | None, path: str) -> itemsets.ItemSet:
    data = data or {}
    return itemsets.item_set_resolve(
        dataset=dataset,
        slice_id=data.get("slice"),
        version=data.get("version"),
        query=data.get("query") or "",
        path=path,
    )


class _SliceCreateView(APIView):
    # POST: a new slice made by one of curation.slices' services, answered with it and its
    # item count. Subclasses name the input, the service, and the inputs that describe
    # item sets (resolved here, in order). (No docstring: the schema would take it.)
    input_serializer: ClassVar[type[serializers.Serializer[dict[str, Any]]]]
    service: ClassVar[Callable[..., tuple[Slice, int]]]
    item_sets: ClassVar[tuple[str, ...]] = ()

    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        fields = validated(self.input_serializer, request.data)
        for name in self.item_sets:
            fields[name] = _item_set(dataset, fields.get(name), name)
        new, count = self.service(dataset=dataset, user=request.user, **fields)
        return Response(
            {"item_count": count, "slice": slice_out(new)}, status=status.HTTP_201_CREATED
        )


_CREATED = {201: SliceResultSerializer, **errors(400, 403, 404, 409)}


@post_schema(
    operation_id="slices_create_from_query",
    tags=TAGS,
    summary="Create a slice from a query: dynamic (saved query) or static (matches now)",
    request=SliceFromQuerySerializer,
    responses=_CREATED,
)
class SliceFromQueryView(_SliceCreateView):
    input_serializer = SliceFromQuerySerializer
    service = staticmethod(slices.slice_create_from_query)


@post_schema(
    operation_id="slices_create_from_items",
    tags=TAGS,
    summary="Create a static slice from item ids (a search result, a duplicate group)",
    description="Unknown ids refuse the whole call with a 400 listing each one as "
    "`item_ids[<index>]` or `reference_ids[<index>]`.",
    request=SliceFromItemsSerializer,
    responses=_CREATED,
)
class SliceFromItemsView(_SliceCreateView):
    input_serializer = SliceFromItemsSerializer
    service = staticmethod(slices.slice_create_from_items)


@post_schema(
    operation_id="slices_combine",
    tags=TAGS,
    summary="Create a slice from the union, intersection or difference of two item sets",
    description="`left` and `right` each name a slice (optionally one of its versions, "
    "and a query to narrow it) or, with no slice, the whole dataset.",
    request=SliceCombineSerializer,
    responses=_CREATED,
)
class SliceCombineView(_SliceCreateView):
    input_serializer = SliceCombineSerializer
    service = staticmethod(slices.slice_combine)
    item_sets = ("left", "right")


@post_schema(
    operation_id="slices_sample",
    tags=TAGS,
    summary="Create a slice with a reproducible random or stratified sample",
    description="Items are ranked by md5(seed:item id): the same seed over the same items "
    "picks the same sample. Stratified, each stratum gets a share proportional to its "
    "size (largest remainder), so the sample keeps the source's proportions.",
    request=SliceSampleSerializer,
    responses=_CREATED,
)
class SliceSampleView(_SliceCreateView):
    input_serializer = SliceSampleSerializer
    service = staticmethod(slices.slice_sample)
    item_sets = ("source",)


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
        found = selectors.slice_of(dataset=dataset, slice_id=slice_id)
        data = validated(SliceQuerySerializer, request.data)
        updated = slices.slice_query_update(slice=found, **data)
        return Response(slice_out(updated))
