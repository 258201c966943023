"""Admin for evaluation runs: read-only records (runs are started through the API, and
their metrics and matches are the job's). Matches are reached through the API, not here:
a run has one row per object."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from evaluation.models import EvaluationRun


@admin.register(EvaluationRun)
class EvaluationRunAdmin(admin.ModelAdmin[EvaluationRun]):
    list_display = ["name", "dataset", "model", "task", "created", "finished"]
    list_select_related = ["dataset", "model"]
    list_filter = ["task"]
    search_fields = ["name"]
    raw_id_fields = ["dataset", "model", "slice", "version", "job", "created_by"]
    readonly_fields = [
        "dataset",
        "model",
        "name",
        "task",
        "options",
        "scope",
        "slice",
        "version",
        "job",
        "metrics",
        "warnings",
        "counts",
        "created_by",
        "created",
        "finished",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a run is started through the API, which queues its job

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
