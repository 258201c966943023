"""Models and their predictions."""

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
from curation.api.common import errors, validated
from curation.api.pagination import Cursor
from curation.bulk import write as bulk
from curation.models import Model, Role
from curation.serializers import (
    ModelCreateSerializer,
    ModelSerializer,
    PredictionsBulkSerializer,
    ShapesWrittenSerializer,
)

TAGS = ["models"]


@extend_schema_view(
    get=extend_schema(
        operation_id="models_list",
        tags=TAGS,
        summary="List a dataset's models",
        responses={200: ModelSerializer(many=True), **errors(400, 404)},
    )
)
class ModelListView(generics.ListAPIView[Model]):
    serializer_class = ModelSerializer
    pagination_class = Cursor

    def get_queryset(self) -> QuerySet[Model]:
        dataset = dataset_for(self.request.user, self.kwargs["dataset_id"], Role.VIEWER)
        return selectors.models_of(dataset=dataset)

    def paginate_queryset(self, queryset: QuerySet[Model, Any] | Sequence[Any]) -> list[Any] | None:
        # Count the predictions of this page's models only, each count bounded.
        page = super().paginate_queryset(queryset)
        selectors.model_counts_attach(page or [])
        return page

    @extend_schema(
        operation_id="models_create",
        tags=TAGS,
        summary="Register a model",
        request=ModelCreateSerializer,
        responses={201: ModelSerializer, **errors(400, 403, 404, 409)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        data = validated(ModelCreateSerializer, request.data)
        model = services.model_create(dataset=dataset, **data)
        # A new model has no predictions yet: nothing to count.
        model.prediction_count, model.prediction_count_exact = 0, True  # type: ignore[attr-defined]
        return Response(ModelSerializer(model).data, status=status.HTTP_201_CREATED)


class ModelDetailView(APIView):
    @extend_schema(
        operation_id="models_retrieve",
        tags=TAGS,
        summary="Get a model",
        responses={200: ModelSerializer, **errors(404)},
    )
    def get(self, request: Request, dataset_id: int, model_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        model = selectors.model_detail(dataset=dataset, model_id=model_id)
        return Response(ModelSerializer(model).data)

    @extend_schema(
        operation_id="models_delete",
        tags=TAGS,
        summary="Delete a model and its predictions",
        responses={204: None, **errors(403, 404)},
    )
    def delete(self, request: Request, dataset_id: int, model_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        model = selectors.model_of(dataset=dataset, model_id=model_id)
        services.model_delete(model=model)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PredictionsBulkView(APIView):
    @extend_schema(
        operation_id="predictions_bulk_upsert",
        tags=TAGS,
        summary="Create or update a model's predictions (by id) on existing items",
        description="All rows or none: one bad row is a 400 listing every bad row by "
        "`predictions[<index>].<field>`; `confidence` must be in [0, 1]. Re-sending the "
        "same rows changes nothing.",
        request=PredictionsBulkSerializer,
        responses={200: ShapesWrittenSerializer, **errors(400, 403, 404)},
    )
    def post(self, request: Request, dataset_id: int, model_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        model = selectors.model_of(dataset=dataset, model_id=model_id)
        data = validated(PredictionsBulkSerializer, request.data)
        rows = data["predictions"]
        written = bulk.shapes_upsert(dataset=dataset, rows=rows, model=model)
        return Response(ShapesWrittenSerializer({"received": len(rows), "written": written}).data)
