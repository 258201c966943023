"""Admin for every curation model, built to stay fast at millions of items.

Foreign keys use raw-id widgets (no <select> of a million items), changelists select
their related rows in the same query, skip the full COUNT(*) of a filtered list, and
estimate the size of a large unfiltered table from PostgreSQL's statistics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connection, models
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.functional import cached_property

from curation.errors import Conflict
from curation.history.models import AnnotationChange, AnnotationEvent
from curation.jobs import job_cancel
from curation.models import (
    Annotation,
    ApiToken,
    Dataset,
    Item,
    ItemTag,
    Job,
    Membership,
    Model,
    Prediction,
    Slice,
    SliceItem,
    SliceVersion,
    SliceVersionItem,
    Tag,
)
from curation.services import dataset_delete, token_create

if TYPE_CHECKING:
    # The stubs' name for what get_fields returns (field names, or groups of them).
    from django.contrib.admin.options import _FieldGroups

_M = TypeVar("_M", bound=models.Model)


class EstimatedCountPaginator(Paginator[models.Model]):
    """Counts exactly, except an unfiltered large table: then the planner's estimate."""

    # Below this many rows an exact COUNT(*) is cheap enough.
    exact_below = 100_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if isinstance(queryset, QuerySet) and not queryset.query.where:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                    [queryset.model._meta.db_table],
                )
                row = cursor.fetchone()
            # reltuples is -1 for a table never analysed: fall back to counting.
            if row is not None and row[0] >= self.exact_below:
                return int(row[0])
        return super().count


class FastAdmin(admin.ModelAdmin[_M]):
    show_full_result_count = False
    list_per_page = 100
    paginator = EstimatedCountPaginator
    # Exact, case-sensitive matches on these fields; icontains would scan every row.
    exact_search_fields: tuple[str, ...] = ()

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[_M], search_term: str
    ) -> tuple[QuerySet[_M], bool]:
        term = search_term.strip()
        if not self.exact_search_fields or not term:
            return super().get_search_results(request, queryset, search_term)
        condition = Q()
        for field in self.exact_search_fields:
            condition |= Q(**{field: term})
        return queryset.filter(condition), False


class MembershipInline(admin.TabularInline[Membership, Dataset]):
    model = Membership
    raw_id_fields = ["user"]
    extra = 0


@admin.register(Dataset)
class DatasetAdmin(FastAdmin[Dataset]):
    list_display = ["id", "name", "owner", "created", "updated"]
    list_select_related = ["owner"]
    search_fields = ["name"]
    raw_id_fields = ["owner"]
    inlines = [MembershipInline]

    def get_deleted_objects(
        self, objs: Any, request: HttpRequest
    ) -> tuple[list[Any], dict[str, int], set[str], list[Any]]:
        # Django's default lists every row a delete cascades to: millions for a big
        # dataset. Count them per model instead.
        ids = [dataset.pk for dataset in objs]
        counts = {
            Item: Item.objects.filter(dataset__in=ids).count(),
            Annotation: Annotation.objects.filter(dataset__in=ids).count(),
            Model: Model.objects.filter(dataset__in=ids).count(),
            Prediction: Prediction.objects.filter(model__dataset__in=ids).count(),
            Slice: Slice.objects.filter(dataset__in=ids).count(),
            Tag: Tag.objects.filter(dataset__in=ids).count(),
            Job: Job.objects.filter(dataset__in=ids).count(),
            Membership: Membership.objects.filter(dataset__in=ids).count(),
        }
        model_count = {str(Dataset._meta.verbose_name_plural): len(ids)}
        model_count |= {str(m._meta.verbose_name_plural): n for m, n in counts.items() if n}
        perms_needed = {
            str(m._meta.verbose_name)
            for m, n in counts.items()
            if n and not request.user.has_perm(f"curation.delete_{m._meta.model_name}")
        }
        return [f"Dataset: {dataset}" for dataset in objs], model_count, perms_needed, []

    def delete_model(self, request: HttpRequest, obj: Dataset) -> None:
        dataset_delete(dataset=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Dataset]) -> None:
        for dataset in queryset:
            dataset_delete(dataset=dataset)


@admin.register(Membership)
class MembershipAdmin(FastAdmin[Membership]):
    list_display = ["id", "dataset", "user", "role", "created"]
    list_select_related = ["dataset", "user"]
    list_filter = ["role"]
    raw_id_fields = ["dataset", "user"]


@admin.register(Item)
class ItemAdmin(FastAdmin[Item]):
    list_display = ["id", "reference_id", "dataset", "width", "height", "byte_size", "created"]
    list_select_related = ["dataset"]
    list_filter = ["dataset"]
    search_fields = ["reference_id"]
    exact_search_fields = ("reference_id", "sha256")
    search_help_text = "Exact reference_id or SHA-256."
    raw_id_fields = ["dataset"]
    # Written by ingest from the stored bytes; editing them by hand would break media.
    readonly_fields = [
        "media_key",
        "thumbnail_key",
        "sha256",
        "byte_size",
        "width",
        "height",
        "created",
        "updated",
    ]


@admin.register(Annotation)
class AnnotationAdmin(FastAdmin[Annotation]):
    list_display = ["id", "annotation_id", "kind", "label", "item", "dataset"]
    list_select_related = ["item", "dataset"]
    list_filter = ["kind"]
    search_fields = ["annotation_id"]
    exact_search_fields = ("annotation_id", "label")
    search_help_text = "Exact annotation id or label."
    raw_id_fields = ["dataset", "item"]


