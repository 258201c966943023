"""URLs of the evaluation API, mounted at /api/v1/ beside curation's."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path

from evaluation import api

dataset_urls: list[URLPattern | URLResolver] = [
    path("evaluations", api.EvaluationListView.as_view(), name="api-evaluations"),
    path("evaluations/<int:run_id>", api.EvaluationDetailView.as_view(), name="api-evaluation"),
    path(
        "evaluations/<int:run_id>/matches",
        api.EvaluationMatchListView.as_view(),
        name="api-evaluation-matches",
    ),
]

urlpatterns = [path("datasets/<int:dataset_id>/", include(dataset_urls))]
