"""One annotation: read it, change it, delete it, each change checked against the
version the writer read (curation.annotations)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from curation import selectors
from curation.access import dataset_for
from curation.annotations import AnnotationConflict, annotation_delete, annotation_update
from curation.api.common import errors, int_param, source_of, validated
from curation.errors import error_body
from curation.models import Role
from curation.serializers import (
    AnnotationChangeSerializer,
    AnnotationConflictSerializer,
    AnnotationSerializer,
)

TAGS = ["annotations"]

CONFLICT = OpenApiResponse(
    AnnotationConflictSerializer,
    description="The annotation changed since you read it (its version moved on): nothing "
    "was written; `current` is the annotation as it is now. Send its version to overwrite.",
)


def conflict_response(exc: AnnotationConflict) -> Response:
    """The 409 of a stale write: the API's error, and the annotation as it is now."""
    body = error_body(exc.code, exc.message, exc.fields)
    body["current"] = AnnotationSerializer(exc.current).data
    return Response(body, status=status.HTTP_409_CONFLICT)


class AnnotationDetailView(APIView):
    @extend_schema(
        operation_id="annotations_retrieve",
        tags=TAGS,
        summary="Get one annotation, with its version",
        responses={200: AnnotationSerializer, **errors(404)},
    )
    def get(self, request: Request, dataset_id: int, annotation_pk: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        found = selectors.annotation_of(dataset=dataset, annotation_pk=annotation_pk)
        return Response(AnnotationSerializer(found).data)

    @extend_schema(
        operation_id="annotations_update",
        tags=TAGS,
        summary="Change an annotation's label, geometry or metadata, if it is unchanged "
        "since you read it",
        description="`version` is required: the version you read. The geometry is checked "
        "as in the bulk upload (clipped to the image; a field that is wrong is a 400 naming "
        "it). A change adds one to the version; sending the same values changes nothing.",
        request=AnnotationChangeSerializer,
        responses={200: AnnotationSerializer, 409: CONFLICT, **errors(400, 403, 404)},
    )
    def patch(self, request: Request, dataset_id: int, annotation_pk: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        found = selectors.annotation_of(dataset=dataset, annotation_pk=annotation_pk)
        data = validated(AnnotationChangeSerializer, request.data)
        try:
            changed = annotation_update(
                annotation=found,
                expected_version=data["version"],
                label=data.get("label"),
                geometry=data.get("geometry"),
                metadata=data.get("metadata"),
                user=request.user,
                source=source_of(request),
            )
        except AnnotationConflict as exc:
            return conflict_response(exc)
        return Response(AnnotationSerializer(changed).data)

    @extend_schema(
        operation_id="annotations_delete",
        tags=TAGS,
        summary="Delete an annotation, if it is unchanged since you read it",
        parameters=[
            OpenApiParameter(
                "version",
                OpenApiTypes.INT,
                required=True,
                description="The version you read; a stale one is a 409.",
            )
        ],
        responses={204: None, 409: CONFLICT, **errors(400, 403, 404)},
    )
    def delete(self, request: Request, dataset_id: int, annotation_pk: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        found = selectors.annotation_of(dataset=dataset, annotation_pk=annotation_pk)
        version = int_param(request, "version", default=None, low=1, high=2**31 - 1)
        try:
            annotation_delete(
                annotation=found,
                expected_version=version,
                user=request.user,
                source=source_of(request),
            )
        except AnnotationConflict as exc:
            return conflict_response(exc)
        return Response(status=status.HTTP_204_NO_CONTENT)
