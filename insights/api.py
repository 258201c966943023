"""REST API of insights: embedding scores (uniqueness, representativeness, outliers) and
leaks between splits. Views fetch through insights.selectors and act through services."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from curation.access import dataset_for
from curation.api.common import errors, int_param, validated
from curation.errors import invalid_field
from curation.models import Role
from curation.serializers import JobSerializer
from embeddings import selectors as embedding_selectors
from embeddings.models import EmbeddingModel
from insights import leaks, selectors, uniqueness
from insights.serializers import (
    SORTS,
    LeaksJobSerializer,
    LeaksPageSerializer,
    LeaksRemovedSerializer,
    LeaksRemoveSerializer,
    ScoresJobSerializer,
    ScoresPageSerializer,
)

TAGS = ["insights"]
MAX_OFFSET = 100_000_000


class ScoresView(APIView):
    @extend_schema(
        operation_id="insights_scores_list",
        tags=TAGS,
        summary="Items ranked by uniqueness, representativeness or outlier score",
        parameters=[
            OpenApiParameter("model", str, description="Default: the dataset's default."),
            OpenApiParameter("sort", str, enum=SORTS, description="Default: -uniqueness."),
            OpenApiParameter("offset", int, description="Items to skip."),
            OpenApiParameter("limit", int, description="Items per page, 1 to 500 (50)."),
        ],
        responses={200: ScoresPageSerializer, **errors(400, 404)},
    )
    def get(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        sort = request.query_params.get("sort", "-uniqueness")
        if sort not in SORTS:
            raise invalid_field("sort", f"must be one of {', '.join(SORTS)}")
        offset = int_param(request, "offset", default=0, low=0, high=MAX_OFFSET)
        limit = int_param(request, "limit", default=50, low=1, high=500)
        run = selectors.score_run_for(dataset=dataset, model_name=request.query_params.get("model"))
        rows = selectors.scores_ranked(
            run=run,
            sort=sort.lstrip("-"),
            descending=sort.startswith("-"),
            offset=offset,
            limit=limit + 1,
        )
        body = {
            "run": run,
            "random_weights": run.random_weights,
            "sort": sort,
            "offset": offset,
            "limit": limit,
            "next_offset": offset + limit if len(rows) > limit else None,
            "results": rows[:limit],
        }
        return Response(ScoresPageSerializer(body, context={"request": request}).data)

    @extend_schema(
        operation_id="insights_scores_start",
        tags=TAGS,
        summary="Start the scores job of a model (one HNSW query per item)",
        request=ScoresJobSerializer,
        responses={202: JobSerializer, **errors(400, 403, 404, 507)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        data = validated(ScoresJobSerializer, request.data)
        if data.get("model"):
            model = embedding_selectors.model_named(dataset=dataset, name=data["model"])
        else:
            model = embedding_selectors.default_model(dataset=dataset)
        job = uniqueness.scores_job_start(
            dataset=dataset, user=request.user, model=model, neighbors=data.get("neighbors")
        )
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class LeaksView(APIView):
    @extend_schema(
        operation_id="insights_leaks_report",
        tags=TAGS,
        summary="A leak report: pairs of items across two sides that are the same picture",
        parameters=[
            OpenApiParameter("report", int, description="Default: the newest report."),
            OpenApiParameter("offset", int, description="Pairs to skip."),
            OpenApiParameter("limit", int, description="Pairs per page, 1 to 1000 (100)."),
        ],
        responses={200: LeaksPageSerializer, **errors(400, 404)},
    )
    def get(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        report_id = request.query_params.get("report")
        report = leaks.latest_report(
            dataset=dataset,
            report_id=int_param(request, "report", default=None, low=1) if report_id else None,
        )
        offset = int_param(request, "offset", default=0, low=0, high=MAX_OFFSET)
        limit = int_param(request, "limit", default=100, low=1, high=1000)
        pairs = selectors.leak_pairs(report=report, offset=offset, limit=limit + 1)
        body = {
            "report": report,
            "offset": offset,
            "limit": limit,
            "next_offset": offset + limit if len(pairs) > limit else None,
            "pairs": pairs[:limit],
        }
        return Response(LeaksPageSerializer(body).data)

    @extend_schema(
        operation_id="insights_leaks_start",
        tags=TAGS,
        summary="Start a leak report between two slices or tags (e.g. train and test)",
        description="Pairs are the same item on both sides, equal content hashes, perceptual "
        "hashes within the duplicates job's distance and, with a model of real weights, "
        "embeddings within its cosine distance.",
        request=LeaksJobSerializer,
        responses={202: JobSerializer, **errors(400, 403, 404, 507)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        data = validated(LeaksJobSerializer, request.data)
        model: EmbeddingModel | None
        if data.get("model"):
            model = embedding_selectors.model_named(dataset=dataset, name=data["model"])
        else:
            model = embedding_selectors.default_model_or_none(dataset=dataset)
        job = leaks.leaks_job_start(
            dataset=dataset, user=request.user, a=data["a"], b=data["b"], model=model
        )
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class LeaksRemoveView(APIView):
    @extend_schema(
        operation_id="insights_leaks_remove",
        tags=TAGS,
        summary="Take a report's leaking items out of one side (untag, or remove from the slice)",
        request=LeaksRemoveSerializer,
        responses={200: LeaksRemovedSerializer, **errors(400, 403, 404)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        data = validated(LeaksRemoveSerializer, request.data)
        report = leaks.latest_report(dataset=dataset, report_id=data.get("report"))
        result = leaks.leaks_remove(report=report, side=data["side"])
        return Response(LeaksRemovedSerializer(result).data)
