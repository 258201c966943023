"""REST API of embeddings: models, embedding jobs, uploaded vectors, search, duplicates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from curation import selectors as curation_selectors
from curation.access import dataset_for
from curation.api.common import errors, int_param, post_schema, validated
from curation.api.parsers import FormParser, MultiPartParser
from curation.errors import InvalidInput, invalid_field
from curation.media import image_upload_read
from curation.models import Dataset, Item, Role
from curation.serializers import ItemSerializer, JobSerializer
from embeddings import duplicates, projection, search, selectors, services
from embeddings.models import EmbeddingModel
from embeddings.serializers import (
    CustomModelCreateSerializer,
    DefaultModelSerializer,
    DuplicatesAppliedSerializer,
    DuplicatesApplySerializer,
    DuplicatesJobSerializer,
    DuplicatesPageSerializer,
    EmbeddingModelSerializer,
    EmbedJobSerializer,
    ImageSearchSerializer,
    ItemSearchSerializer,
    ProjectionJobSerializer,
    SearchResultSerializer,
    TextSearchSerializer,
    VectorSearchSerializer,
    VectorsUploadSerializer,
    VectorsWrittenSerializer,
)

MODEL_TAGS = ["embeddings"]
SEARCH_TAGS = ["search"]
DUPLICATE_TAGS = ["duplicates"]
# Past any real number of groups, and well inside PostgreSQL's bigint OFFSET.
MAX_GROUP_OFFSET = 1_000_000_000


def _model_context(dataset: Dataset) -> dict[str, Any]:
    """What EmbeddingModelSerializer needs to say which model is the dataset's default."""
    default = selectors.default_model_or_none(dataset=dataset)
    return {"default_model_id": default.pk if default is not None else None}


def _model_out(dataset: Dataset, model: EmbeddingModel) -> dict[str, Any]:
    return dict(EmbeddingModelSerializer(model, context=_model_context(dataset)).data)


def _search_body(request: Request, result: search.SearchResult) -> dict[str, Any]:
    model = result.model
    hits = result.items_in_order()
    # One serializer for all the hits: a serializer per hit built its fields per hit,
    # most of a search's CPU.
    items = ItemSerializer([item for item, _ in hits], many=True, context={"request": request})
    return {
        "model": {
            "id": model.pk,
            "name": model.name,
            "dimension": model.dimension,
            "random_weights": model.random_weights,
        },
        "random_weights": model.random_weights,
        "strategy": result.strategy,
        "offset": result.offset,
        "limit": result.limit,
        "next_offset": result.offset + result.limit if result.has_more else None,
        "results": [
            {"score": score, "item": row} for (_, score), row in zip(hits, items.data, strict=True)
        ],
    }


# ------------------------------------------------------------------------------ models


