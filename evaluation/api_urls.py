"""URLs of the evaluation API, mounted at /api/v1/ beside curation's."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path

from evaluation import api, scenario_api

dataset_urls: list[URLPattern | URLResolver] = [
    path("evaluations", api.EvaluationListView.as_view(), name="api-evaluations"),
    path("evaluations/compare", api.EvaluationCompareView.as_view(), name="api-evaluation-compare"),
    path("evaluations/<int:run_id>", api.EvaluationDetailView.as_view(), name="api-evaluation"),
    path(
        "evaluations/<int:run_id>/matches",
        api.EvaluationMatchListView.as_view(),
        name="api-evaluation-matches",
    ),
    path("scenario-suites", scenario_api.SuiteListView.as_view(), name="api-scenario-suites"),
    path(
        "scenario-suites/<int:suite_id>",
        scenario_api.SuiteDetailView.as_view(),
        name="api-scenario-suite",
    ),
    path(
        "scenario-suites/<int:suite_id>/tests",
        scenario_api.SuiteTestListView.as_view(),
        name="api-scenario-tests",
    ),
    path(
        "scenario-suites/<int:suite_id>/tests/<int:test_id>",
        scenario_api.SuiteTestDetailView.as_view(),
        name="api-scenario-test",
    ),
    path(
        "scenario-suites/<int:suite_id>/evaluations",
        scenario_api.SuiteEvaluationListView.as_view(),
        name="api-scenario-evaluations",
    ),
    path(
        "scenario-suites/<int:suite_id>/evaluations/<int:evaluation_id>",
        scenario_api.SuiteEvaluationDetailView.as_view(),
        name="api-scenario-evaluation",
    ),
]

urlpatterns = [path("datasets/<int:dataset_id>/", include(dataset_urls))]
