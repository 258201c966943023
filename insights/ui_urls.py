"""URLs of the insights app's pages, beside curation's UI (same paths)."""

from __future__ import annotations

from django.urls import path

from insights import ui

app_name = "insights-ui"

DS = "datasets/<int:dataset_id>"

urlpatterns = [
    path(f"{DS}/insights/", ui.insights_page, name="page"),
    path(f"{DS}/insights/label-errors/scan", ui.label_errors_scan, name="label-errors-scan"),
    path(f"{DS}/insights/label-errors/save", ui.label_errors_save_view, name="label-errors-save"),
    path(f"{DS}/insights/uncertainty/start", ui.uncertainty_start_view, name="uncertainty-start"),
]
