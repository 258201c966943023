"""One error format for the whole API.

Every error response is ``{"error": {"code": ..., "message": ..., "fields": [...]}}`` where
each field entry is ``{"path": "rows[3].geometry.x", "message": "..."}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import (
    PermissionDenied,
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler


class CurationError(Exception):
    """A domain error that maps to a 4xx response."""

    status_code: int = status.HTTP_400_BAD_REQUEST
    code = "invalid"

    def __init__(self, message: str, *, fields: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or []


class InvalidInput(CurationError):
    pass


class NotFound(CurationError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"


class Conflict(CurationError):
    status_code = status.HTTP_409_CONFLICT
    code = "conflict"


class Forbidden(CurationError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "permission_denied"


def field_error(path: str, message: str) -> dict[str, str]:
    return {"path": path, "message": message}


def invalid_field(path: str, message: str) -> InvalidInput:
    """A 400 about one field: "path: message", with the field named."""
    return InvalidInput(f"{path}: {message}", fields=[field_error(path, message)])


# Bad rows or ids listed in one 400; past this many the rest are only counted.
MAX_LISTED_ERRORS = 1000


def unknown_items(unknown: Sequence[tuple[int, str]], *, path: str, noun: str) -> InvalidInput:
    """A 400 for ids that are not items of the dataset, naming each one as `path[index]`.

    `unknown` pairs each id's index in the request with the id as the messages show it
    (`repr` of a reference id, an item id as it is); `noun` is what the ids are, plural.
    """
    return InvalidInput(
        f"{len(unknown)} {noun} are not items of this dataset: "
        + ", ".join(shown for _, shown in unknown[:10])
        + (" ..." if len(unknown) > 10 else ""),
        fields=[
            field_error(f"{path}[{index}]", f"no item {shown} in this dataset")
            for index, shown in unknown[:MAX_LISTED_ERRORS]
        ],
    )


def flatten_detail(detail: Any, prefix: str = "") -> list[dict[str, str]]:
    """Turn DRF's nested error detail into a flat list of {path, message}."""
    out: list[dict[str, str]] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key == "non_field_errors":
                path = prefix
            elif isinstance(key, int):
                path = f"{prefix}[{key}]"
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            out.extend(flatten_detail(value, path))
    elif isinstance(detail, list):
        if all(isinstance(v, str | exceptions.ErrorDetail) for v in detail):
            out.extend(field_error(prefix, str(v)) for v in detail)
        else:
            for index, value in enumerate(detail):
                if value:
                    out.extend(flatten_detail(value, f"{prefix}[{index}]"))
    else:
        out.append(field_error(prefix, str(detail)))
    return out


def error_body(
    code: str, message: str, fields: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or []}}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, CurationError):
        return Response(error_body(exc.code, exc.message, exc.fields), status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        # Django raises this while DRF reads the body; without this it becomes an HTML 400.
        message = (
            f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes "
            "(NUCLEUS_MAX_REQUEST_BYTES); send fewer rows per request."
        )
        return Response(
            error_body("request_too_large", message),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        # Also raised by Django while DRF parses a form body (a list sent as one field
        # per element): a JSON 400 like every other, not Django's HTML page.
        message = (
            f"The form has more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} fields; send "
            "the body as JSON."
        )
        return Response(error_body("invalid", message, [field_error("", message)]), status=400)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"": exc.messages}
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = flatten_detail(exc.detail)
        message = "; ".join(f"{f['path'] or 'body'}: {f['message']}" for f in fields[:5])
        response.data = error_body("invalid", message or "Invalid input.", fields)
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail
        message = str(detail) if not isinstance(detail, dict | list) else str(exc.default_detail)
        codes = exc.get_codes()
        response.data = error_body(codes if isinstance(codes, str) else exc.default_code, message)
    return response
