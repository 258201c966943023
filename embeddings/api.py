"""REST API of embeddings: models, embedding jobs, uploaded vectors, search, duplicates."""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from curation.access import dataset_for
from curation.api.common import errors
from curation.api.parsers import FormParser, MultiPartParser
from curation.errors import InvalidInput, NotFound
from curation.itemsets import slice_items_q
from curation.media import image_upload_read
from curation.models import Dataset, Item, Role, Slice, Tag
from curation.query import QueryError, compile_query
from curation.serializers import ItemSerializer, JobSerializer
from embeddings import duplicates, search, selectors, services
from embeddings.models import DatasetSearchDefault, DuplicateGroup, EmbeddingModel
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


def _valid(serializer_class: Any, data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _model(dataset: Dataset, model_id: int) -> EmbeddingModel:
    model = EmbeddingModel.objects.filter(
        Q(dataset=dataset) | Q(dataset__isnull=True), pk=model_id
    ).first()
    if model is None:
        raise NotFound("No such embedding model for this dataset.")
    return model


def _model_out(dataset: Dataset, model: EmbeddingModel) -> dict[str, Any]:
    default = (
        DatasetSearchDefault.objects.filter(dataset=dataset)
        .values_list("model_id", flat=True)
        .first()
    )
    return dict(EmbeddingModelSerializer(model, context={"default_model_id": default}).data)


def search_filter_from(dataset: Dataset, raw: dict[str, Any] | None) -> search.SearchFilter:
    """Turn the API's filter object into a SearchFilter, checking names against the dataset."""
    raw = raw or {}
    tags = list(raw.get("tags") or [])
    known = set(Tag.objects.filter(dataset=dataset, name__in=tags).values_list("name", flat=True))
    unknown = [
        {"path": f"filter.tags[{i}]", "message": f"no tag {t!r} in this dataset"}
        for i, t in enumerate(tags)
        if t not in known
    ]
    if unknown:
        raise InvalidInput(unknown[0]["path"] + ": " + unknown[0]["message"], fields=unknown)
    conditions = [search.metadata_condition(c, i) for i, c in enumerate(raw.get("metadata") or [])]
    restrictions: list[Q] = []
    if (raw.get("query") or "").strip():
        try:
            restrictions.append(compile_query(raw["query"], dataset=dataset))
        except QueryError as exc:
            for field in exc.fields:
                field["path"] = "filter." + field["path"]
            raise
    if raw.get("slice") is not None:
        restrictions.append(_slice_restriction(dataset, raw["slice"]))
    items = None
    for restriction in restrictions:
        items = restriction if items is None else items & restriction
    return search.SearchFilter(tags=tags, metadata=conditions, items=items)


def _slice_restriction(dataset: Dataset, slice_id: int) -> Q:
    """The items of a slice as a filter: its members, or a dynamic slice's matches now."""
    found = Slice.objects.filter(pk=slice_id, dataset=dataset).first()
    if found is None:
        raise InvalidInput(
            "filter.slice: no such slice in this dataset",
            fields=[{"path": "filter.slice", "message": "no such slice in this dataset"}],
        )
    try:
        return slice_items_q(found)
    except QueryError as exc:
        message = f"the dynamic slice's query no longer works: {exc.message}"
        raise InvalidInput(
            f"filter.slice: {message}", fields=[{"path": "filter.slice", "message": message}]
        ) from None


def _search_response(request: Request, result: search.SearchResult) -> Response:
    model = result.model
    body = {
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
            {"score": score, "item": ItemSerializer(item, context={"request": request}).data}
            for item, score in result.items_in_order()
        ],
    }
    return Response(body)


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
        default = (
            DatasetSearchDefault.objects.filter(dataset=dataset)
            .values_list("model_id", flat=True)
            .first()
        )
        models = selectors.models_of(dataset=dataset)
        return Response(
            EmbeddingModelSerializer(models, many=True, context={"default_model_id": default}).data
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
        data = _valid(CustomModelCreateSerializer, request.data)
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
        return Response(_model_out(dataset, _model(dataset, model_id)))

    @extend_schema(
        operation_id="embedding_models_destroy",
        tags=MODEL_TAGS,
        summary="Delete a custom model and its vectors",
        responses={204: None, **errors(400, 403, 404)},
    )
    def delete(self, request: Request, dataset_id: int, model_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        model = _model(dataset, model_id)
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
        name = _valid(DefaultModelSerializer, request.data)["model"]
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
        model = _model(dataset, model_id)
        rows = _valid(VectorsUploadSerializer, request.data)["vectors"]
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
        data = _valid(EmbedJobSerializer, request.data)
        job = services.embed_job_start(
            dataset=dataset,
            user=request.user,
            model_name=data.get("model"),
            mode=data["mode"],
            slice_id=data.get("slice"),
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
    def _prepare(
        self, request: Request, dataset_id: int, serializer_class: Any
    ) -> tuple[Dataset, EmbeddingModel, dict[str, Any], search.SearchFilter]:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        data = _valid(serializer_class, request.data)
        model = selectors.model_for_search(dataset=dataset, name=data.get("model"))
        return dataset, model, data, search_filter_from(dataset, data.get("filter"))


class ItemSearchView(_SearchView):
    @extend_schema(
        operation_id="search_by_item",
        tags=SEARCH_TAGS,
        summary="Items most like an item of the dataset",
        description=_SEARCH_DESCRIPTION + " The query item itself is left out.",
        request=ItemSearchSerializer,
        responses={200: SearchResultSerializer, **errors(400, 404, 409)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset, model, data, flt = self._prepare(request, dataset_id, ItemSearchSerializer)
        lookup = (
            {"pk": data["item_id"]} if "item_id" in data else {"reference_id": data["reference_id"]}
        )
        item = Item.objects.filter(dataset=dataset, **lookup).first()
        if item is None:
            raise NotFound("Item not found.")
        result = search.search_item(
            dataset=dataset,
            model=model,
            item=item,
            search_filter=flt,
            offset=data["offset"],
            limit=data["limit"],
        )
        return _search_response(request, result)


class TextSearchView(_SearchView):
    @extend_schema(
        operation_id="search_by_text",
        tags=SEARCH_TAGS,
        summary="Items matching a text prompt (CLIP text tower)",
        description=_SEARCH_DESCRIPTION,
        request=TextSearchSerializer,
        responses={200: SearchResultSerializer, **errors(400, 404, 409)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset, model, data, flt = self._prepare(request, dataset_id, TextSearchSerializer)
        result = search.search_text(
            dataset=dataset,
            model=model,
            text=data["text"],
            search_filter=flt,
            offset=data["offset"],
            limit=data["limit"],
        )
        return _search_response(request, result)


class VectorSearchView(_SearchView):
    @extend_schema(
        operation_id="search_by_vector",
        tags=SEARCH_TAGS,
        summary="Items nearest to a raw vector",
        description=_SEARCH_DESCRIPTION + " The vector must have the model's dimension.",
        request=VectorSearchSerializer,
        responses={200: SearchResultSerializer, **errors(400, 404, 409)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset, model, data, flt = self._prepare(request, dataset_id, VectorSearchSerializer)
        result = search.search_vector(
            dataset=dataset,
            model=model,
            vector=data["vector"],
            search_filter=flt,
            offset=data["offset"],
            limit=data["limit"],
        )
        return _search_response(request, result)


class ImageSearchView(_SearchView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="search_by_image",
        tags=SEARCH_TAGS,
        summary="Items that look like an uploaded image",
        description=_SEARCH_DESCRIPTION + " Send multipart/form-data; `filter` is a JSON string.",
        request={"multipart/form-data": ImageSearchSerializer},
        responses={200: SearchResultSerializer, **errors(400, 404, 409)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset, model, data, flt = self._prepare(request, dataset_id, ImageSearchSerializer)
        result = search.search_image(
            dataset=dataset,
            model=model,
            image=image_upload_read(data["image"]),
            search_filter=flt,
            offset=data["offset"],
            limit=data["limit"],
        )
        return _search_response(request, result)


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
        offset, limit = (
            _int_param(request, "offset", 0, 0, MAX_GROUP_OFFSET),
            _int_param(request, "limit", 100, 1, 500),
        )
        run = duplicates.latest_run(dataset=dataset)
        groups = DuplicateGroup.objects.filter(run=run).select_related("representative")
        kind = request.query_params.get("kind")
        if kind is not None:
            if kind not in ("exact", "near"):
                raise InvalidInput(
                    "kind: must be exact or near",
                    fields=[{"path": "kind", "message": "must be exact or near"}],
                )
            groups = groups.filter(kind=kind)
        page = list(
            groups.prefetch_related("members__item").order_by("id")[offset : offset + limit + 1]
        )
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
        data = _valid(DuplicatesJobSerializer, request.data)
        if data.get("model"):
            model: EmbeddingModel | None = selectors.model_named(
                dataset=dataset, name=data["model"]
            )
        else:
            default = (
                DatasetSearchDefault.objects.filter(dataset=dataset).select_related("model").first()
            )
            model = default.model if default else None
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
        data = _valid(DuplicatesApplySerializer, request.data)
        result = duplicates.duplicates_apply(
            dataset=dataset,
            user=request.user,
            target=data["target"],
            name=data["name"],
            select=data["select"],
            group_ids=data.get("groups"),
        )
        return Response(result)


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
        if not low <= value <= high:
            raise ValueError
    except ValueError:  # also int()'s refusal of numbers with thousands of digits
        message = f"must be a whole number from {low} to {high}"
        raise InvalidInput(
            f"{name}: {message}", fields=[{"path": name, "message": message}]
        ) from None
    return value
