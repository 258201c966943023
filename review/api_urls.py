"""URLs of the review API, mounted at /api/v1/ beside curation's."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path

from review import api

Q = "review/queues/<int:queue_id>"

dataset_urls: list[URLPattern | URLResolver] = [
    path("review/queues", api.QueueListView.as_view(), name="api-review-queues"),
    path(Q, api.QueueDetailView.as_view(), name="api-review-queue"),
    path(f"{Q}/claim", api.ClaimView.as_view(), name="api-review-claim"),
    path(f"{Q}/entries", api.EntryListView.as_view(), name="api-review-entries"),
    path(f"{Q}/entries/<int:entry_id>", api.EntryDetailView.as_view(), name="api-review-entry"),
    path(f"{Q}/entries/<int:entry_id>/decide", api.DecideView.as_view(), name="api-review-decide"),
    path(f"{Q}/undo", api.UndoView.as_view(), name="api-review-undo"),
    path(f"{Q}/stats", api.StatsView.as_view(), name="api-review-stats"),
    path("review/reasons", api.ReasonListView.as_view(), name="api-review-reasons"),
]

urlpatterns = [path("datasets/<int:dataset_id>/", include(dataset_urls))]
