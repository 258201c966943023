"""URLs of the selection app's page, beside curation's UI (same paths)."""

from __future__ import annotations

from django.urls import path

from selection import ui

app_name = "selection-ui"

urlpatterns = [
    path("datasets/<int:dataset_id>/select/", ui.builder, name="builder"),
]
