"""Scenario suites and tests, evaluating a suite against a model, and its history (DRF
views: fetch, check access, call one service or selector)."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from curation.access import dataset_for
from curation.api.common import errors, validated
from curation.api.pagination import Cursor, NewestFirstCursor
from curation.models import Role
from evaluation import scenarios, selectors
from evaluation.models import ScenarioEvaluation, ScenarioSuite
from evaluation.serializers import (
    ScenarioEvaluateSerializer,
    ScenarioEvaluationSerializer,
    ScenarioSuiteCreateSerializer,
    ScenarioSuiteSerializer,
    ScenarioTestCreateSerializer,
    ScenarioTestSerializer,
)

TAGS = ["scenario tests"]


@extend_schema_view(
    get=extend_schema(
        operation_id="scenario_suites_list",
        tags=TAGS,
        summary="List a dataset's scenario suites with their tests",
        responses={200: ScenarioSuiteSerializer(many=True), **errors(400, 404)},
    )
)
class SuiteListView(generics.ListAPIView[ScenarioSuite]):
    serializer_class = ScenarioSuiteSerializer
    pagination_class = Cursor

    def get_queryset(self) -> QuerySet[ScenarioSuite]:
        dataset = dataset_for(self.request.user, self.kwargs["dataset_id"], Role.VIEWER)
        return selectors.suites_of(dataset=dataset)

    @extend_schema(
        operation_id="scenario_suites_create",
        tags=TAGS,
        summary="Create a scenario suite (a named set of tests a model must pass)",
        request=ScenarioSuiteCreateSerializer,
        responses={201: ScenarioSuiteSerializer, **errors(400, 403, 404, 409)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        data = validated(ScenarioSuiteCreateSerializer, request.data)
        suite = scenarios.suite_create(
            dataset=dataset, user=request.user, name=data["name"], description=data["description"]
        )
        return Response(ScenarioSuiteSerializer(suite).data, status=status.HTTP_201_CREATED)


class SuiteDetailView(APIView):
    @extend_schema(
        operation_id="scenario_suites_retrieve",
        tags=TAGS,
        summary="Get a scenario suite with its tests",
        responses={200: ScenarioSuiteSerializer, **errors(404)},
    )
    def get(self, request: Request, dataset_id: int, suite_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        suite = selectors.suite_of(dataset=dataset, suite_id=suite_id)
        return Response(ScenarioSuiteSerializer(suite).data)

    @extend_schema(
        operation_id="scenario_suites_delete",
        tags=TAGS,
        summary="Delete a suite, its tests and its history (the evaluation runs stay)",
        responses={204: None, **errors(403, 404)},
    )
    def delete(self, request: Request, dataset_id: int, suite_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        scenarios.suite_delete(suite=selectors.suite_of(dataset=dataset, suite_id=suite_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SuiteTestListView(APIView):
    @extend_schema(
        operation_id="scenario_tests_create",
        tags=TAGS,
        summary="Add a test to a suite: a metric over a slice, >= a threshold or no worse "
        "than a baseline run by more than delta",
        description="Unknown metric, slice, version or baseline run (a run of another "
        "dataset is unknown), a threshold that is not a number, both or neither of "
        "threshold and baseline, and bad options are a 400 naming the field.",
        request=ScenarioTestCreateSerializer,
        responses={201: ScenarioTestSerializer, **errors(400, 403, 404, 409)},
    )
    def post(self, request: Request, dataset_id: int, suite_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        suite = selectors.suite_of(dataset=dataset, suite_id=suite_id)
        data = validated(ScenarioTestCreateSerializer, request.data)
        test = scenarios.test_create(
            suite=suite,
            name=data["name"],
            metric=data["metric"],
            slice_id=data["slice"],
            version=data["version"],
            query=data["query"],
            threshold=data["threshold"],
            baseline=data["baseline"],
            delta=data["delta"],
            options=data["options"],
        )
        return Response(ScenarioTestSerializer(test).data, status=status.HTTP_201_CREATED)


class SuiteTestDetailView(APIView):
    @extend_schema(
        operation_id="scenario_tests_delete",
        tags=TAGS,
        summary="Delete a test (its past results stay in the history)",
        responses={204: None, **errors(403, 404)},
    )
    def delete(self, request: Request, dataset_id: int, suite_id: int, test_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        suite = selectors.suite_of(dataset=dataset, suite_id=suite_id)
        scenarios.test_delete(test=selectors.suite_test_of(suite=suite, test_id=test_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    get=extend_schema(
        operation_id="scenario_evaluations_list",
        tags=TAGS,
        summary="A suite's history: its evaluations with each test's result, newest first",
        responses={200: ScenarioEvaluationSerializer(many=True), **errors(400, 404)},
    )
)
class SuiteEvaluationListView(generics.ListAPIView[ScenarioEvaluation]):
    serializer_class = ScenarioEvaluationSerializer
    pagination_class = NewestFirstCursor

    def get_queryset(self) -> QuerySet[ScenarioEvaluation]:
        dataset = dataset_for(self.request.user, self.kwargs["dataset_id"], Role.VIEWER)
        suite = selectors.suite_of(dataset=dataset, suite_id=self.kwargs["suite_id"])
        return selectors.suite_evaluations_of(suite=suite)

    @extend_schema(
        operation_id="scenario_evaluations_create",
        tags=TAGS,
        summary="Evaluate the suite for a model (a background job running each test's "
        "evaluation in turn)",
        request=ScenarioEvaluateSerializer,
        responses={202: ScenarioEvaluationSerializer, **errors(400, 403, 404, 429, 507)},
    )
    def post(self, request: Request, dataset_id: int, suite_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        suite = selectors.suite_of(dataset=dataset, suite_id=suite_id)
        data = validated(ScenarioEvaluateSerializer, request.data)
        evaluation = scenarios.suite_evaluate(
            suite=suite, user=request.user, model_id=data["model"]
        )
        body = ScenarioEvaluationSerializer(evaluation).data
        return Response(body, status=status.HTTP_202_ACCEPTED)


class SuiteEvaluationDetailView(APIView):
    @extend_schema(
        operation_id="scenario_evaluations_retrieve",
        tags=TAGS,
        summary="Get one evaluation of a suite with each test's result",
        responses={200: ScenarioEvaluationSerializer, **errors(404)},
    )
    def get(self, request: Request, dataset_id: int, suite_id: int, evaluation_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        suite = selectors.suite_of(dataset=dataset, suite_id=suite_id)
        found = selectors.suite_evaluation_of(suite=suite, evaluation_id=evaluation_id)
        return Response(ScenarioEvaluationSerializer(found).data)
