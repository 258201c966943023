"""The item page's History panel (what each change did, summarised) and its Revert form."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from curation.errors import CurationError
from curation.history import selectors as history
from curation.history.services import annotation_change_revert
from curation.models import Item, Role
from curation.ui.http import dataset_or_404, html_errors, next_url

MAX_ROWS = 50


@dataclass(frozen=True)
class HistoryRow:
    """One change as the panel shows it."""

    change_id: int
    action: str
    annotation_id: str
    before: str  # "" where the annotation did not exist
    after: str
    user: str
    source: str
    at: datetime
    reverts: int | None
    revertible: bool  # the annotation's latest change: a curator may revert it


def summary(state: dict[str, Any] | None) -> str:
    """An annotation's state in a few words: label, kind and, for a box, where it is."""
    if state is None:
        return ""
    text = f"{state.get('label', '')} ({state.get('kind', '')})"
    geometry = state.get("geometry") or {}
    if state.get("kind") == "box" and all(k in geometry for k in ("x", "y", "width", "height")):
        text += (
            f" at {geometry['x']:.0f},{geometry['y']:.0f}"
            f" {geometry['width']:.0f}x{geometry['height']:.0f}"
        )
    return text


def history_rows(item: Item) -> list[HistoryRow]:
    """The item's latest annotation changes, newest first."""
    rows = []
    for change in history.item_history(item=item, limit=MAX_ROWS):
        event = change.event
        rows.append(
            HistoryRow(
                change_id=change.pk,
                action=change.action,
                annotation_id=change.annotation_id,
                before=summary(change.before),
                after=summary(history.after_of(change)),
                user=event.user.get_username() if event.user else "—",
                source=event.source,
                at=event.created,
                reverts=event.reverts_id,
                revertible=bool(change.is_latest),  # type: ignore[attr-defined]
            )
        )
    return rows


@require_POST
@login_required
@html_errors
def change_revert(request: HttpRequest, dataset_id: int, change_id: int) -> HttpResponse:
    """Revert one annotation change, then go back to the page the form was on."""
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    change = history.change_of(dataset=dataset, change_id=change_id)
    fallback = reverse("ui:item", args=[dataset.pk, change.item_id])
    try:
        annotation_change_revert(change=change, user=request.user)
    except CurationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Change {change.pk} to {change.annotation_id} reverted.")
    return HttpResponseRedirect(next_url(request, fallback))
