"""URLs of the REST API, mounted at /api/v1/. Paths have no trailing slash."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path

from curation.api import annotations as annotation_views
from curation.api import (
    datasets,
    exports,
    history,
    items,
    jobs,
    predictions,
    records,
    slices,
    tags,
    tokens,
    versions,
)

slice_urls: list[URLPattern | URLResolver] = [
    path("append", slices.SliceAppendView.as_view(), name="api-slice-append"),
    path("remove", slices.SliceRemoveView.as_view(), name="api-slice-remove"),
    path("items", slices.SliceItemsView.as_view(), name="api-slice-items"),
    path("query", slices.SliceQueryView.as_view(), name="api-slice-query"),
    path("records", records.SliceRecordsView.as_view(), name="api-slice-records"),
    path("export", exports.SliceExportView.as_view(), name="api-slice-export"),
    path("versions", versions.VersionListView.as_view(), name="api-slice-versions"),
    path("versions/diff", versions.VersionDiffView.as_view(), name="api-slice-versions-diff"),
    path("versions/<int:number>", versions.VersionDetailView.as_view(), name="api-slice-version"),
    path(
        "versions/<int:number>/restore",
        versions.VersionRestoreView.as_view(),
        name="api-slice-version-restore",
    ),
    path(
        "versions/<int:number>/items",
        records.VersionItemsView.as_view(),
        name="api-slice-version-items",
    ),
]

dataset_urls: list[URLPattern | URLResolver] = [
    path("members", datasets.MemberListView.as_view(), name="api-members"),
    path("members/<int:user_id>", datasets.MemberDetailView.as_view(), name="api-member"),
    path("items", items.ItemListView.as_view(), name="api-items"),
    path("query/check", items.QueryCheckView.as_view(), name="api-query-check"),
    path("items/bulk", items.ItemsBulkView.as_view(), name="api-items-bulk"),
    path("items/delete", items.ItemsDeleteView.as_view(), name="api-items-delete"),
    path("items/<int:item_id>", items.ItemDetailView.as_view(), name="api-item"),
    path(
        "items/<int:item_id>/annotations",
        items.ItemAnnotationsView.as_view(),
        name="api-item-annotations",
    ),
    path("items/<int:item_id>/history", history.ItemHistoryView.as_view(), name="api-item-history"),
    path("history", history.DatasetHistoryView.as_view(), name="api-history"),
    path(
        "history/<int:change_id>/revert",
        history.ChangeRevertView.as_view(),
        name="api-history-revert",
    ),
    path("annotations/bulk", items.AnnotationsBulkView.as_view(), name="api-annotations-bulk"),
    path(
        "annotations/delete", items.AnnotationsDeleteView.as_view(), name="api-annotations-delete"
    ),
    path(
        "annotations/<int:annotation_pk>",
        annotation_views.AnnotationDetailView.as_view(),
        name="api-annotation",
    ),
    path("models", predictions.ModelListView.as_view(), name="api-models"),
    path("models/<int:model_id>", predictions.ModelDetailView.as_view(), name="api-model"),
    path(
        "models/<int:model_id>/predictions/bulk",
        predictions.PredictionsBulkView.as_view(),
        name="api-predictions-bulk",
    ),
    path("slices", slices.SliceListView.as_view(), name="api-slices"),
    path("slices/from-query", slices.SliceFromQueryView.as_view(), name="api-slices-from-query"),
    path("slices/from-items", slices.SliceFromItemsView.as_view(), name="api-slices-from-items"),
    path("slices/combine", slices.SliceCombineView.as_view(), name="api-slices-combine"),
    path("slices/sample", slices.SliceSampleView.as_view(), name="api-slices-sample"),
    path("slices/<int:slice_id>", slices.SliceDetailView.as_view(), name="api-slice"),
    path("slices/<int:slice_id>/", include(slice_urls)),
    path("tags", tags.TagListView.as_view(), name="api-tags"),
    path("tags/add", tags.TagAddView.as_view(), name="api-tags-add"),
    path("tags/remove", tags.TagRemoveView.as_view(), name="api-tags-remove"),
    path("tags/add-matching", tags.TagAddMatchingView.as_view(), name="api-tags-add-matching"),
    path(
        "tags/remove-matching",
        tags.TagRemoveMatchingView.as_view(),
        name="api-tags-remove-matching",
    ),
    path("tags/<int:tag_id>", tags.TagDetailView.as_view(), name="api-tag"),
    path("jobs", jobs.JobListView.as_view(), name="api-jobs"),
    path("jobs/<int:job_id>", jobs.JobDetailView.as_view(), name="api-job"),
    path("jobs/<int:job_id>/cancel", jobs.JobCancelView.as_view(), name="api-job-cancel"),
    path("ingest", jobs.IngestView.as_view(), name="api-ingest"),
    path("quality/jobs", jobs.QualityJobView.as_view(), name="api-quality-jobs"),
    path("export", exports.DatasetExportView.as_view(), name="api-dataset-export"),
    path("exports", exports.ExportJobListView.as_view(), name="api-exports"),
    path(
        "exports/<int:job_id>/download",
        exports.ExportDownloadView.as_view(),
        name="api-export-download",
    ),
]

urlpatterns = [
    path("tokens", tokens.TokenListView.as_view(), name="api-tokens"),
    path("tokens/<int:token_id>", tokens.TokenDetailView.as_view(), name="api-token"),
    path("datasets", datasets.DatasetListView.as_view(), name="api-datasets"),
    path("datasets/<int:dataset_id>", datasets.DatasetDetailView.as_view(), name="api-dataset"),
    path("datasets/<int:dataset_id>/", include(dataset_urls)),
]
