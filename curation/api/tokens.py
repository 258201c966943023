"""API tokens of the requesting user."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from curation import selectors, services
from curation.api.common import errors, validated
from curation.errors import Forbidden
from curation.models import ApiToken
from curation.serializers import TokenCreatedSerializer, TokenCreateSerializer, TokenSerializer

TAGS = ["tokens"]


class TokenListView(APIView):
    @extend_schema(
        operation_id="tokens_list",
        tags=TAGS,
        summary="List your API tokens",
        responses={
            200: inline_serializer("TokenList", {"results": TokenSerializer(many=True)}),
            **errors(),
        },
    )
    def get(self, request: Request) -> Response:
        tokens = selectors.tokens_of(user=request.user)
        return Response({"results": TokenSerializer(tokens, many=True).data})

    @extend_schema(
        operation_id="tokens_create",
        tags=TAGS,
        summary="Create an API token (its secret is shown only in this response)",
        description="Only from a signed-in browser session (the web UI's tokens page uses "
        "it): a request authenticated with a token gets a 403, so that a leaked token "
        "cannot mint others, and revoking it ends the access it gave.",
        request=TokenCreateSerializer,
        responses={201: TokenCreatedSerializer, **errors(400, 403)},
    )
    def post(self, request: Request) -> Response:
        if isinstance(request.auth, ApiToken):
            raise Forbidden(
                "API tokens cannot create API tokens: create one on the web UI's tokens "
                "page, signed in with your password."
            )
        data = validated(TokenCreateSerializer, request.data)
        token, secret = services.token_create(user=request.user, name=data["name"])
        token.secret = secret  # type: ignore[attr-defined]
        return Response(TokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)


class TokenDetailView(APIView):
    @extend_schema(
        operation_id="tokens_revoke",
        tags=TAGS,
        summary="Revoke one of your API tokens",
        responses={204: None, **errors(404)},
    )
    def delete(self, request: Request, token_id: int) -> Response:
        token = selectors.token_of(user=request.user, token_id=token_id)
        services.token_revoke(token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)
