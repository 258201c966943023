"""URLs of the review app's pages, beside curation's UI (same paths)."""

from __future__ import annotations

from django.urls import path

from review import ui

app_name = "review-ui"

DS = "datasets/<int:dataset_id>"
Q = f"{DS}/review/<int:queue_id>"

urlpatterns = [
    path(f"{DS}/review/", ui.queues_page, name="queues"),
    path(f"{DS}/review/create", ui.queue_create_view, name="create"),
    path(f"{DS}/review/from-selection", ui.queue_from_selection, name="from-selection"),
    path(f"{DS}/review/reasons", ui.reason_add_view, name="reason-add"),
    path(f"{Q}/", ui.queue_page, name="queue"),
    path(f"{Q}/claim", ui.claim_view, name="claim"),
    path(f"{Q}/undo", ui.undo_view, name="undo"),
    path(f"{Q}/delete", ui.queue_delete_view, name="delete"),
    path(f"{Q}/entries/<int:entry_id>/", ui.entry_page, name="entry"),
    path(f"{Q}/entries/<int:entry_id>/decide", ui.decide_view, name="decide"),
]
