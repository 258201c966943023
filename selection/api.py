"""REST API of selections: preview a recipe, create its slice (201, or 202 with a job for
a big pool), list and read selections. Views check access and call one service."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from curation.access import dataset_for
from curation.api.common import errors, validated
from curation.errors import NotFound
from curation.models import Role
from selection import selectors, services
from selection.serializers import (
    PreviewSerializer,
    RecipeSerializer,
    SelectionCreateSerializer,
    SelectionSerializer,
)

TAGS = ["selection"]


def _body(request: Request) -> dict[str, Any]:
    return dict(request.data) if isinstance(request.data, dict) else {}


class SelectionListView(APIView):
    @extend_schema(
        operation_id="selections_list",
        tags=TAGS,
        summary="A dataset's selections, newest first, each with its recipe",
        responses={200: SelectionSerializer(many=True), **errors(404)},
    )
    def get(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        found = selectors.selections_of(dataset=dataset)
        return Response(SelectionSerializer(found, many=True).data)

    @extend_schema(
        operation_id="selections_create",
        tags=TAGS,
        summary="Select what to label next: a slice and its frozen version 1 by a recipe",
        description="A pool of at most 20,000 items is selected in the request (201, "
        "`status` done); a bigger one by a job (202, `job`; the slice appears when it ends). "
        "A budget above the pool (or above the items the strategies can use), all-zero "
        "weights, an unknown strategy or a pool without the vectors, scores or labels a "
        "strategy needs is a 400 naming the field.",
        request=SelectionCreateSerializer,
        responses={
            201: SelectionSerializer,
            202: SelectionSerializer,
            **errors(400, 403, 404, 409),
        },
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        validated(SelectionCreateSerializer, request.data)
        made = services.selection_create(dataset=dataset, user=request.user, data=_body(request))
        code = status.HTTP_201_CREATED if made.slice_id else status.HTTP_202_ACCEPTED
        return Response(SelectionSerializer(made).data, status=code)


class SelectionDetailView(APIView):
    @extend_schema(
        operation_id="selections_retrieve",
        tags=TAGS,
        summary="A selection: its recipe, slice, version, figures and job",
        responses={200: SelectionSerializer, **errors(404)},
    )
    def get(self, request: Request, dataset_id: int, selection_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        found = selectors.selection_of(dataset=dataset, selection_id=selection_id)
        if found is None:
            raise NotFound("No such selection in this dataset.")
        return Response(SelectionSerializer(found).data)


class SelectionPreviewView(APIView):
    @extend_schema(
        operation_id="selections_preview",
        tags=TAGS,
        summary="Run a recipe without saving: the first 50 picks and each strategy's part",
        description="Pools of at most 200,000 items. The same 400s as create.",
        request=RecipeSerializer,
        responses={200: PreviewSerializer, **errors(400, 404)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        validated(RecipeSerializer, request.data)
        preview = services.selection_preview(dataset=dataset, data=_body(request))
        body = {
            "recipe": preview.recipe,
            "item_count": preview.item_count,
            "figures": preview.figures,
            "items": preview.items,
        }
        return Response(PreviewSerializer(body, context={"request": request}).data)
