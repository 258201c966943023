"""Label-error candidates and model uncertainty over the API (DRF views: fetch, check
access, call one service or selector). See docs/insights.md."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from curation.access import dataset_for
from curation.api.common import errors, int_param, validated
from curation.errors import invalid_field
from curation.models import Role
from insights import label_error_selectors as selectors
from insights.label_error_scan import label_error_scan_create
from insights.models import CandidateType, ItemUncertainty, LabelErrorCandidate, LabelErrorScan
from insights.query import UNCERTAINTY_FIELDS
from insights.uncertainty import uncertainty_start

TAGS = ["insights"]


class ScanSerializer(serializers.ModelSerializer[LabelErrorScan]):
    status = serializers.SerializerMethodField()
    run_name = serializers.CharField(source="run.name", read_only=True)
    model = serializers.CharField(source="run.model.name", read_only=True)

    class Meta:
        model = LabelErrorScan
        fields = [
            "id",
            "run",
            "run_name",
            "model",
            "job",
            "status",
            "counts",
            "created",
            "finished",
        ]

    def get_status(self, scan: LabelErrorScan) -> str | None:
        return scan.job.status if scan.job is not None else None


class ScanCreateSerializer(serializers.Serializer[dict[str, Any]]):
    run = serializers.IntegerField(help_text="A finished evaluation run of the dataset.")
    look = serializers.BooleanField(
        required=False,
        default=True,
        help_text="Also score labels and boxes unlike their look (odd_label, odd_box) from "
        "the stored images (default true). False reads no image: at a million items the "
        "difference between minutes and CPU-hours.",
    )


class CandidateSerializer(serializers.ModelSerializer[LabelErrorCandidate]):
    reference_id = serializers.CharField(source="item.reference_id", read_only=True)
    item_url = serializers.SerializerMethodField()

    class Meta:
        model = LabelErrorCandidate
        fields = [
            "id",
            "type",
            "score",
            "item",
            "reference_id",
            "annotation",
            "prediction",
            "evidence",
            "item_url",
        ]

    def get_item_url(self, c: LabelErrorCandidate) -> str:
        return selectors.item_link(c.item.dataset_id, c)


class UncertaintySerializer(serializers.ModelSerializer[ItemUncertainty]):
    reference_id = serializers.CharField(source="item.reference_id", read_only=True)

    class Meta:
        model = ItemUncertainty
        fields = ["item", "reference_id", *UNCERTAINTY_FIELDS]


class UncertaintyStartSerializer(serializers.Serializer[dict[str, Any]]):
    model = serializers.IntegerField(help_text="A model of the dataset.")


class ScanListView(APIView):
    @extend_schema(
        operation_id="label_error_scans_list",
        tags=TAGS,
        summary="List a dataset's label-error scans, newest first",
        responses={200: ScanSerializer(many=True), **errors(404)},
    )
    def get(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        scans = selectors.scans_of(dataset=dataset).order_by("-id")[:100]
        return Response(ScanSerializer(scans, many=True).data)

    @extend_schema(
        operation_id="label_error_scans_create",
        tags=TAGS,
        summary="Find label-error candidates from a finished evaluation run (a job)",
        request=ScanCreateSerializer,
        responses={202: ScanSerializer, **errors(400, 403, 404, 507)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        data = validated(ScanCreateSerializer, request.data)
        scan = label_error_scan_create(
            dataset=dataset, user=request.user, run_id=data["run"], look=data["look"]
        )
        return Response(ScanSerializer(scan).data, status=status.HTTP_202_ACCEPTED)


class CandidateListView(APIView):
    @extend_schema(
        operation_id="label_errors_list",
        tags=TAGS,
        summary="The label-error candidates of a scan, best first",
        description="The newest finished scan unless `scan` names one. `neighbours` says "
        "whether the neighbour-disagreement signal is on; `look` whether the scan scored "
        "labels and boxes unlike their look (odd_label, odd_box) and why not.",
        parameters=[
            OpenApiParameter("type", OpenApiTypes.STR, enum=[t.value for t in CandidateType]),
            OpenApiParameter("scan", OpenApiTypes.INT),
            OpenApiParameter("limit", OpenApiTypes.INT, description="1 to 1000, default 50"),
        ],
        responses={200: OpenApiTypes.OBJECT, **errors(400, 404)},
    )
    def get(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        limit = int_param(request, "limit", default=50, low=1, high=1000, capped=True)
        scan = selectors.scan_of(dataset=dataset, scan_id=request.query_params.get("scan"))
        rows = selectors.candidates_of(scan=scan, type=request.query_params.get("type"))[:limit]
        return Response(
            {
                "scan": ScanSerializer(scan).data,
                "neighbours": selectors.neighbours_status(dataset=dataset),
                "look": selectors.look_status(scan=scan),
                "results": CandidateSerializer(rows, many=True).data,
            }
        )


class UncertaintyView(APIView):
    @extend_schema(
        operation_id="uncertainty_list",
        tags=TAGS,
        summary="Items by a model's uncertainty, most uncertain first",
        description="`sort` is one of the scores; margin sorts ascending (small margin = "
        "unsure), the others descending.",
        parameters=[
            OpenApiParameter("model", OpenApiTypes.INT, required=True),
            OpenApiParameter("sort", OpenApiTypes.STR, enum=list(UNCERTAINTY_FIELDS)),
            OpenApiParameter("limit", OpenApiTypes.INT, description="1 to 1000, default 50"),
        ],
        responses={200: UncertaintySerializer(many=True), **errors(400, 404)},
    )
    def get(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        limit = int_param(request, "limit", default=50, low=1, high=1000, capped=True)
        sort = request.query_params.get("sort", "entropy_max")
        if sort not in UNCERTAINTY_FIELDS:
            raise invalid_field("sort", f"must be one of {', '.join(UNCERTAINTY_FIELDS)}")
        rows = selectors.uncertainty_of(dataset=dataset, model_id=request.query_params.get("model"))
        order = sort if sort == "margin" else f"-{sort}"
        return Response(
            UncertaintySerializer(rows.order_by(order, "item_id")[:limit], many=True).data
        )

    @extend_schema(
        operation_id="uncertainty_start",
        tags=TAGS,
        summary="Compute a model's uncertainty per item (a job)",
        request=UncertaintyStartSerializer,
        responses={202: OpenApiTypes.OBJECT, **errors(400, 403, 404, 507)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        data = validated(UncertaintyStartSerializer, request.data)
        job = uncertainty_start(dataset=dataset, user=request.user, model_id=data["model"])
        return Response({"job": job.pk, "status": job.status}, status=status.HTTP_202_ACCEPTED)
