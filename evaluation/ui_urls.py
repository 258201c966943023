"""URLs of the evaluation app's pages, beside curation's UI (same paths)."""

from __future__ import annotations

from django.urls import path

from evaluation import ui

app_name = "evaluation-ui"

DS = "datasets/<int:dataset_id>"

urlpatterns = [
    path(f"{DS}/evaluations/", ui.runs_page, name="runs"),
    path(f"{DS}/evaluations/compare/", ui.compare, name="compare"),
    path(f"{DS}/evaluations/<int:run_id>/", ui.run_detail, name="run"),
]
