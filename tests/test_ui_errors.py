"""Domain errors that reach a UI view become error pages with their status, never a 500."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.test import RequestFactory

from curation.errors import Conflict, CurationError, Forbidden, InvalidInput, NotFound
from curation.ui.http import html_errors

pytestmark = pytest.mark.django_db


def view_raising(error: CurationError):  # type: ignore[no-untyped-def]
    @html_errors
    def view(request: HttpRequest) -> HttpResponse:
        raise error

    return view


def request_of(user: User) -> HttpRequest:
    request = RequestFactory().get("/somewhere")
    request.user = user
    return request


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidInput("The slice's query names a slice that is gone."), 400),
        (Conflict("A slice named 'x' already exists."), 409),
    ],
)
def test_bad_input_and_conflicts_are_pages_with_their_status_and_message(
    alice: User, error: CurationError, status: int
) -> None:
    response = view_raising(error)(request_of(alice))
    assert response.status_code == status
    assert error.message.replace("'", "&#x27;") in response.content.decode()


def test_not_found_and_forbidden_stay_404_and_403(alice: User) -> None:
    with pytest.raises(Http404):
        view_raising(NotFound("Slice not found."))(request_of(alice))
    with pytest.raises(PermissionDenied):
        view_raising(Forbidden("Curators only."))(request_of(alice))
