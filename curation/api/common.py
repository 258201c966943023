"""What every API view shares: pagination, error responses in the schema, access."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions
from rest_framework.request import Request

from curation.errors import InvalidInput, field_error
from curation.pagination import IdCursorPagination
from curation.serializers import ErrorSerializer

_ERROR_DESCRIPTIONS = {
    400: "Invalid input; `fields` names each problem by path.",
    401: "No credentials, or a bad or revoked token.",
    403: "Not allowed: your role on the dataset is too low, or (tokens) not a browser session.",
    404: "No such object, or a dataset you have no role on.",
    409: "The name is already taken.",
    429: "Too many jobs of this kind queued or running; wait for one to finish.",
    507: "Free disk space on the server is below NUCLEUS_MIN_FREE_DISK_MB: jobs that write "
    "are refused until space is freed.",
}


class HashedTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """Describes token authentication in the schema (registered by being defined)."""

    target_class = "curation.authentication.HashedTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token: `Authorization: Bearer nuc_...` (or `Token nuc_...`).",
        }


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    """Schema entries for error responses: always 401, plus `codes`."""
    return {
        code: OpenApiResponse(ErrorSerializer, description=_ERROR_DESCRIPTIONS[code])
        for code in sorted({401, *codes})
    }


def document_unsupported_media_type(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Schema hook: every operation that takes a body answers 415 to a body of a media
    type it does not parse (or none), as DRF does before the view runs."""
    answer = {
        "description": "The body's Content-Type is missing or not one this operation takes.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if "requestBody" in operation:
                operation["responses"].setdefault("415", answer)
    return result


class Cursor(IdCursorPagination):
    """Keyset pagination by id with strict `cursor` and `limit` parameters (400, not 404)."""

    def decode_cursor(self, request: Request) -> Any:
        try:
            cursor = super().decode_cursor(request)
            if cursor is not None and cursor.position is not None:
                int(cursor.position)  # ids only: anything else would reach the database
        except (exceptions.NotFound, ValueError):
            message = "is not a cursor from a previous page's next/previous link"
            raise InvalidInput(
                f"cursor: {message}", fields=[field_error("cursor", message)]
            ) from None
        return cursor

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param or "limit")
        if raw is None:
            return int(self.page_size)
        try:
            size = int(raw)
            if size < 1:
                raise ValueError
        except ValueError:
            message = f"must be a whole number from 1 to {self.max_page_size}"
            raise InvalidInput(
                f"limit: {message}", fields=[field_error("limit", message)]
            ) from None
        return min(size, int(self.max_page_size or size))


class NewestFirstCursor(Cursor):
    ordering = "-id"
