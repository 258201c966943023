"""URLs of the insights API, mounted at /api/v1/ beside curation's."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path

from insights import api
from insights import label_error_api as errors

dataset_urls: list[URLPattern | URLResolver] = [
    path("insights/scores", api.ScoresView.as_view(), name="api-insights-scores"),
    path("insights/leaks", api.LeaksView.as_view(), name="api-insights-leaks"),
    path("insights/leaks/remove", api.LeaksRemoveView.as_view(), name="api-insights-leaks-remove"),
    path("label-errors", errors.CandidateListView.as_view(), name="api-label-errors"),
    path("label-errors/scans", errors.ScanListView.as_view(), name="api-label-error-scans"),
    path("uncertainty", errors.UncertaintyView.as_view(), name="api-uncertainty"),
]

urlpatterns = [path("datasets/<int:dataset_id>/", include(dataset_urls))]
