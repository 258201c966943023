"""Tags on a dataset's items: by reference id, or every item a query matches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from curation import selectors, services, slices
from curation.access import dataset_for
from curation.api.common import errors, post_schema, validated
from curation.models import Role, Tag
from curation.serializers import (
    TagChangedSerializer,
    TagItemsSerializer,
    TagMatchingResultSerializer,
    TagMatchingSerializer,
    TagSerializer,
)

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


class _TagChangeView(APIView):
    # POST: tag or untag items, answered with how many changed and the tag with its count.
    # Subclasses name the input and the service. (No docstring: the schema would take it.)
    input_serializer: ClassVar[type[serializers.Serializer[dict[str, Any]]]]
    service: ClassVar[Callable[..., tuple[Tag, int]]]

    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        tag, changed = self.service(
            dataset=dataset, **validated(self.input_serializer, request.data)
        )
        tag = selectors.tag_of(dataset=dataset, tag_id=tag.pk)
        return Response({"changed": changed, "tag": TagSerializer(tag).data})


@post_schema(
    operation_id="tags_add",
    tags=TAGS,
    summary="Tag items by reference_id (the tag is created if needed)",
    description="Unknown reference ids refuse the whole call with a 400 listing each one.",
    request=TagItemsSerializer,
    responses={200: TagChangedSerializer, **errors(400, 403, 404)},
)
class TagAddView(_TagChangeView):
    input_serializer = TagItemsSerializer
    service = staticmethod(services.tag_add)


@post_schema(
    operation_id="tags_remove",
    tags=TAGS,
    summary="Untag items by reference_id",
    request=TagItemsSerializer,
    responses={200: TagChangedSerializer, **errors(400, 403, 404)},
)
class TagRemoveView(_TagChangeView):
    input_serializer = TagItemsSerializer
    service = staticmethod(services.tag_remove)


@post_schema(
    operation_id="tags_add_matching",
    tags=TAGS,
    summary="Tag every item a query matches, or these item ids (the tag is created)",
    description="Give `query`, `item_ids`, or both (items must satisfy both). A blank "
    "query matches every item.",
    request=TagMatchingSerializer,
    responses={200: TagMatchingResultSerializer, **errors(400, 403, 404)},
)
class TagAddMatchingView(_TagChangeView):
    input_serializer = TagMatchingSerializer
    service = staticmethod(slices.tag_add_matching)


@post_schema(
    operation_id="tags_remove_matching",
    tags=TAGS,
    summary="Untag every item a query matches, or these item ids",
    request=TagMatchingSerializer,
    responses={200: TagMatchingResultSerializer, **errors(400, 403, 404)},
)
class TagRemoveMatchingView(_TagChangeView):
    input_serializer = TagMatchingSerializer
    service = staticmethod(slices.tag_remove_matching)


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
