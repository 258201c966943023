"""Record pages for pipelines: a slice's (or a version's) items with their annotations
inlined, page by page in item id order. The pages are made by curation.export."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from curation import selectors, versions
from curation.access import dataset_for
from curation.api.common import errors, int_param
from curation.api.pagination import RecordCursor
from curation.export.formats import export_options_clean
from curation.export.jsonl import record_page
from curation.export.sources import export_source
from curation.models import Dataset, Role, Slice, SliceVersion
from curation.serializers import RecordPageSerializer
from curation.storage import MediaUrls

RECORD_PARAMETERS = [
    OpenApiParameter("cursor", OpenApiTypes.STR, description="From the previous page's `next`."),
    OpenApiParameter("limit", OpenApiTypes.INT, description="Page size, 1 to 1000 (default 100)."),
    OpenApiParameter(
        "predictions", OpenApiTypes.STR, description="A model's name: add its predictions."
    ),
]


def records_response(
    request: Request, dataset: Dataset, slice: Slice, version: SliceVersion | None
) -> Response:
    """One page of records with annotations inlined, by item id, and the next page's link."""
    options = export_options_clean(
        dataset=dataset, format="jsonl", predictions=request.query_params.get("predictions")
    )
    source = export_source(dataset=dataset, slice=slice, version=version)
    cursor = RecordCursor()
    records, after = record_page(
        source,
        after=cursor.after(request),
        limit=int_param(request, "limit", default=100, low=1, high=1000),
        urls=MediaUrls(request=request),
        model=options["model"],
    )
    return Response({"next": cursor.next_link(request, after), "results": records})


class SliceRecordsView(APIView):
    @extend_schema(
        operation_id="slices_records_list",
        tags=["slices"],
        summary="Page through a slice's items now, with annotations inlined, by item id",
        description="Keyset pages by item id: no item is listed twice, even while the slice "
        "changes; items added behind the cursor meanwhile are not seen. For an exact, "
        "unchanging listing page through a version.",
        parameters=RECORD_PARAMETERS,
        responses={200: RecordPageSerializer, **errors(400, 404)},
    )
    def get(self, request: Request, dataset_id: int, slice_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        found = selectors.slice_of(dataset=dataset, slice_id=slice_id)
        return records_response(request, dataset, found, None)


class VersionItemsView(APIView):
    @extend_schema(
        operation_id="slice_versions_items_list",
        tags=["slice versions"],
        summary="Page through a version's items with their frozen annotations, by item id",
        description="Exact: a version never changes, so pages have no gaps or duplicates. "
        "Predictions, when asked for, are the model's current ones.",
        parameters=RECORD_PARAMETERS,
        responses={200: RecordPageSerializer, **errors(400, 404)},
    )
    def get(self, request: Request, dataset_id: int, slice_id: int, number: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        found = selectors.slice_of(dataset=dataset, slice_id=slice_id)
        version = versions.slice_version_of(slice=found, number=number)
        return records_response(request, dataset, found, version)
