"""URLs of the insights API, mounted at /api/v1/ beside curation's."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path

from insights import api

dataset_urls: list[URLPattern | URLResolver] = [
    path("label-errors", api.CandidateListView.as_view(), name="api-label-errors"),
    path("label-errors/scans", api.ScanListView.as_view(), name="api-label-error-scans"),
    path("uncertainty", api.UncertaintyView.as_view(), name="api-uncertainty"),
]

urlpatterns = [path("datasets/<int:dataset_id>/", include(dataset_urls))]
