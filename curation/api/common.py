"""What every API view shares: error responses and auth in the schema, input checks, integer
query parameters, the schema of views that share a base."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.serializers import Serializer

from curation.annotations import Source
from curation.history import change_context
from curation.history.models import ChangeSource
from curation.params import int_value
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


_View = TypeVar("_View", bound=Callable[..., Any])


def post_schema(**kwargs: Any) -> Callable[[_View], _View]:
    """The schema of a POST that a view inherits from a base it shares with others
    (`kwargs` as for extend_schema): such views differ in their service and their docs."""
    return extend_schema_view(post=extend_schema(**kwargs))


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


def validated(serializer_class: type[Serializer[Any]], data: Any) -> dict[str, Any]:
    """`data` checked by `serializer_class`: its validated data, or a 400 naming each field."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def int_param(
    request: Request,
    name: str,
    *,
    default: int | None,
    low: int,
    high: int | None = None,
    capped: bool = False,
    message: str | None = None,
) -> int:
    """Query parameter `name` as a whole number from `low` to `high` (None: no bound), or
    `default` when it is absent (None: it is required); anything else is a 400 naming it.
    With `capped`, numbers above `high` count as `high` instead."""
    raw = request.query_params.get(name)
    if raw is None and default is not None:
        return default
    return int_value(raw, name, low=low, high=high, capped=capped, message=message)


# The item view's editor (curation/static/curation/editor.js) saves through the annotation
# endpoints and says so with this header, for the annotation history's "through what".
SOURCE_HEADER = "X-Nucleus-Source"


def source_of(request: Request) -> Source:
    """Through what a write came: the item view's editor (a session, with the header), or
    the API (anything else: a token, a script)."""
    browser = isinstance(request.successful_authenticator, SessionAuthentication)
    return "editor" if browser and request.headers.get(SOURCE_HEADER) == "editor" else "api"


def api_change(request: Request) -> AbstractContextManager[None]:
    """Annotation writes in this block are recorded as made by the request's user through
    the API (curation.history)."""
    return change_context(user=request.user, source=ChangeSource.API)
