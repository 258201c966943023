"""Tags on a dataset's items."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from curation import selectors, services
from curation.access import dataset_for
from curation.api.common import errors
from curation.models import Role
from curation.serializers import TagChangedSerializer, TagItemsSerializer, TagSerializer

TAGS = ["tags"]


class TagListView(APIView):
    @extend_schema(
        operation_id="tags_list",
        tags=TAGS,
        summary="List a dataset's tags with how many items carry each",
        responses={
            200: inline_serializer("TagList", {"results": TagSerializer(many=True)}),
            **errors(404),
        },
    )
    def get(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        tags = selectors.tags_of(dataset=dataset)
        return Response({"results": TagSerializer(tags, many=True).data})


class TagAddView(APIView):
    @extend_schema(
        operation_id="tags_add",
        tags=TAGS,
        summary="Tag items by reference_id (the tag is created if needed)",
        description="Unknown reference ids refuse the whole call with a 400 listing each one.",
        request=TagItemsSerializer,
        responses={200: TagChangedSerializer, **errors(400, 403, 404)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        data = TagItemsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tag, added = services.tag_add(dataset=dataset, **data.validated_data)
        tag = selectors.tag_of(dataset=dataset, tag_id=tag.pk)
        return Response(TagChangedSerializer({"changed": added, "tag": tag}).data)


class TagRemoveView(APIView):
    @extend_schema(
        operation_id="tags_remove",
        tags=TAGS,
        summary="Untag items by reference_id",
        request=TagItemsSerializer,
        responses={200: TagChangedSerializer, **errors(400, 403, 404)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        data = TagItemsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tag, removed = services.tag_remove(dataset=dataset, **data.validated_data)
        tag = selectors.tag_of(dataset=dataset, tag_id=tag.pk)
        return Response(TagChangedSerializer({"changed": removed, "tag": tag}).data)


class TagDetailView(APIView):
    @extend_schema(
        operation_id="tags_delete",
        tags=TAGS,
        summary="Delete a tag from the dataset and all its items",
        responses={204: None, **errors(403, 404)},
    )
    def delete(self, request: Request, dataset_id: int, tag_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        tag = selectors.tag_of(dataset=dataset, tag_id=tag_id)
        services.tag_delete(tag=tag)
        return Response(status=status.HTTP_204_NO_CONTENT)
