"""URLs of the selection API, mounted at /api/v1/ beside curation's."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path

from selection import api

dataset_urls: list[URLPattern | URLResolver] = [
    path("selections", api.SelectionListView.as_view(), name="api-selections"),
    path("selections/preview", api.SelectionPreviewView.as_view(), name="api-selections-preview"),
    path(
        "selections/<int:selection_id>",
        api.SelectionDetailView.as_view(),
        name="api-selection",
    ),
]

urlpatterns = [path("datasets/<int:dataset_id>/", include(dataset_urls))]
