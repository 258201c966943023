"""Slices: named sets of a dataset's items."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from curation import selectors, services
from curation.access import dataset_for
from curation.api.common import Cursor, errors
from curation.models import Item, Role, Slice
from curation.serializers import (
    ItemSerializer,
    ReferenceIdsSerializer,
    SliceChangedSerializer,
    SliceCreateSerializer,
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
        data = SliceCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        new, _ = services.slice_create(dataset=dataset, user=request.user, **data.validated_data)
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
        data = SliceUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.slice_update(slice=found, **data.validated_data)
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
    def change(self, request: Request, dataset_id: int, slice_id: int, *, remove: bool) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        found = selectors.slice_of(dataset=dataset, slice_id=slice_id)
        data = ReferenceIdsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        change = services.slice_remove if remove else services.slice_append
        changed = change(slice=found, reference_ids=data.validated_data["reference_ids"])
        # No count here: pipelines append in many chunks, and recounting a large slice
        # after each one would cost more than the append. GET the slice for its count.
        return Response(SliceChangedSerializer({"changed": changed, "slice": found}).data)


class SliceAppendView(_SliceChangeView):
    @extend_schema(
        operation_id="slices_append",
        tags=TAGS,
        summary="Add items to a static slice by reference_id",
        description="Unknown reference ids refuse the whole call with a 400 listing each one. "
        "A dynamic slice's items are its query's matches: appending to one is a 400. The "
        "answer's `slice.item_count` is null (GET the slice for its count).",
        request=ReferenceIdsSerializer,
        responses={200: SliceChangedSerializer, **errors(400, 403, 404)},
    )
    def post(self, request: Request, dataset_id: int, slice_id: int) -> Response:
        return self.change(request, dataset_id, slice_id, remove=False)


class SliceRemoveView(_SliceChangeView):
    @extend_schema(
        operation_id="slices_remove",
        tags=TAGS,
        summary="Take items out of a static slice by reference_id",
        description="Unknown reference ids refuse the whole call with a 400 listing each one. "
        "Removing from a dynamic slice is a 400. The answer's `slice.item_count` is null.",
        request=ReferenceIdsSerializer,
        responses={200: SliceChangedSerializer, **errors(400, 403, 404)},
    )
    def post(self, request: Request, dataset_id: int, slice_id: int) -> Response:
        return self.change(request, dataset_id, slice_id, remove=True)


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
