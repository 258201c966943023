"""Background jobs of a dataset, and starting an ingest job or the quality job."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from curation import selectors
from curation.access import dataset_for
from curation.api.common import errors, validated
from curation.api.pagination import NewestFirstCursor
from curation.api.parsers import FormParser, JSONParser, MultiPartParser
from curation.ingest import services as ingest
from curation.jobs import job_cancel
from curation.models import Job, Role
from curation.quality.jobs import quality_job_start
from curation.serializers import IngestSerializer, IngestUploadSerializer, JobSerializer

TAGS = ["jobs"]


@extend_schema_view(
    get=extend_schema(
        operation_id="jobs_list",
        tags=TAGS,
        summary="List a dataset's jobs, newest first",
        responses={200: JobSerializer(many=True), **errors(400, 404)},
    )
)
class JobListView(generics.ListAPIView[Job]):
    serializer_class = JobSerializer
    pagination_class = NewestFirstCursor

    def get_queryset(self) -> QuerySet[Job]:
        dataset = dataset_for(self.request.user, self.kwargs["dataset_id"], Role.VIEWER)
        return selectors.jobs_of(dataset=dataset)


class JobDetailView(APIView):
    @extend_schema(
        operation_id="jobs_retrieve",
        tags=TAGS,
        summary="Get a job: status, progress, errors and result",
        responses={200: JobSerializer, **errors(404)},
    )
    def get(self, request: Request, dataset_id: int, job_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        job = selectors.job_of(dataset=dataset, job_id=job_id)
        return Response(JobSerializer(job, context={"request": request}).data)


class JobCancelView(APIView):
    @extend_schema(
        operation_id="jobs_cancel",
        tags=TAGS,
        summary="Cancel a queued or running job",
        description="A running job stops at its next checkpoint; what it committed stays. "
        "Cancelling a cancelled job is a no-op; a finished one is a 409.",
        request=None,
        responses={200: JobSerializer, **errors(403, 404, 409)},
    )
    def post(self, request: Request, dataset_id: int, job_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        job = selectors.job_of(dataset=dataset, job_id=job_id)
        job = job_cancel(job=job)
        return Response(JobSerializer(job, context={"request": request}).data)


class IngestView(APIView):
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(
        operation_id="datasets_ingest",
        tags=TAGS,
        summary="Start an ingest job from a folder, a manifest or a COCO file",
        description='Send JSON `{"source": {...}}` naming a folder, manifest or COCO file '
        "under an import root (NUCLEUS_IMPORT_ROOTS), or upload the manifest or COCO file "
        "as multipart form data (`file`, `type`, optional `images_root`). Answers 202 with "
        "the job; follow it at the jobs endpoints.",
        request={
            "application/json": IngestSerializer,
            "multipart/form-data": IngestUploadSerializer,
        },
        responses={202: JobSerializer, **errors(400, 403, 404, 507)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        if request.content_type.startswith("multipart/"):
            fields = validated(IngestUploadSerializer, request.data)
            key = ingest.ingest_store_upload(
                dataset=dataset, filename=fields["file"].name, fileobj=fields["file"]
            )
            source = {"type": fields["type"], "upload_key": key}
            if fields.get("images_root"):
                source["images_root"] = fields["images_root"]
        else:
            data = validated(IngestSerializer, request.data)
            source = data["source"]
        job = ingest.ingest_enqueue(dataset=dataset, user=request.user, source=source)
        return Response(
            JobSerializer(job, context={"request": request}).data, status=status.HTTP_202_ACCEPTED
        )


class QualityJobView(APIView):
    @extend_schema(
        operation_id="datasets_quality",
        tags=TAGS,
        summary="Start the job that computes image quality for items that lack it",
        description="Items ingested before image quality existed have no quality signals; "
        "this job reads their stored images and fills them in (resumable). Ingest computes "
        "them for new items itself. Answers 202 with the job.",
        request=None,
        responses={202: JobSerializer, **errors(403, 404)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        job = quality_job_start(dataset=dataset, user=request.user)
        return Response(
            JobSerializer(job, context={"request": request}).data, status=status.HTTP_202_ACCEPTED
        )
