"""REST API of autotags (docs/api.md, "Autotag"): create one from examples, add examples
and train the next round, read its scores, tag or slice the items above a threshold.
Views fetch through embeddings.autotag_selectors and act through embeddings.autotag."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from curation.access import dataset_for
from curation.api.common import errors, int_param, validated
from curation.errors import NotFound, invalid_field
from curation.models import Dataset, Role
from embeddings import autotag as services
from embeddings import autotag_selectors as selectors
from embeddings import selectors as embedding_selectors
from embeddings.autotag_serializers import (
    AutotagAppliedSerializer,
    AutotagApplySerializer,
    AutotagCreateSerializer,
    AutotagDetailSerializer,
    AutotagExamplesSerializer,
    AutotagRoundStartedSerializer,
    AutotagScoresPageSerializer,
    AutotagSerializer,
)
from embeddings.models import Autotag, EmbeddingModel

TAGS = ["autotag"]
MAX_OFFSET = 100_000_000


def _sources(data: dict[str, Any]) -> tuple[services.ExampleSource, services.ExampleSource]:
    def side(name: str) -> services.ExampleSource:
        return services.ExampleSource(
            reference_ids=data.get(name) or (),
            slice_id=data.get(f"{name}_slice"),
            tag=data.get(f"{name}_tag"),
        )

    return side("positives"), side("negatives")


def _model(dataset: Dataset, name: str | None) -> EmbeddingModel:
    try:
        if name:
            return embedding_selectors.model_named(dataset=dataset, name=name)
        return embedding_selectors.default_model(dataset=dataset)
    except NotFound as exc:
        raise invalid_field("model", exc.message) from exc


def _detail(autotag: Autotag) -> dict[str, Any]:
    return dict(AutotagDetailSerializer(selectors.autotag_detail(autotag=autotag)).data)


class AutotagListView(APIView):
    @extend_schema(
        operation_id="autotags_list",
        tags=TAGS,
        summary="List a dataset's autotags",
        responses={200: AutotagSerializer(many=True), **errors(404)},
    )
    def get(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        return Response(AutotagSerializer(selectors.autotags_of(dataset=dataset), many=True).data)

    @extend_schema(
        operation_id="autotags_create",
        tags=TAGS,
        summary="Create an autotag from examples; trains round 1 and queues its scoring",
        description="Positives (and optional negatives) by reference id, from a slice or "
        "a tag. Negatives are also drawn at random from the dataset each round. The scores "
        "are the query field `autotag[<name>]` once the job finishes.",
        request=AutotagCreateSerializer,
        responses={201: AutotagRoundStartedSerializer, **errors(400, 403, 404, 409, 507)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        data = validated(AutotagCreateSerializer, request.data)
        positives, negatives = _sources(data)
        autotag, new, job = services.autotag_create(
            dataset=dataset,
            user=request.user,
            name=data["name"],
            model=_model(dataset, data.get("model")),
            positives=positives,
            negatives=negatives,
        )
        body = {"autotag": autotag, "round": new, "job": job}
        return Response(AutotagRoundStartedSerializer(body).data, status=status.HTTP_201_CREATED)


class AutotagDetailView(APIView):
    @extend_schema(
        operation_id="autotags_retrieve",
        tags=TAGS,
        summary="An autotag with its rounds (examples, sampled negatives, metrics)",
        responses={200: AutotagDetailSerializer, **errors(404)},
    )
    def get(self, request: Request, dataset_id: int, autotag_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        return Response(_detail(selectors.autotag_of(dataset=dataset, autotag_id=autotag_id)))

    @extend_schema(
        operation_id="autotags_destroy",
        tags=TAGS,
        summary="Delete an autotag, its rounds and scores",
        responses={204: None, **errors(403, 404)},
    )
    def delete(self, request: Request, dataset_id: int, autotag_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        services.autotag_delete(
            autotag=selectors.autotag_of(dataset=dataset, autotag_id=autotag_id)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class AutotagRoundView(APIView):
    @extend_schema(
        operation_id="autotags_round",
        tags=TAGS,
        summary="Add examples (confirmed: positives, rejected: negatives) and train the next round",
        description="An item already an example takes its new sign. The round's scoring "
        "is a job; the current scores stay until it finishes.",
        request=AutotagExamplesSerializer,
        responses={201: AutotagRoundStartedSerializer, **errors(400, 403, 404, 507)},
    )
    def post(self, request: Request, dataset_id: int, autotag_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        autotag = selectors.autotag_of(dataset=dataset, autotag_id=autotag_id)
        positives, negatives = _sources(validated(AutotagExamplesSerializer, request.data))
        new, job = services.autotag_round_next(
            autotag=autotag, user=request.user, positives=positives, negatives=negatives
        )
        body = {"autotag": autotag, "round": new, "job": job}
        return Response(AutotagRoundStartedSerializer(body).data, status=status.HTTP_201_CREATED)


class AutotagScoresView(APIView):
    @extend_schema(
        operation_id="autotags_scores",
        tags=TAGS,
        summary="A page of an autotag's scores, best first",
        parameters=[
            OpenApiParameter("order", str, enum=["desc", "asc"], description="Default: desc."),
            OpenApiParameter("min", float, description="Only scores >= this (0 to 1)."),
            OpenApiParameter("max", float, description="Only scores <= this (0 to 1)."),
            OpenApiParameter("offset", int, description="Items to skip."),
            OpenApiParameter("limit", int, description="Items per page, 1 to 500 (100)."),
        ],
        responses={200: AutotagScoresPageSerializer, **errors(400, 404)},
    )
    def get(self, request: Request, dataset_id: int, autotag_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        autotag = selectors.autotag_of(dataset=dataset, autotag_id=autotag_id)
        order = request.query_params.get("order", "desc")
        if order not in ("desc", "asc"):
            raise invalid_field("order", "must be desc or asc")
        bounds = {}
        for name in ("min", "max"):
            raw = request.query_params.get(name)
            if raw is not None:
                bounds[name] = services.threshold_clean(raw, field=name)
        offset = int_param(request, "offset", default=0, low=0, high=MAX_OFFSET)
        limit = int_param(request, "limit", default=100, low=1, high=500)
        rows = selectors.scores_page(
            autotag=autotag,
            descending=order == "desc",
            offset=offset,
            limit=limit + 1,
            low=bounds.get("min"),
            high=bounds.get("max"),
        )
        body = {
            "autotag": autotag,
            "round": autotag.scored_round.number if autotag.scored_round else None,
            "random_weights": autotag.model.random_weights,
            "offset": offset,
            "limit": limit,
            "next_offset": offset + limit if len(rows) > limit else None,
            "results": rows[:limit],
        }
        return Response(AutotagScoresPageSerializer(body, context={"request": request}).data)


class AutotagApplyView(APIView):
    @extend_schema(
        operation_id="autotags_apply",
        tags=TAGS,
        summary="Tag the items scoring at least a threshold, or make a static slice of them",
        request=AutotagApplySerializer,
        responses={200: AutotagAppliedSerializer, **errors(400, 403, 404, 409)},
    )
    def post(self, request: Request, dataset_id: int, autotag_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        autotag = selectors.autotag_of(dataset=dataset, autotag_id=autotag_id)
        data = validated(AutotagApplySerializer, request.data)
        if bool(data.get("tag")) == bool(data.get("slice")):
            raise invalid_field("tag", "give a tag or a slice name (one of them)")
        threshold = services.threshold_clean(data["threshold"])
        body: dict[str, Any] = {"threshold": threshold, "tag": None, "slice": None}
        if data.get("tag"):
            tag, added = services.autotag_tag(autotag=autotag, threshold=threshold, tag=data["tag"])
            body.update(tag=tag.name, items=added)
        else:
            new, added = services.autotag_slice(
                autotag=autotag, user=request.user, threshold=threshold, name=data["slice"]
            )
            body.update(slice=new.pk, items=added)
        return Response(AutotagAppliedSerializer(body).data)