class EmbeddingModelListView(APIView):
    @extend_schema(
        operation_id="embedding_models_list",
        tags=MODEL_TAGS,
        summary="List the embedding models a dataset can use",
        description="Shared open_clip models and the dataset's own custom models, with how "
        "many of its items each has a vector for. `random_weights: true` means the model's "
        "similarity is not semantic (offline demo mode).",
        responses={200: EmbeddingModelSerializer(many=True), **errors(404)},
    )
    def get(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        models = selectors.models_of(dataset=dataset)
        return Response(
            EmbeddingModelSerializer(models, many=True, context=_model_context(dataset)).data
        )

    @extend_schema(
        operation_id="embedding_models_create",
        tags=MODEL_TAGS,
        summary="Create a custom model, whose vectors you upload",
        request=CustomModelCreateSerializer,
        responses={201: EmbeddingModelSerializer, **errors(400, 403, 404, 409)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        data = validated(CustomModelCreateSerializer, request.data)
        model = services.custom_model_create(dataset=dataset, **data)
        return Response(_model_out(dataset, model), status=status.HTTP_201_CREATED)


class EmbeddingModelDetailView(APIView):
    @extend_schema(
        operation_id="embedding_models_retrieve",
        tags=MODEL_TAGS,
        summary="Get an embedding model",
        responses={200: EmbeddingModelSerializer, **errors(404)},
    )
    def get(self, request: Request, dataset_id: int, model_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        return Response(_model_out(dataset, selectors.model_of(dataset=dataset, model_id=model_id)))

    @extend_schema(
        operation_id="embedding_models_destroy",
        tags=MODEL_TAGS,
        summary="Delete a custom model and its vectors",
        responses={204: None, **errors(400, 403, 404)},
    )
    def delete(self, request: Request, dataset_id: int, model_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        model = selectors.model_of(dataset=dataset, model_id=model_id)
        if model.dataset_id != dataset.pk:
            raise InvalidInput("Shared open_clip models cannot be deleted through a dataset.")
        services.embedding_model_delete(model=model)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DefaultModelView(APIView):
    @extend_schema(
        operation_id="embedding_models_set_default",
        tags=MODEL_TAGS,
        summary="Choose the model the dataset's searches use by default",
        request=DefaultModelSerializer,
        responses={200: EmbeddingModelSerializer, **errors(400, 403, 404)},
    )
    def put(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        name = validated(DefaultModelSerializer, request.data)["model"]
        model = selectors.model_named(dataset=dataset, name=name)
        services.dataset_default_set(dataset=dataset, model=model)
        return Response(_model_out(dataset, model))


class VectorsUploadView(APIView):
    @extend_schema(
        operation_id="embedding_vectors_upload",
        tags=MODEL_TAGS,
        summary="Upload vectors of a custom model by reference_id",
        description='Rows: `{"reference_id": ..., "vector": [...]}`, each of the model\'s '
        "dimension; vectors are L2-normalised. All rows or none: a 400 names every bad row.",
        request=VectorsUploadSerializer,
        responses={200: VectorsWrittenSerializer, **errors(400, 403, 404)},
    )
    def post(self, request: Request, dataset_id: int, model_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        model = selectors.model_of(dataset=dataset, model_id=model_id)
        rows = validated(VectorsUploadSerializer, request.data)["vectors"]
        return Response(services.vectors_upload(dataset=dataset, model=model, rows=rows))


class EmbedJobView(APIView):
    @extend_schema(
        operation_id="embedding_jobs_create",
        tags=MODEL_TAGS,
        summary="Start an embedding job",
        description="Embeds the dataset's (or a slice's) items, by default only those "
        "without a vector for the model. Fails with 503 when the model's weights are not "
        "available, naming the ways to provide them.",
        request=EmbedJobSerializer,
        responses={202: JobSerializer, **errors(400, 403, 404, 507)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        data = validated(EmbedJobSerializer, request.data)
        job = services.embed_job_start(
            dataset=dataset,
            user=request.user,
            model_name=data.get("model"),
            mode=data["mode"],
            slice_id=data.get("slice"),
        )
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ProjectionJobView(APIView):
    @extend_schema(
        operation_id="projection_jobs_create",
        tags=MODEL_TAGS,
        summary="Start a projection job (the embedding map)",
        description="Lays out the dataset's vectors in 2-D (PCA, or UMAP) for the map: fitted "
        "on a sample, the rest placed in chunks; resumable. The map page shows the newest "
        "finished projection (docs/embeddings.md, Map).",
        request=ProjectionJobSerializer,
        responses={202: JobSerializer, **errors(400, 403, 404, 409)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        data = validated(ProjectionJobSerializer, request.data)
        name = data.get("model")
        model = (
            selectors.model_named(dataset=dataset, name=name)
            if name
            else selectors.default_model_or_none(dataset=dataset)
        )
        job = projection.projection_job_start(
            dataset=dataset,
            user=request.user,
            model=model,
            method=data["method"],
            sample=data["sample"],
            seed=data["seed"],
            n_neighbors=data["n_neighbors"],
            min_dist=data["min_dist"],
        )
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


# ------------------------------------------------------------------------------ search

_SEARCH_DESCRIPTION = (
    "Returns the dataset's items nearest to the query, best first, with their cosine "
    "similarity. With a filter it still returns `limit` items whenever that many match. "
    "`random_weights: true` means the model is randomly initialised and the ranking is not "
    "semantic."
)


class _SearchView(APIView):
    # POST: the dataset's items nearest to a query, best first. Subclasses name the input
    # and the search service, and turn the input into the service's query argument.
    # (No docstring: the schema would take it.)
    input_serializer: ClassVar[type[serializers.Serializer[dict[str, Any]]]]
    service: ClassVar[Callable[..., search.SearchResult]]

    def query(self, dataset: Dataset, data: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        data = validated(self.input_serializer, request.data)
        model = selectors.model_for_search(dataset=dataset, name=data.get("model"))
        search_filter = selectors.search_filter_from(dataset=dataset, raw=data.get("filter"))
        result = self.service(
            dataset=dataset,
            model=model,
            search_filter=search_filter,
            offset=data["offset"],
            limit=data["limit"],
            **self.query(dataset, data),
        )
        return Response(_search_body(request, result))


def _search_schema(**kwargs: Any) -> Callable[[type[_SearchView]], type[_SearchView]]:
    """The schema of a search view's POST: `kwargs` plus what all searches share."""
    responses = {200: SearchResultSerializer, **errors(400, 404, 409)}
    return post_schema(tags=SEARCH_TAGS, responses=responses, **kwargs)


@_search_schema(
    operation_id="search_by_item",
    summary="Items most like an item of the dataset",
    description=_SEARCH_DESCRIPTION + " The query item itself is left out.",
    request=ItemSearchSerializer,
)
class ItemSearchView(_SearchView):
    input_serializer = ItemSearchSerializer
    service = staticmethod(search.search_item)

    def query(self, dataset: Dataset, data: dict[str, Any]) -> dict[str, Any]:
        item: Item
        if "item_id" in data:
            item = curation_selectors.item_of(dataset=dataset, item_id=data["item_id"])
        else:
            item = curation_selectors.item_by_reference(
                dataset=dataset, reference_id=data["reference_id"]
            )
        return {"item": item}


@_search_schema(
    operation_id="search_by_text",
    summary="Items matching a text prompt (CLIP text tower)",
    description=_SEARCH_DESCRIPTION,
    request=TextSearchSerializer,
)
class TextSearchView(_SearchView):
    input_serializer = TextSearchSerializer
    service = staticmethod(search.search_text)

    def query(self, dataset: Dataset, data: dict[str, Any]) -> dict[str, Any]:
        return {"text": data["text"]}


@_search_schema(
    operation_id="search_by_vector",
    summary="Items nearest to a raw vector",
    description=_SEARCH_DESCRIPTION + " The vector must have the model's dimension.",
    request=VectorSearchSerializer,
)
class VectorSearchView(_SearchView):
    input_serializer = VectorSearchSerializer
    service = staticmethod(search.search_vector)

    def query(self, dataset: Dataset, data: dict[str, Any]) -> dict[str, Any]:
        return {"vector": data["vector"]}


@_search_schema(
    operation_id="search_by_image",
    summary="Items that look like an uploaded image",
    description=_SEARCH_DESCRIPTION + " Send multipart/form-data; `filter` is a JSON string.",
    request={"multipart/form-data": ImageSearchSerializer},
)
class ImageSearchView(_SearchView):
    parser_classes = [MultiPartParser, FormParser]
    input_serializer = ImageSearchSerializer
    service = staticmethod(search.search_image)

    def query(self, dataset: Dataset, data: dict[str, Any]) -> dict[str, Any]:
        return {"image": image_upload_read(data["image"])}


# -------------------------------------------------------------------------- duplicates


class DuplicatesView(APIView):
    @extend_schema(
        operation_id="duplicates_list",
        tags=DUPLICATE_TAGS,
        summary="The duplicate groups of the dataset's latest duplicates job",
        parameters=[
            OpenApiParameter(
                "offset", int, description=f"Groups to skip, at most {MAX_GROUP_OFFSET}."
            ),
            OpenApiParameter("limit", int, description="Groups per page, 1 to 500 (default 100)."),
            OpenApiParameter("kind", str, enum=["exact", "near"], description="Only this kind."),
        ],
        responses={200: DuplicatesPageSerializer, **errors(400, 404)},
    )
    def get(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        offset = int_param(request, "offset", default=0, low=0, high=MAX_GROUP_OFFSET)
        limit = int_param(request, "limit", default=100, low=1, high=500)
        run = duplicates.latest_run(dataset=dataset)
        kind = request.query_params.get("kind")
        if kind is not None and kind not in ("exact", "near"):
            raise invalid_field("kind", "must be exact or near")
        # One group more than the page tells whether there is a next page.
        page = selectors.duplicate_groups(run=run, kind=kind, offset=offset, limit=limit + 1)
        body = {
            "run": run,
            "offset": offset,
            "limit": limit,
            "next_offset": offset + limit if len(page) > limit else None,
            "groups": page[:limit],
        }
        return Response(DuplicatesPageSerializer(body).data)

    @extend_schema(
        operation_id="duplicates_start",
        tags=DUPLICATE_TAGS,
        summary="Start a duplicates job (exact and near duplicates)",
        description="Exact duplicates share a content hash; near duplicates have cosine "
        "similarity >= threshold (default 0.95) under the model. Without embeddings, only "
        "exact duplicates are found.",
        request=DuplicatesJobSerializer,
        responses={202: JobSerializer, **errors(400, 403, 404, 507)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        data = validated(DuplicatesJobSerializer, request.data)
        model: EmbeddingModel | None
        if data.get("model"):
            model = selectors.model_named(dataset=dataset, name=data["model"])
        else:
            model = selectors.default_model_or_none(dataset=dataset)
        job = duplicates.duplicates_job_start(
            dataset=dataset,
            user=request.user,
            model=model,
            threshold=data.get("threshold"),
            neighbors=data.get("neighbors"),
        )
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class DuplicatesApplyView(APIView):
    @extend_schema(
        operation_id="duplicates_apply",
        tags=DUPLICATE_TAGS,
        summary="Tag, or put in a slice, items picked from the duplicate groups",
        description="`select: extras` tags the copies to drop; `keep_one` makes a slice of the "
        "dataset with one item per group. Adding the same items again changes nothing.",
        request=DuplicatesApplySerializer,
        responses={200: DuplicatesAppliedSerializer, **errors(400, 403, 404)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        data = validated(DuplicatesApplySerializer, request.data)
        result = duplicates.duplicates_apply(
            dataset=dataset,
            user=request.user,
            target=data["target"],
            name=data["name"],
            select=data["select"],
            group_ids=data.get("groups"),
        )
        return Response(result)
