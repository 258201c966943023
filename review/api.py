"""The review API (DRF views: fetch, check access, call one service or selector). Viewers
read queues, entries and stats; curators create queues, claim, decide and undo. See
docs/review.md."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from curation.access import dataset_for
from curation.api.common import errors, validated
from curation.api.pagination import Cursor
from curation.models import Role
from review import selectors
from review.claims import entry_claim_next
from review.decisions import entry_decide, entry_undo
from review.models import ReviewEntry, ReviewQueue, Status
from review.serializers import (
    ClaimSerializer,
    DecideSerializer,
    EntryPageSerializer,
    EntrySerializer,
    QueueCreateSerializer,
    QueueSerializer,
    QueueUpdateSerializer,
    ReasonCreateSerializer,
    ReasonSerializer,
)
from review.services import queue_create, queue_delete, queue_update, reason_add, reasons_ensure

TAGS = ["review"]


def _queue_data(queues: list[ReviewQueue]) -> Any:
    names = selectors.usernames({pk for q in queues for pk in q.assignees})
    return QueueSerializer(queues, many=True, context={"usernames": names}).data


def _entry_context(dataset_id: int, entries: list[ReviewEntry], dataset: Any) -> dict[str, Any]:
    pks = [pk for e in entries for pk in e.annotations]
    return {"dataset_id": dataset_id, "authors": selectors.annotation_authors(dataset, pks)}


def _entries(dataset: Any, entries: list[ReviewEntry]) -> Any:
    return EntrySerializer(
        entries, many=True, context=_entry_context(dataset.pk, entries, dataset)
    ).data


class PositionCursor(Cursor):
    """Entries page by their position in the queue."""

    ordering = "position"


class QueueListView(APIView):
    @extend_schema(
        operation_id="review_queues_list",
        tags=TAGS,
        summary="List a dataset's review queues",
        responses={200: QueueSerializer(many=True), **errors(404)},
    )
    def get(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        return Response(_queue_data(list(selectors.queues_of(dataset=dataset))))

    @extend_schema(
        operation_id="review_queues_create",
        tags=TAGS,
        summary="Make a review queue from a slice, a query, reference ids, label-error "
        "candidates or an evaluation run's false positives / negatives",
        request=QueueCreateSerializer,
        responses={201: QueueSerializer, **errors(400, 403, 404, 409)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        data = validated(QueueCreateSerializer, request.data)
        queue = queue_create(dataset=dataset, user=request.user, **data)
        return Response(_queue_data([queue])[0], status=status.HTTP_201_CREATED)


class QueueDetailView(APIView):
    @extend_schema(
        operation_id="review_queues_retrieve",
        tags=TAGS,
        summary="Get a review queue",
        responses={200: QueueSerializer, **errors(404)},
    )
    def get(self, request: Request, dataset_id: int, queue_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        queue = selectors.queue_of(dataset=dataset, queue_id=queue_id)
        return Response(_queue_data([queue])[0])

    @extend_schema(
        operation_id="review_queues_update",
        tags=TAGS,
        summary="Rename a review queue or change its assignment",
        request=QueueUpdateSerializer,
        responses={200: QueueSerializer, **errors(400, 403, 404, 409)},
    )
    def patch(self, request: Request, dataset_id: int, queue_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        queue = selectors.queue_of(dataset=dataset, queue_id=queue_id)
        data = validated(QueueUpdateSerializer, request.data)
        return Response(_queue_data([queue_update(queue=queue, **data)])[0])

    @extend_schema(
        operation_id="review_queues_destroy",
        tags=TAGS,
        summary="Delete a review queue with its entries and decisions",
        responses={204: None, **errors(403, 404)},
    )
    def delete(self, request: Request, dataset_id: int, queue_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        queue_delete(queue=selectors.queue_of(dataset=dataset, queue_id=queue_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ClaimView(APIView):
    @extend_schema(
        operation_id="review_claim",
        tags=TAGS,
        summary="Claim the next entries of a queue (the claims you hold first)",
        description="Two reviewers never get the same entry. A claim older than the "
        "queue's `claim_minutes` may be claimed by someone else. An empty list: nothing "
        "left for you.",
        request=ClaimSerializer,
        responses={200: EntrySerializer(many=True), **errors(400, 403, 404)},
    )
    def post(self, request: Request, dataset_id: int, queue_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        queue = selectors.queue_of(dataset=dataset, queue_id=queue_id)
        count = validated(ClaimSerializer, request.data)["count"]
        claimed = entry_claim_next(queue=queue, user=request.user, count=count)
        entries = selectors.entries_in(queue=queue, entry_ids=[e.pk for e in claimed])
        return Response(_entries(dataset, entries))


class EntryListView(APIView):
    @extend_schema(
        operation_id="review_entries_list",
        tags=TAGS,
        summary="List a queue's entries in order",
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=Status.values),
            OpenApiParameter("limit", OpenApiTypes.INT, description="1 to 1000, default 100"),
            OpenApiParameter("cursor", OpenApiTypes.STR),
        ],
        responses={200: EntryPageSerializer, **errors(400, 404)},
    )
    def get(self, request: Request, dataset_id: int, queue_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        queue = selectors.queue_of(dataset=dataset, queue_id=queue_id)
        rows = selectors.entries_of(queue=queue, status=request.query_params.get("status"))
        paginator = PositionCursor()
        page = paginator.paginate_queryset(rows, request, view=self) or []
        return paginator.get_paginated_response(_entries(dataset, list(page)))


class EntryDetailView(APIView):
    @extend_schema(
        operation_id="review_entries_retrieve",
        tags=TAGS,
        summary="Get one entry",
        responses={200: EntrySerializer, **errors(404)},
    )
    def get(self, request: Request, dataset_id: int, queue_id: int, entry_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        queue = selectors.queue_of(dataset=dataset, queue_id=queue_id)
        entry = selectors.entry_of(queue=queue, entry_id=entry_id)
        return Response(_entries(dataset, [entry])[0])


class DecideView(APIView):
    @extend_schema(
        operation_id="review_decide",
        tags=TAGS,
        summary="Decide an entry: accepted, corrected, rejected (with a reason) or skipped",
        description="Objects not listed in `objects` take the entry's decision. Sending "
        "the same decision again is a no-op (200); a different one on a decided entry is a "
        "409 (undo first).",
        request=DecideSerializer,
        responses={200: EntrySerializer, **errors(400, 403, 404, 409)},
    )
    def post(self, request: Request, dataset_id: int, queue_id: int, entry_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        queue = selectors.queue_of(dataset=dataset, queue_id=queue_id)
        entry = selectors.entry_of(queue=queue, entry_id=entry_id)
        data = validated(DecideSerializer, request.data)
        decided, _ = entry_decide(
            entry=entry,
            user=request.user,
            decision=data["decision"],
            reason=data.get("reason"),
            note=data.get("note", ""),
            objects=data.get("objects"),
        )
        entry = selectors.entry_of(queue=queue, entry_id=decided.pk)
        return Response(_entries(dataset, [entry])[0])


class UndoView(APIView):
    @extend_schema(
        operation_id="review_undo",
        tags=TAGS,
        summary="Undo your last decision in the queue (the entry is yours again)",
        request=None,
        responses={200: EntrySerializer, **errors(403, 404, 409)},
    )
    def post(self, request: Request, dataset_id: int, queue_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        queue = selectors.queue_of(dataset=dataset, queue_id=queue_id)
        undone = entry_undo(queue=queue, user=request.user)
        entry = selectors.entry_of(queue=queue, entry_id=undone.pk)
        return Response(_entries(dataset, [entry])[0])


class StatsView(APIView):
    @extend_schema(
        operation_id="review_stats",
        tags=TAGS,
        summary="A queue's progress, per-reviewer counts, acceptance rate, reasons",
        responses={200: OpenApiTypes.OBJECT, **errors(404)},
    )
    def get(self, request: Request, dataset_id: int, queue_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        queue = selectors.queue_of(dataset=dataset, queue_id=queue_id)
        return Response(selectors.queue_stats(queue=queue).as_json())


class ReasonListView(APIView):
    @extend_schema(
        operation_id="review_reasons_list",
        tags=TAGS,
        summary="The dataset's reject reasons",
        responses={200: ReasonSerializer(many=True), **errors(404)},
    )
    def get(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        return Response(ReasonSerializer(selectors.reasons_of(dataset=dataset), many=True).data)

    @extend_schema(
        operation_id="review_reasons_create",
        tags=TAGS,
        summary="Add a reject reason to the dataset's list",
        request=ReasonCreateSerializer,
        responses={201: ReasonSerializer, **errors(400, 403, 404, 409)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.CURATOR)
        data = validated(ReasonCreateSerializer, request.data)
        reasons_ensure(dataset=dataset)
        reason = reason_add(dataset=dataset, label=data["label"], key=data["key"])
        return Response(ReasonSerializer(reason).data, status=status.HTTP_201_CREATED)
