"""URLs of the insights app's pages, beside curation's UI (same paths)."""

from __future__ import annotations

from django.urls import path

from insights import label_error_ui as errors
from insights import ui

app_name = "insights-ui"

DS = "datasets/<int:dataset_id>"

urlpatterns = [
    path(f"{DS}/insights/", ui.insights_page, name="page"),
    path(f"{DS}/insights/scores/start", ui.scores_start, name="scores-start"),
    path(f"{DS}/insights/leaks/start", ui.leaks_start, name="leaks-start"),
    path(f"{DS}/insights/leaks/remove", ui.leaks_remove_side, name="leaks-remove"),
    path(
        f"{DS}/insights/label-errors/scan",
        errors.label_errors_scan,
        name="label-errors-scan",
    ),
    path(
        f"{DS}/insights/label-errors/save",
        errors.label_errors_save_view,
        name="label-errors-save",
    ),
    path(
        f"{DS}/insights/uncertainty/start",
        errors.uncertainty_start_view,
        name="uncertainty-start",
    ),
]
