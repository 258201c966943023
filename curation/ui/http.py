"""What every UI view shares: domain errors as HTTP errors, access checks, safe redirects."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme

from curation.access import dataset_for
from curation.errors import CurationError, Forbidden, NotFound
from curation.models import Dataset, Role

View = TypeVar("View", bound=Callable[..., HttpResponse])


def html_errors(view: View) -> View:
    """Turn NotFound into a 404 page, Forbidden into a 403 page, and any other domain error
    (bad input, a conflict) into an error page with its status and message."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except NotFound as exc:
            raise Http404(exc.message) from None
        except Forbidden as exc:
            raise PermissionDenied(exc.message) from None
        except CurationError as exc:
            context = {"message": exc.message, "fields": exc.fields}
            return render(request, "ui/error.html", context, status=exc.status_code)

    return cast(View, wrapped)


def dataset_or_404(
    request: HttpRequest, dataset_id: int | str, needed: str = Role.VIEWER
) -> Dataset:
    """The dataset if the user holds `needed` on it (see curation.access.dataset_for)."""
    return dataset_for(request.user, dataset_id, needed)


def next_url(request: HttpRequest, fallback: str) -> str:
    """The `next` field of a form when it points back into this site, else `fallback`."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


def back_with_error(
    request: HttpRequest, fallback: str, error: CurationError | str
) -> HttpResponse:
    """Redirect to where the form came from, with the error shown at the top of the page."""
    messages.error(request, error.message if isinstance(error, CurationError) else error)
    return HttpResponseRedirect(next_url(request, fallback))


def form_errors_from(form: Any, error: CurationError) -> None:
    """Show a service's field errors on the form fields they name (others on the form)."""
    named = False
    for field in error.fields:
        name = field.get("path", "").split(".")[-1].split("[")[0]
        if name in form.fields:
            form.add_error(name, field["message"])
            named = True
    if not named:
        form.add_error(None, error.message)
