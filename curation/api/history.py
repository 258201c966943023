"""Annotation history: an item's, a dataset's (filtered, paged), and reverting a change.
Reads are curation.history.selectors; the revert is curation.history.services."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from curation import selectors
from curation.access import dataset_for
from curation.api.common import errors, int_param
from curation.api.pagination import HistoryCursor
from curation.errors import invalid_field
from curation.history import selectors as history
from curation.history.models import AnnotationChange, ChangeSource
from curation.history.serializers import AnnotationChangeSerializer, HistoryListSerializer
from curation.history.services import annotation_change_revert
from curation.models import Role

TAGS = ["history"]


class ItemHistoryView(APIView):
    @extend_schema(
        operation_id="items_history",
        tags=TAGS,
        summary="An item's annotation changes, newest first",
        description="Each change says who made it, when and through what (`source`, "
        "`job_id`, `entry_id`), with the annotation `before` and `after` it.",
        parameters=[
            OpenApiParameter("limit", OpenApiTypes.INT, description="Most changes (default 200).")
        ],
        responses={200: HistoryListSerializer, **errors(400, 404)},
    )
    def get(self, request: Request, dataset_id: int, item_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        item = selectors.item_of(dataset=dataset, item_id=item_id)
        limit = int_param(request, "limit", default=200, low=1, high=1000, capped=True)
        changes = history.item_history(item=item, limit=limit)
        return Response({"results": AnnotationChangeSerializer(changes, many=True).data})


_FILTERS = [
    OpenApiParameter("user", OpenApiTypes.STR, description="Made by this username."),
    OpenApiParameter(
        "source", OpenApiTypes.STR, enum=ChangeSource.values, description="Made through this."
    ),
    OpenApiParameter("annotation_id", OpenApiTypes.STR, description="Of this annotation."),
    OpenApiParameter("item_id", OpenApiTypes.INT, description="On this item."),
    OpenApiParameter("job_id", OpenApiTypes.INT, description="Made by this ingest job."),
    OpenApiParameter(
        "since",
        OpenApiTypes.INT,
        description="Only changes after this change id: pass the newest id seen to follow "
        "the history.",
    ),
]


@extend_schema_view(
    get=extend_schema(
        operation_id="history_list",
        tags=TAGS,
        summary="A dataset's annotation changes, newest first, filtered",
        parameters=_FILTERS,
        responses={200: AnnotationChangeSerializer(many=True), **errors(400, 404)},
    )
)
class DatasetHistoryView(generics.ListAPIView[AnnotationChange]):
    serializer_class = AnnotationChangeSerializer
    pagination_class = HistoryCursor

    def get_queryset(self) -> QuerySet[AnnotationChange]:
        return self.history().rows

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        paginator = HistoryCursor()
        page = paginator.history_page(self.history(), request)
        return paginator.get_paginated_response(AnnotationChangeSerializer(page, many=True).data)

    def history(self) -> history.HistoryRows:
        dataset = dataset_for(self.request.user, self.kwargs["dataset_id"], Role.VIEWER)
        params = self.request.query_params
        source = params.get("source")
        if source is not None and source not in ChangeSource.values:
            raise invalid_field("source", f"must be one of {', '.join(ChangeSource.values)}")
        optional = {
            name: int_param(self.request, name, default=None, low=0) if name in params else None
            for name in ("item_id", "job_id", "since")
        }
        return history.dataset_history(
            dataset=dataset,
            username=params.get("user"),
            source=source,
            annotation_id=params.get("annotation_id"),
            **optional,
        )


class ChangeRevertView(APIView):
    @extend_schema(
        operation_id="history_revert",
        tags=TAGS,
        summary="Revert a change: the annotation goes back to its state before it",
        description="A creation is undone by deleting the annotation, a change by restoring "
        "its fields, a deletion by re-creating it (same id). Only an annotation's latest "
        "change can be reverted: otherwise, or when its item is gone or its id is taken, "
        "a 409 says why. The revert is itself a change (source `revert`). Needs the "
        "curator role.",
        request=None,
        responses={200: AnnotationChangeSerializer, **errors(403, 404, 409)},
    )
    def post(self, request: Request, dataset_id: int, change_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        change = history.change_of(dataset=dataset, change_id=change_id)
        made = annotation_change_revert(change=change, user=request.user)
        found = history.change_of(dataset=dataset, change_id=made.pk)
        return Response(AnnotationChangeSerializer(found).data)
