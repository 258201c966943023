"""Actions on the grid's selection (explicit items, or every item the view matches): add
to a slice, make a slice of it, take it out of a slice, tag, untag; the reading of a
selection that other apps' actions share (selection_reference_ids: the bar's buttons
registered through curation.ui.extensions.SelectionAction); and the upload that starts a
search by image."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.urls import reverse
from django.utils.datastructures import MultiValueDict
from django.views.decorators.http import require_POST

from curation import facets, selectors, services
from curation.errors import CurationError, InvalidInput, field_error
from curation.media import image_upload_read
from curation.models import Dataset, Role, Slice, Tag
from curation.ui.forms import SelectedItemsForm, SelectionForm
from curation.ui.http import back_with_error, dataset_or_404, html_errors, next_url
from curation.ui.similarity import query_image_store
from curation.ui.state import GridState

SELECT_ALL_MAX = 100_000


class SliceChange(Protocol):
    def __call__(self, *, slice: Slice, reference_ids: Sequence[str]) -> int: ...


class TagChange(Protocol):
    def __call__(
        self, *, dataset: Dataset, name: str, reference_ids: Sequence[str]
    ) -> tuple[Tag, int]: ...


# The actions that change a slice's members or an item's tags differ only in the service
# they call and the message they leave: (service, message with {items} and {name}).
SLICE_CHANGES: dict[str, tuple[SliceChange, str]] = {
    "slice_add": (services.slice_append, "Added {items} to slice “{name}”."),
    "slice_remove": (services.slice_remove, "Removed {items} from slice “{name}”."),
}
TAG_CHANGES: dict[str, tuple[TagChange, str]] = {
    "tag": (services.tag_add, "Tagged {items} “{name}”."),
    "untag": (services.tag_remove, "Removed tag “{name}” from {items}."),
}


def _items(count: int) -> str:
    return f"{count} item" if count == 1 else f"{count} items"


def _named(name: str, message: str) -> InvalidInput:
    """A 400 naming the field, whose message reads as a sentence in the grid's flash."""
    return InvalidInput(message, fields=[field_error(name, message)])


def _selected_reference_ids(dataset: Dataset, data: dict[str, Any]) -> list[str]:
    if (data.get("scope") or "ids") == "view":
        params: QueryDict = QueryDict(data.get("view") or "")
        base_slice = None
        if params.get("in_slice"):
            base_slice = selectors.slice_of(dataset=dataset, slice_id=params["in_slice"])
            params = params.copy()
            params.pop("in_slice")
        state = GridState(params, dataset=dataset, base_slice=base_slice)
        refs = selectors.items_reference_ids(state.items(), most=SELECT_ALL_MAX)
        if len(refs) > SELECT_ALL_MAX:
            raise _named(
                "view",
                f"“Select all” works on up to {SELECT_ALL_MAX:,} items; narrow the view first.",
            )
        return refs
    ids = data["ids"]
    found = selectors.item_reference_ids(dataset=dataset, item_ids=ids)
    missing = [i for i in ids if i not in found]
    if missing:
        raise _named(
            "ids", f"{len(missing)} selected items are not in this dataset (e.g. id {missing[0]})."
        )
    return [found[i] for i in ids]


def selection_reference_ids(dataset: Dataset, data: MultiValueDict[str, Any]) -> list[str]:
    """The reference ids of the selection the bar's fields name (`ids`, or `scope=view`
    and `view`), in the order selected; a 400 naming the field when they name none, or
    items of another dataset. For the views of the bar's registered actions."""
    form = SelectedItemsForm(data)
    if not form.is_valid():
        name, errors = next(iter(form.errors.items()))
        raise _named(name, str(errors[0]))
    return _selected_reference_ids(dataset, form.cleaned_data)


def _apply(request: HttpRequest, dataset: Dataset, data: dict[str, Any], refs: list[str]) -> str:
    """Run the selection's action; the message that says what it did."""
    action, name = data["action"], (data.get("name") or "").strip()
    if action == "slice_create":
        created, added = services.slice_create(
            dataset=dataset, user=request.user, name=name, reference_ids=refs
        )
        return f"Created slice “{created.name}” with {_items(added)}."
    if action in SLICE_CHANGES:
        change, text = SLICE_CHANGES[action]
        target = selectors.slice_of(dataset=dataset, slice_id=data["slice"])
        changed = change(slice=target, reference_ids=refs)
        return text.format(items=_items(changed), name=target.name)
    tag_change, text = TAG_CHANGES[action]
    tag, changed = tag_change(dataset=dataset, name=name, reference_ids=refs)
    return text.format(items=_items(changed), name=tag.name)


@require_POST
@login_required
@html_errors
def selection_apply(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """Add the selection to a slice, make a slice of it, take it out of one, tag or untag it."""
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    fallback = reverse("ui:grid", args=[dataset.pk])
    form = SelectionForm(request.POST)
    if not form.is_valid():
        problems = "; ".join(str(e) for errors in form.errors.values() for e in errors)
        return back_with_error(request, fallback, problems)
    try:
        refs = _selected_reference_ids(dataset, form.cleaned_data)
        messages.success(request, _apply(request, dataset, form.cleaned_data, refs))
    except CurationError as exc:
        return back_with_error(request, fallback, exc)
    facets.summary_forget(dataset)
    return HttpResponseRedirect(next_url(request, fallback))


@require_POST
@login_required
@html_errors
def search_image(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """Keep an uploaded query image and show the items that look like it."""
    dataset = dataset_or_404(request, dataset_id)
    base = reverse("ui:grid", args=[dataset.pk])
    upload = request.FILES.get("image")
    if upload is None:
        return back_with_error(request, base, "Pick an image file to search by.")
    try:
        digest = query_image_store(dataset=dataset, data=image_upload_read(upload))
    except CurationError as exc:
        return back_with_error(request, base, exc)
    state = GridState(QueryDict(request.POST.get("view", "")), dataset=dataset)
    target = next_url(request, base).split("?")[0]
    return HttpResponseRedirect(
        state.refilter(target, {"image": digest, "text": None, "like": None})
    )
