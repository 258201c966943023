"""Exports for pipelines: streamed downloads, and export jobs that store the file."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.files.storage import default_storage
from django.db.models import QuerySet
from django.http import FileResponse, HttpResponseRedirect, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from curation import itemsets, selectors, services, versions
from curation.access import dataset_for
from curation.api.common import errors, validated
from curation.api.pagination import NewestFirstCursor
from curation.errors import Conflict, NotFound
from curation.export import formats, sources
from curation.export.jobs import export_file_name
from curation.models import Dataset, Job, JobStatus, Role, Slice
from curation.serializers import JobSerializer
from curation.storage import (
    MEDIA_URL_MODES,
    MediaUrls,
    media_presign,
    request_base_url,
    storage_is_s3,
)

TAGS = ["export"]


class FormatIsNotARenderer(DefaultContentNegotiation):
    """Here `?format=` names the export format; DRF would read it as a renderer's name
    (URL_FORMAT_OVERRIDE) and answer 404 for `coco`. Errors still render as JSON."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, str(renderer.media_type)


class ExportParamsSerializer(serializers.Serializer[dict[str, Any]]):
    format = serializers.ChoiceField(choices=formats.FORMATS, default="jsonl")
    predictions = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="A model's name. jsonl: add its predictions to each line; coco_results "
        "(where it is required): export its predictions.",
    )
    url_ttl = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=10,
        max_value=formats.MAX_URL_TTL,
        help_text="Seconds the signed media URLs in the export stay valid.",
    )
    include_media = serializers.BooleanField(
        required=False, default=False, help_text="yolo: put the images in the archive too."
    )
    media_urls = serializers.ChoiceField(
        choices=MEDIA_URL_MODES,
        required=False,
        allow_null=True,
        default=None,
        help_text="signed: expiring URLs that need no credentials; plain: URLs that need "
        "a token and never change. Default: plain for a version (its export is then the "
        "same file every time), signed otherwise or when url_ttl is given.",
    )


class ExportJobCreateSerializer(ExportParamsSerializer):
    slice = serializers.IntegerField(required=False, allow_null=True, default=None)
    version = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1)


EXPORT_PARAMETERS = [
    OpenApiParameter(
        "format",
        OpenApiTypes.STR,
        enum=list(formats.FORMATS),
        description="jsonl (default), coco, yolo, or coco_results (a model's predictions "
        "as a COCO results array; needs `predictions`).",
    ),
    OpenApiParameter(
        "predictions",
        OpenApiTypes.STR,
        description="A model's name. jsonl: each line gets its predictions; coco_results "
        "(required there): the model whose predictions are exported. An unknown model is "
        "a 400 naming this field.",
    ),
    OpenApiParameter(
        "url_ttl",
        OpenApiTypes.INT,
        description="Seconds the signed media URLs stay valid (default NUCLEUS_MEDIA_URL_TTL).",
    ),
    OpenApiParameter(
        "include_media", OpenApiTypes.BOOL, description="yolo only: include the image files."
    ),
    OpenApiParameter(
        "media_urls",
        OpenApiTypes.STR,
        enum=list(MEDIA_URL_MODES),
        description="signed (expiring, no credentials needed) or plain (needs a token, never "
        "changes). Default: plain for a version, signed otherwise or with url_ttl.",
    ),
]

# The file of each format, streamed or downloaded: a COCO file is one JSON object.
EXPORT_FILES: dict[Any, Any] = {
    (200, formats.CONTENT_TYPES["jsonl"]): OpenApiResponse(
        OpenApiTypes.BINARY, description="jsonl: one item per line"
    ),
    (200, formats.CONTENT_TYPES["coco"]): OpenApiResponse(
        {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]},
        description="coco: a COCO detection file (an object); coco_results: a model's "
        "predictions as a COCO results array [{image_id, category_id, bbox, score}]",
    ),
    (200, formats.CONTENT_TYPES["yolo"]): OpenApiResponse(
        OpenApiTypes.BINARY, description="yolo: a tar of labels/, data.yaml, media.csv"
    ),
}
EXPORT_RESPONSES: dict[Any, Any] = {**EXPORT_FILES, **errors(400, 404)}

EXPORT_HELP = (
    "Streams at once and keeps the server's memory flat at any size (keyset batches). "
    "Media URLs inside are signed and expire (url_ttl), or plain (media_urls=plain, the "
    "default for a version). See docs/export.md for the formats."
)


def _options(request: Request, dataset: Dataset) -> dict[str, Any]:
    params = validated(ExportParamsSerializer, request.query_params)
    return formats.export_options_clean(dataset=dataset, **params)


def _stream(
    request: Request, source: sources.ExportSource, options: dict[str, Any]
) -> StreamingHttpResponse:
    mode = formats.export_media_mode(
        source, media_urls=options["media_urls"], url_ttl=options["url_ttl"]
    )
    chunks = formats.export_chunks(
        source,
        format=options["format"],
        urls=MediaUrls(mode=mode, ttl=options["url_ttl"], request=request),
        model=options["model"],
        include_media=options["include_media"],
    )
    response = StreamingHttpResponse(chunks, content_type=formats.CONTENT_TYPES[options["format"]])
    filename = formats.export_filename(source, options["format"])
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"  # the body may hold signed URLs
    return response