@admin.register(Model)
class ModelAdmin(FastAdmin[Model]):
    list_display = ["id", "name", "dataset", "created"]
    list_select_related = ["dataset"]
    search_fields = ["name"]
    raw_id_fields = ["dataset"]


@admin.register(Prediction)
class PredictionAdmin(FastAdmin[Prediction]):
    list_display = ["id", "prediction_id", "kind", "label", "confidence", "model", "item"]
    list_select_related = ["model", "item"]
    list_filter = ["kind"]
    search_fields = ["prediction_id"]
    exact_search_fields = ("prediction_id", "label")
    search_help_text = "Exact prediction id or label."
    raw_id_fields = ["model", "item"]


@admin.register(Slice)
class SliceAdmin(FastAdmin[Slice]):
    list_display = ["id", "name", "dataset", "created_by", "created"]
    list_select_related = ["dataset", "created_by"]
    search_fields = ["name"]
    raw_id_fields = ["dataset", "created_by"]


@admin.register(SliceItem)
class SliceItemAdmin(FastAdmin[SliceItem]):
    list_display = ["id", "slice", "item", "added"]
    list_select_related = ["slice", "item"]
    raw_id_fields = ["slice", "item"]


@admin.register(SliceVersion)
class SliceVersionAdmin(FastAdmin[SliceVersion]):
    """Versions are immutable: shown, never edited here."""

    list_display = ["id", "slice", "number", "item_count", "annotation_count", "created"]
    list_select_related = ["slice"]
    raw_id_fields = ["slice", "created_by"]

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_add_permission(self, request: Any) -> bool:
        return False


@admin.register(SliceVersionItem)
class SliceVersionItemAdmin(FastAdmin[SliceVersionItem]):
    list_display = ["id", "version", "reference_id", "item_id"]
    list_select_related = ["version", "version__slice"]
    raw_id_fields = ["version"]

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_add_permission(self, request: Any) -> bool:
        return False


@admin.register(Tag)
class TagAdmin(FastAdmin[Tag]):
    list_display = ["id", "name", "dataset", "created"]
    list_select_related = ["dataset"]
    search_fields = ["name"]
    raw_id_fields = ["dataset"]


@admin.register(ItemTag)
class ItemTagAdmin(FastAdmin[ItemTag]):
    list_display = ["id", "tag", "item", "added"]
    list_select_related = ["tag", "item"]
    raw_id_fields = ["tag", "item"]


@admin.register(Job)
class JobAdmin(FastAdmin[Job]):
    """Jobs are read-only here: workers own their progress; the only action is cancel."""

    list_display = [
        "id",
        "kind",
        "dataset",
        "status",
        "progress",
        "error_count",
        "attempts",
        "created",
        "finished",
    ]
    list_select_related = ["dataset", "created_by"]
    list_filter = ["status", "kind"]
    actions = ["cancel_jobs"]

    @admin.display(description="progress")
    def progress(self, job: Job) -> str:
        if job.progress_total is None:
            return str(job.progress_done)
        return f"{job.progress_done} / {job.progress_total}"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        return False

    @admin.action(description="Cancel selected jobs", permissions=["view"])
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        cancelled, skipped = 0, 0
        for job in queryset:
            try:
                job_cancel(job=job)
            except Conflict:
                skipped += 1
            else:
                cancelled += 1
        self.message_user(request, f"Cancelled {cancelled} job(s); {skipped} had already finished.")


@admin.register(ApiToken)
class ApiTokenAdmin(FastAdmin[ApiToken]):
    """Tokens are stored hashed: the secret is shown once, on the page after adding."""

    list_display = ["id", "name", "user", "prefix", "created", "last_used"]
    list_select_related = ["user"]
    search_fields = ["name", "prefix"]
    raw_id_fields = ["user"]
    created_template = "admin/curation/apitoken/token_created.html"

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> _FieldGroups:
        if obj is None:
            return ["user", "name"]
        return ["user", "name", "prefix", "key_hash", "created", "last_used"]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list[str]:
        if obj is None:
            return []
        return ["user", "prefix", "key_hash", "created", "last_used"]

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        token, secret = token_create(user=obj.user, name=obj.name)
        # The admin goes on with `obj` (log entry, response): make it the created token.
        obj.__dict__.update({k: v for k, v in token.__dict__.items() if k != "_state"})
        obj._state.adding = False
        obj._secret_once = secret  # type: ignore[attr-defined]

    def response_add(
        self, request: HttpRequest, obj: ApiToken, post_url_continue: str | None = None
    ) -> HttpResponse:
        # Render the secret in this response instead of a flash message, so it never
        # sits in a cookie or the session.
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "API token created",
            "token": obj,
            "secret": obj._secret_once,  # type: ignore[attr-defined]
        }
        # Admin views are never_cache, so this page is not stored by the browser either.
        return TemplateResponse(request, self.created_template, context)


class _HistoryAdmin(FastAdmin[_M]):
    """The annotation history is written by the database's triggers only
    (curation.history): shown here, never added, changed or deleted by hand."""

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(AnnotationEvent)
class AnnotationEventAdmin(_HistoryAdmin[AnnotationEvent]):
    list_display = ["id", "dataset", "user", "source", "job_id", "entry_id", "created"]
    list_select_related = ["dataset", "user"]
    list_filter = ["source"]
    raw_id_fields = ["dataset", "user"]


@admin.register(AnnotationChange)
class AnnotationChangeAdmin(_HistoryAdmin[AnnotationChange]):
    list_display = ["id", "event", "dataset", "annotation_id", "item_id", "action"]
    list_select_related = ["event", "dataset"]
    list_filter = ["action"]
    raw_id_fields = ["event", "dataset"]
