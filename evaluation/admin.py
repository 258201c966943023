"""Admin for evaluation runs and scenario suites: read-only records (runs are started
through the API, and their metrics and matches are the job's). Matches are reached
through the API, not here: a run has one row per object."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from evaluation.models import (
    EvaluationRun,
    ScenarioEvaluation,
    ScenarioResult,
    ScenarioSuite,
    ScenarioTest,
)


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


class _ReadOnly(admin.ModelAdmin[Any]):
    """Scenario suites and their evaluations are made through the API (whose checks name
    the bad field); the admin shows them."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ScenarioTestInline(admin.TabularInline[ScenarioTest, ScenarioSuite]):
    model = ScenarioTest
    fields = ["name", "scope", "metric", "comparison", "threshold", "baseline", "delta"]
    readonly_fields = ["name", "scope", "metric", "comparison", "threshold", "baseline", "delta"]
    extra = 0

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ScenarioSuite)
class ScenarioSuiteAdmin(_ReadOnly):
    list_display = ["name", "dataset", "created"]
    list_select_related = ["dataset"]
    search_fields = ["name"]
    readonly_fields = ["dataset", "name", "description", "created_by", "created"]
    inlines = [ScenarioTestInline]


class ScenarioResultInline(admin.TabularInline[ScenarioResult, ScenarioEvaluation]):
    model = ScenarioResult
    fields = ["test_name", "metric", "run", "value", "required", "passed", "message"]
    readonly_fields = ["test_name", "metric", "run", "value", "required", "passed", "message"]
    extra = 0

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ScenarioEvaluation)
class ScenarioEvaluationAdmin(_ReadOnly):
    list_display = ["suite", "model", "created", "finished"]
    list_select_related = ["suite", "model"]
    readonly_fields = ["suite", "model", "job", "created_by", "created", "finished"]
    inlines = [ScenarioResultInline]
