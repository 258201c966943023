"""Datasets and their members."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view, inline_serializer
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from curation import selectors, services
from curation.access import dataset_for
from curation.api.common import errors, validated
from curation.api.pagination import Cursor
from curation.errors import Forbidden
from curation.models import Dataset, Role
from curation.serializers import (
    DatasetCreateSerializer,
    DatasetSerializer,
    DatasetUpdateSerializer,
    MemberRoleSerializer,
    MemberSerializer,
    MemberSetSerializer,
)

TAGS = ["datasets"]
MEMBER_TAGS = ["members"]


@extend_schema_view(
    get=extend_schema(
        operation_id="datasets_list",
        tags=TAGS,
        summary="List the datasets you have a role on",
        responses={200: DatasetSerializer(many=True), **errors(400)},
    )
)
class DatasetListView(generics.ListAPIView[Dataset]):
    serializer_class = DatasetSerializer
    pagination_class = Cursor

    def get_queryset(self) -> QuerySet[Dataset]:
        return selectors.datasets_for_user(self.request.user)

    def paginate_queryset(
        self, queryset: QuerySet[Dataset, Any] | Sequence[Any]
    ) -> list[Any] | None:
        # Count the items of this page's datasets only, each count bounded.
        page = super().paginate_queryset(queryset)
        selectors.dataset_counts_attach(page or [])
        return page

    @extend_schema(
        operation_id="datasets_create",
        tags=TAGS,
        summary="Create a dataset (you become its owner)",
        request=DatasetCreateSerializer,
        responses={201: DatasetSerializer, **errors(400, 409)},
    )
    def post(self, request: Request) -> Response:
        data = validated(DatasetCreateSerializer, request.data)
        dataset = services.dataset_create(owner=request.user, **data)
        dataset = selectors.dataset_detail(user=request.user, dataset=dataset)
        return Response(DatasetSerializer(dataset).data, status=status.HTTP_201_CREATED)


class DatasetDetailView(APIView):
    @extend_schema(
        operation_id="datasets_retrieve",
        tags=TAGS,
        summary="Get a dataset",
        responses={200: DatasetSerializer, **errors(404)},
    )
    def get(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        dataset = selectors.dataset_detail(user=request.user, dataset=dataset)
        return Response(DatasetSerializer(dataset).data)

    @extend_schema(
        operation_id="datasets_update",
        tags=TAGS,
        summary="Rename a dataset or change its description (admin)",
        request=DatasetUpdateSerializer,
        responses={200: DatasetSerializer, **errors(400, 403, 404, 409)},
    )
    def patch(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.ADMIN)
        data = validated(DatasetUpdateSerializer, request.data)
        services.dataset_update(dataset=dataset, **data)
        dataset = selectors.dataset_detail(user=request.user, dataset=dataset)
        return Response(DatasetSerializer(dataset).data)

    @extend_schema(
        operation_id="datasets_delete",
        tags=TAGS,
        summary="Delete a dataset and everything in it (owner only)",
        responses={204: None, **errors(403, 404)},
    )
    def delete(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.ADMIN)
        # Deleting cannot be undone, so it is the owner's call, not every admin's.
        if dataset.owner_id != request.user.pk:
            raise Forbidden("Only the dataset's owner can delete it.")
        services.dataset_delete(dataset=dataset)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _member_response(dataset: Dataset, user_id: int, status_code: int = 200) -> Response:
    member = selectors.dataset_member(dataset=dataset, user_id=user_id)
    return Response(MemberSerializer(member).data, status=status_code)


class MemberListView(APIView):
    @extend_schema(
        operation_id="members_list",
        tags=MEMBER_TAGS,
        summary="List a dataset's members (the owner first)",
        responses={
            200: inline_serializer("MemberList", {"results": MemberSerializer(many=True)}),
            **errors(404),
        },
    )
    def get(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.VIEWER)
        members = selectors.dataset_members(dataset=dataset)
        # many=True makes a ListSerializer of the list; the stubs type it as one instance.
        serializer = MemberSerializer(members, many=True)  # type: ignore[arg-type]
        return Response({"results": serializer.data})

    @extend_schema(
        operation_id="members_set",
        tags=MEMBER_TAGS,
        summary="Give a user a role on the dataset, or change it (admin)",
        request=MemberSetSerializer,
        responses={200: MemberSerializer, 201: MemberSerializer, **errors(400, 403, 404)},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.ADMIN)
        data = validated(MemberSetSerializer, request.data)
        membership, created = services.membership_set(dataset=dataset, **data)
        return _member_response(dataset, membership.user_id, 201 if created else 200)


class MemberDetailView(APIView):
    @extend_schema(
        operation_id="members_update",
        tags=MEMBER_TAGS,
        summary="Change a member's role (admin)",
        request=MemberRoleSerializer,
        responses={200: MemberSerializer, **errors(400, 403, 404)},
    )
    def patch(self, request: Request, dataset_id: int, user_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.ADMIN)
        member = selectors.dataset_member(dataset=dataset, user_id=user_id)
        data = validated(MemberRoleSerializer, request.data)
        services.membership_set(dataset=dataset, username=member["username"], role=data["role"])
        return _member_response(dataset, user_id)

    @extend_schema(
        operation_id="members_remove",
        tags=MEMBER_TAGS,
        summary="Remove a member from the dataset (admin)",
        responses={204: None, **errors(400, 403, 404)},
    )
    def delete(self, request: Request, dataset_id: int, user_id: int) -> Response:
        dataset = dataset_for(request.user, dataset_id, Role.ADMIN)
        services.membership_remove(dataset=dataset, user_id=user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
