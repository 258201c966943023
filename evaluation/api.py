"""Evaluation runs and their matches (DRF views: fetch, check access, call one service
or selector)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from curation.access import dataset_for
from curation.api.common import errors, validated
from curation.api.pagination import Cursor, NewestFirstCursor
from curation.errors import invalid_field
from curation.models import Role
from curation.params import int_value
from evaluation import selectors, services
from evaluation.compare import compare_runs
from evaluation.models import ErrorType, EvaluationMatch, EvaluationRun, Outcome
from evaluation.serializers import (
    EvaluationCreateSerializer,
    EvaluationMatchSerializer,
    EvaluationRunListSerializer,
    EvaluationRunSerializer,
)

TAGS = ["evaluations"]


@extend_schema_view(
    get=extend_schema(
        operation_id="evaluations_list",
        tags=TAGS,
        summary="List a dataset's evaluation runs, newest first",
        responses={200: EvaluationRunListSerializer(many=True), **errors(400, 404)},
    )
)
class EvaluationListView(generics.ListAPIView[EvaluationRun]):
    serializer_class = EvaluationRunListSerializer
    pagination_class = NewestFirstCursor

    def get_queryset(self) -> QuerySet[EvaluationRun]:
        dataset = dataset_for(self.request.user, self.kwargs["dataset_id"], Role.VIEWER)
        return selectors.runs_of(dataset=dataset)

    @extend_schema(
        operation_id="evaluations_create",
        tags=TAGS,
        summary="Start an evaluation run of a model (a background job)",
        description="Scores the model's predictions against the ground truth of the "
        "dataset, a slice, or a slice's frozen version: boxes (task detection) or polygons "
        "and masks (segmentation) by the COCO protocol, categories (classification) by "
        "accuracy, precision, recall and F1. Unknown task, model, "
        "slice or version, bad options, or a label mapping naming labels that exist "
        "nowhere are a 400 naming the field; a name already taken is a 409.",
        request=EvaluationCreateSerializer,
        responses={202: EvaluationRunSerializer, **errors(400, 403, 404, 409, 429, 507)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        data = validated(EvaluationCreateSerializer, request.data)
        run = services.evaluation_create(
            dataset=dataset,
            user=request.user,
            name=data["name"],
            model_id=data["model"],
            slice_id=data["slice"],
            version=data["version"],
            query=data["query"],
            options=data["options"],
            task=data["task"],
        )
        return Response(EvaluationRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class EvaluationDetailView(APIView):
    @extend_schema(
        operation_id="evaluations_retrieve",
        tags=TAGS,
        summary="Get an evaluation run with its metrics",
        responses={200: EvaluationRunSerializer, **errors(404)},
    )
    def get(self, request: Request, dataset_id: int, run_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        run = selectors.run_of(dataset=dataset, run_id=run_id)
        return Response(EvaluationRunSerializer(run).data)

    @extend_schema(
        operation_id="evaluations_delete",
        tags=TAGS,
        summary="Delete an evaluation run and its matches (cancelling it if it runs)",
        responses={204: None, **errors(403, 404)},
    )
    def delete(self, request: Request, dataset_id: int, run_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        run = selectors.run_of(dataset=dataset, run_id=run_id)
        services.evaluation_delete(run=run)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    get=extend_schema(
        operation_id="evaluations_matches",
        tags=TAGS,
        summary="List a run's matches: each object's outcome at the operating point",
        parameters=[
            OpenApiParameter("outcome", OpenApiTypes.STR, enum=[o.value for o in Outcome]),
            OpenApiParameter("label", OpenApiTypes.STR),
            OpenApiParameter("error_type", OpenApiTypes.STR, enum=[e.value for e in ErrorType]),
        ],
        responses={200: EvaluationMatchSerializer(many=True), **errors(400, 404)},
    )
)
class EvaluationMatchListView(generics.ListAPIView[EvaluationMatch]):
    serializer_class = EvaluationMatchSerializer
    pagination_class = Cursor

    def get_queryset(self) -> QuerySet[EvaluationMatch]:
        dataset = dataset_for(self.request.user, self.kwargs["dataset_id"], Role.VIEWER)
        run = selectors.run_of(dataset=dataset, run_id=self.kwargs["run_id"])
        outcome = self.request.query_params.get("outcome")
        if outcome is not None and outcome not in Outcome.values:
            raise invalid_field("outcome", f"must be one of {', '.join(Outcome.values)}")
        label: Any = self.request.query_params.get("label")
        error_type = self.request.query_params.get("error_type")
        if error_type is not None and error_type not in ErrorType.values:
            raise invalid_field("error_type", f"must be one of {', '.join(ErrorType.values)}")
        return selectors.matches_of(run=run, outcome=outcome, label=label, error_type=error_type)


class EvaluationCompareView(APIView):
    @extend_schema(
        operation_id="evaluations_compare",
        tags=TAGS,
        summary="Compare two finished runs of the dataset: metric deltas and items",
        description="Each summary metric (the 12 COCO numbers, precision, recall, F1, "
        "TP, FP, FN at the operating point) and each class's numbers for run a and run b "
        "with their delta (b - a; null where either is undefined), the TIDE error types' "
        "counts and dAP, and the items right in one run and wrong in the other (no FP and "
        "no FN), each with its query for the grid. A run that is not a finished run of "
        "this dataset is a 400 naming `a` or `b`; runs of different tasks a 400 naming `b`.",
        parameters=[
            OpenApiParameter("a", OpenApiTypes.INT, required=True),
            OpenApiParameter("b", OpenApiTypes.INT, required=True),
        ],
        responses={200: OpenApiTypes.OBJECT, **errors(400, 404)},
    )
    def get(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        a = int_value(request.query_params.get("a"), "a", low=1)
        b = int_value(request.query_params.get("b"), "b", low=1)
        return Response(compare_runs(dataset=dataset, a_id=a, b_id=b))
