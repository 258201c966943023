"""Slice versions: freezing a slice, listing, comparing and restoring its versions. The
services are in curation.slices; a version's record pages are in curation.api.records."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from curation import selectors, versions
from curation.access import dataset_for
from curation.api.common import errors, int_param, validated
from curation.api.slices import slice_out
from curation.models import Role
from curation.serializers import (
    RestoreResultSerializer,
    VersionCreateSerializer,
    VersionDiffSerializer,
    VersionSerializer,
)

VERSION_TAGS = ["slice versions"]


class VersionListView(APIView):
    @extend_schema(
        operation_id="slice_versions_list",
        tags=VERSION_TAGS,
        summary="List a slice's versions, oldest first",
        responses={
            200: inline_serializer("VersionList", {"results": VersionSerializer(many=True)}),
            **errors(404),
        },
    )
    def get(self, request: Request, dataset_id: int, slice_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        found = selectors.slice_of(dataset=dataset, slice_id=slice_id)
        listed = versions.slice_versions(slice=found)
        return Response({"results": VersionSerializer(listed, many=True).data})

    @extend_schema(
        operation_id="slice_versions_create",
        tags=VERSION_TAGS,
        summary="Freeze the slice: a new numbered version of its items and annotations now",
        description="The version keeps the items, their metadata and their annotations as "
        "they are now; later edits, and deleting items, do not change it.",
        request=VersionCreateSerializer,
        responses={201: VersionSerializer, **errors(400, 403, 404)},
    )
    def post(self, request: Request, dataset_id: int, slice_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        found = selectors.slice_of(dataset=dataset, slice_id=slice_id)
        data = validated(VersionCreateSerializer, request.data)
        version = versions.slice_version_create(slice=found, user=request.user, **data)
        return Response(VersionSerializer(version).data, status=status.HTTP_201_CREATED)


class VersionDetailView(APIView):
    @extend_schema(
        operation_id="slice_versions_retrieve",
        tags=VERSION_TAGS,
        summary="Get one version of a slice",
        responses={200: VersionSerializer, **errors(404)},
    )
    def get(self, request: Request, dataset_id: int, slice_id: int, number: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        found = selectors.slice_of(dataset=dataset, slice_id=slice_id)
        version = versions.slice_version_of(slice=found, number=number)
        return Response(VersionSerializer(version).data)


def _version_param(request: Request, name: str) -> int:
    return int_param(
        request, name, default=None, low=1, message="must be a version number (1, 2, ...)"
    )


class VersionDiffView(APIView):
    @extend_schema(
        operation_id="slice_versions_diff",
        tags=VERSION_TAGS,
        summary="Compare two versions: items added, removed, and with changed annotations",
        parameters=[
            OpenApiParameter("from", OpenApiTypes.INT, required=True, description="Older."),
            OpenApiParameter("to", OpenApiTypes.INT, required=True, description="Newer."),
            OpenApiParameter(
                "limit", OpenApiTypes.INT, description="Most entries per list (default 1000)."
            ),
        ],
        responses={200: VersionDiffSerializer, **errors(400, 404)},
    )
    def get(self, request: Request, dataset_id: int, slice_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        found = selectors.slice_of(dataset=dataset, slice_id=slice_id)
        old_number, new_number = _version_param(request, "from"), _version_param(request, "to")
        limit = int_param(request, "limit", default=1000, low=1, high=100_000)
        diff = versions.slice_versions_diff(
            old=versions.slice_version_of(slice=found, number=old_number),
            new=versions.slice_version_of(slice=found, number=new_number),
            limit=limit,
        )
        return Response(VersionDiffSerializer(diff).data)


class VersionRestoreView(APIView):
    @extend_schema(
        operation_id="slice_versions_restore",
        tags=VERSION_TAGS,
        summary="Make a version's items the slice's current items (the slice becomes static)",
        description="Items deleted since the version was frozen cannot come back: they are "
        "counted in `missing`. Annotations are not rolled back; the version keeps its own "
        "copy for export.",
        request=None,
        responses={200: RestoreResultSerializer, **errors(403, 404)},
    )
    def post(self, request: Request, dataset_id: int, slice_id: int, number: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        found = selectors.slice_of(dataset=dataset, slice_id=slice_id)
        version = versions.slice_version_of(slice=found, number=number)
        result = versions.slice_version_restore(slice=found, version=version)
        found.refresh_from_db()
        return Response({**result, "slice": slice_out(found)})
