"""URLs of the evaluation app's pages, beside curation's UI (same paths)."""

from __future__ import annotations

from django.urls import path

from evaluation import suite_ui, ui

app_name = "evaluation-ui"

DS = "datasets/<int:dataset_id>"

urlpatterns = [
    path(f"{DS}/evaluations/", ui.runs_page, name="runs"),
    path(f"{DS}/evaluations/compare/", ui.compare, name="compare"),
    path(f"{DS}/evaluations/<int:run_id>/", ui.run_detail, name="run"),
]

SUITE = f"{DS}/evaluations/suites/<int:suite_id>"

urlpatterns += [
    path(f"{DS}/evaluations/suites/", suite_ui.suites_page, name="suites"),
    path(f"{DS}/evaluations/suites/new", suite_ui.suite_create, name="suite-create"),
    path(f"{SUITE}/", suite_ui.suite_page, name="suite"),
    path(f"{SUITE}/edit", suite_ui.suite_edit, name="suite-edit"),
    path(f"{SUITE}/delete", suite_ui.suite_delete, name="suite-delete"),
    path(f"{SUITE}/run", suite_ui.suite_run, name="suite-run"),
    path(f"{SUITE}/tests/new", suite_ui.test_save, name="test-create"),
    path(f"{SUITE}/tests/<int:test_id>/edit", suite_ui.test_save, name="test-edit"),
    path(f"{SUITE}/tests/<int:test_id>/delete", suite_ui.test_delete, name="test-delete"),
]
