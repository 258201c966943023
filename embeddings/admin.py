"""Admin for the embeddings models. Vectors are never shown or edited as form fields:
a 512-number text box helps nobody and NumPy arrays confuse form change detection."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from curation.admin import EstimatedCountPaginator
from embeddings.models import (
    Autotag,
    AutotagExample,
    AutotagRound,
    AutotagScore,
    DatasetSearchDefault,
    DuplicateGroup,
    DuplicateMember,
    DuplicateRun,
    Embedding,
    EmbeddingModel,
    Projection,
    ProjectionPoint,
)


@admin.register(EmbeddingModel)
class EmbeddingModelAdmin(admin.ModelAdmin[EmbeddingModel]):
    list_display = [
        "name",
        "kind",
        "architecture",
        "dimension",
        "random_weights",
        "dataset",
        "created",
    ]
    list_filter = ["kind", "random_weights"]
    search_fields = ["name", "architecture"]
    raw_id_fields = ["dataset"]
    readonly_fields = ["kind", "architecture", "weights", "dimension", "random_weights", "created"]


@admin.register(Embedding)
class EmbeddingAdmin(admin.ModelAdmin[Embedding]):
    list_display = ["id", "model", "dataset", "item", "created"]
    list_select_related = ["model", "dataset", "item"]
    list_filter = ["model"]
    raw_id_fields = ["model", "dataset", "item"]
    exclude = ["vector"]
    readonly_fields = ["model", "dataset", "item", "created"]
    paginator = EstimatedCountPaginator
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # vectors come from embedding jobs and uploads

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(DatasetSearchDefault)
class DatasetSearchDefaultAdmin(admin.ModelAdmin[DatasetSearchDefault]):
    list_display = ["dataset", "model", "updated"]
    list_select_related = ["dataset", "model"]
    raw_id_fields = ["dataset", "model"]


class DuplicateMemberInline(admin.TabularInline[DuplicateMember, DuplicateGroup]):
    model = DuplicateMember
    raw_id_fields = ["item"]
    readonly_fields = ["item", "is_representative", "same_hash", "similarity"]
    extra = 0
    can_delete = False


@admin.register(DuplicateRun)
class DuplicateRunAdmin(admin.ModelAdmin[DuplicateRun]):
    list_display = [
        "id",
        "dataset",
        "model",
        "threshold",
        "status",
        "group_count",
        "item_count",
        "finished",
    ]
    list_select_related = ["dataset", "model"]
    raw_id_fields = ["dataset", "job", "model"]
    readonly_fields = ["status", "group_count", "item_count", "created", "finished"]


@admin.register(DuplicateGroup)
class DuplicateGroupAdmin(admin.ModelAdmin[DuplicateGroup]):
    list_display = ["id", "run", "kind", "size", "representative"]
    list_select_related = ["run", "representative"]
    list_filter = ["kind"]
    raw_id_fields = ["run", "representative"]
    inlines = [DuplicateMemberInline]
    paginator = EstimatedCountPaginator
    show_full_result_count = False


@admin.register(Projection)
class ProjectionAdmin(admin.ModelAdmin[Projection]):
    """The map's projections: what was fitted, on what, and how far the job got. Made by
    the projection job only; deleting one deletes its points."""

    list_display = ["id", "dataset", "model", "method", "status", "point_count", "created"]
    list_select_related = ["dataset", "model"]
    list_filter = ["method", "status"]
    raw_id_fields = ["dataset", "model", "job"]
    readonly_fields = [f.name for f in Projection._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(ProjectionPoint)
class ProjectionPointAdmin(admin.ModelAdmin[ProjectionPoint]):
    """A projection's points (one per item: millions), for looking one up; read-only."""

    list_display = ["id", "projection", "item", "x", "y"]
    raw_id_fields = ["projection", "item"]
    readonly_fields = ["projection", "item", "x", "y"]
    paginator = EstimatedCountPaginator
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class _ReadOnlyAdmin(admin.ModelAdmin[Any]):
    """Made by the autotag services and the scoring job only: shown, never edited here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Autotag)
class AutotagAdmin(_ReadOnlyAdmin):
    """An autotag; deleting one here deletes its examples, rounds and scores."""

    list_display = ["id", "name", "dataset", "model", "scored_round", "created"]
    list_select_related = ["dataset", "model", "scored_round"]
    raw_id_fields = ["dataset", "model", "created_by", "scored_round"]


@admin.register(AutotagExample)
class AutotagExampleAdmin(_ReadOnlyAdmin):
    list_display = ["id", "autotag", "item", "positive", "round_number", "created"]
    list_select_related = ["autotag", "item"]
    raw_id_fields = ["autotag", "item", "created_by"]


@admin.register(AutotagRound)
class AutotagRoundAdmin(_ReadOnlyAdmin):
    list_display = ["id", "autotag", "number", "status", "item_count", "created"]
    list_select_related = ["autotag"]
    list_filter = ["status"]
    raw_id_fields = ["autotag", "job", "created_by"]
    exclude = ["weights"]  # the classifier's weights: one number per dimension


@admin.register(AutotagScore)
class AutotagScoreAdmin(_ReadOnlyAdmin):
    """Scores, one per item per round (millions): for looking one up."""

    list_display = ["id", "round", "item", "score"]
    raw_id_fields = ["round", "item"]
    paginator = EstimatedCountPaginator
    show_full_result_count = False