class DatasetExportView(APIView):
    content_negotiation_class = FormatIsNotARenderer

    @extend_schema(
        operation_id="datasets_export",
        tags=TAGS,
        summary="Download a whole dataset as JSONL, COCO or YOLO, or a model's predictions "
        "as COCO results (streamed)",
        description=EXPORT_HELP,
        parameters=EXPORT_PARAMETERS,
        responses=EXPORT_RESPONSES,
    )
    def get(self, request: Request, dataset_id: int) -> StreamingHttpResponse:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        options = _options(request, dataset)
        return _stream(request, sources.export_source(dataset=dataset), options)


class SliceExportView(APIView):
    content_negotiation_class = FormatIsNotARenderer

    @extend_schema(
        operation_id="slices_export",
        tags=TAGS,
        summary="Download a slice, or one of its versions, as JSONL, COCO or YOLO (streamed)",
        description=EXPORT_HELP
        + " With `version`, the export is the frozen version: the same file, byte for "
        "byte, whenever it is made and however the data changed since (unless signed "
        "media URLs are asked for).",
        parameters=[
            OpenApiParameter("version", OpenApiTypes.INT, description="A version's number."),
            *EXPORT_PARAMETERS,
        ],
        responses=EXPORT_RESPONSES,
    )
    def get(self, request: Request, dataset_id: int, slice_id: int) -> StreamingHttpResponse:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        found = selectors.slice_of(dataset=dataset, slice_id=slice_id)
        options = _options(request, dataset)
        version = None
        if request.query_params.get("version") not in (None, ""):
            version = versions.slice_version_of(slice=found, number=request.query_params["version"])
        source = sources.export_source(dataset=dataset, slice=found, version=version)
        return _stream(request, source, options)


class ExportJobListView(generics.ListAPIView[Job]):
    serializer_class = JobSerializer
    pagination_class = NewestFirstCursor

    def get_queryset(self) -> QuerySet[Job]:
        dataset = dataset_for(self.request.user, self.kwargs["dataset_id"], Role.VIEWER)
        return selectors.jobs_of(dataset=dataset, kind="export")

    @extend_schema(
        operation_id="exports_list",
        tags=TAGS,
        summary="List a dataset's export jobs, newest first",
        responses={200: JobSerializer(many=True), **errors(400, 404)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="exports_create",
        tags=TAGS,
        summary="Start an export job that writes the file into storage",
        description="For large exports: answers 202 with the job; when it has succeeded, "
        "download the file from /exports/{job_id}/download. Re-running a job rewrites its "
        "one file. Signed media URLs inside expire after url_ttl seconds. Each user may "
        f"have {services.MAX_ACTIVE_EXPORT_JOBS} export jobs queued or running at once; "
        "one more is a 429.",
        request=ExportJobCreateSerializer,
        responses={202: JobSerializer, **errors(400, 404, 429, 507)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        fields = validated(ExportJobCreateSerializer, request.data)
        slice_id, number = fields.pop("slice"), fields.pop("version")
        found: Slice | None = None
        version = None
        if slice_id is not None or number is not None:
            item_set = itemsets.item_set_resolve(
                dataset=dataset, slice_id=slice_id, version=number, path=""
            )
            found, version = item_set.slice, item_set.version
        options = formats.export_options_clean(dataset=dataset, **fields)
        job = services.export_job_queue(
            dataset=dataset,
            user=request.user,
            slice=found,
            version=version,
            base_url=request_base_url(request),
            **options,
        )
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ExportDownloadView(APIView):
    @extend_schema(
        operation_id="exports_download",
        tags=TAGS,
        summary="Download the file an export job wrote",
        description="Local storage streams the file; S3 redirects to a presigned URL.",
        responses={
            **EXPORT_FILES,
            302: OpenApiResponse(description="S3: a presigned URL of the file"),
            **errors(404, 409),
        },
    )
    def get(self, request: Request, dataset_id: int, job_id: int) -> Any:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        job = selectors.job_of(dataset=dataset, job_id=job_id)
        if job.kind != "export":
            raise NotFound("Export not found.")
        if job.status != JobStatus.SUCCEEDED:
            raise Conflict(
                f"Export job {job.pk} is {job.status}; its file is ready when it has succeeded."
            )
        key = str(job.result.get("key", ""))
        if not key or not default_storage.exists(key):
            raise NotFound("The export's file is no longer in storage; start the export again.")
        if storage_is_s3():
            return HttpResponseRedirect(media_presign(key))
        return FileResponse(
            default_storage.open(key, "rb"),
            as_attachment=True,
            filename=export_file_name(job),
            content_type=str(job.result.get("content_type") or "application/octet-stream"),
        )
