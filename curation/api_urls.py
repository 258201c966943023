"""URLs of the REST API, mounted at /api/v1/. Paths have no trailing slash."""

from __future__ import annotations

from django.urls import path

from curation.api import datasets, items, jobs, predictions, slices, tags, tokens

DS = "datasets/<int:dataset_id>"

urlpatterns = [
    path("tokens", tokens.TokenListView.as_view(), name="api-tokens"),
    path("tokens/<int:token_id>", tokens.TokenDetailView.as_view(), name="api-token"),
    path("datasets", datasets.DatasetListView.as_view(), name="api-datasets"),
    path(DS, datasets.DatasetDetailView.as_view(), name="api-dataset"),
    path(f"{DS}/members", datasets.MemberListView.as_view(), name="api-members"),
    path(f"{DS}/members/<int:user_id>", datasets.MemberDetailView.as_view(), name="api-member"),
    path(f"{DS}/items", items.ItemListView.as_view(), name="api-items"),
    path(f"{DS}/items/bulk", items.ItemsBulkView.as_view(), name="api-items-bulk"),
    path(f"{DS}/items/delete", items.ItemsDeleteView.as_view(), name="api-items-delete"),
    path(f"{DS}/items/<int:item_id>", items.ItemDetailView.as_view(), name="api-item"),
    path(
        f"{DS}/items/<int:item_id>/annotations",
        items.ItemAnnotationsView.as_view(),
        name="api-item-annotations",
    ),
    path(
        f"{DS}/annotations/bulk", items.AnnotationsBulkView.as_view(), name="api-annotations-bulk"
    ),
    path(
        f"{DS}/annotations/delete",
        items.AnnotationsDeleteView.as_view(),
        name="api-annotations-delete",
    ),
    path(f"{DS}/models", predictions.ModelListView.as_view(), name="api-models"),
    path(f"{DS}/models/<int:model_id>", predictions.ModelDetailView.as_view(), name="api-model"),
    path(
        f"{DS}/models/<int:model_id>/predictions/bulk",
        predictions.PredictionsBulkView.as_view(),
        name="api-predictions-bulk",
    ),
    path(f"{DS}/slices", slices.SliceListView.as_view(), name="api-slices"),
    path(f"{DS}/slices/<int:slice_id>", slices.SliceDetailView.as_view(), name="api-slice"),
    path(
        f"{DS}/slices/<int:slice_id>/append",
        slices.SliceAppendView.as_view(),
        name="api-slice-append",
    ),
    path(
        f"{DS}/slices/<int:slice_id>/remove",
        slices.SliceRemoveView.as_view(),
        name="api-slice-remove",
    ),
    path(
        f"{DS}/slices/<int:slice_id>/items", slices.SliceItemsView.as_view(), name="api-slice-items"
    ),
    path(f"{DS}/tags", tags.TagListView.as_view(), name="api-tags"),
    path(f"{DS}/tags/add", tags.TagAddView.as_view(), name="api-tags-add"),
    path(f"{DS}/tags/remove", tags.TagRemoveView.as_view(), name="api-tags-remove"),
    path(f"{DS}/tags/<int:tag_id>", tags.TagDetailView.as_view(), name="api-tag"),
    path(f"{DS}/jobs", jobs.JobListView.as_view(), name="api-jobs"),
    path(f"{DS}/jobs/<int:job_id>", jobs.JobDetailView.as_view(), name="api-job"),
    path(f"{DS}/jobs/<int:job_id>/cancel", jobs.JobCancelView.as_view(), name="api-job-cancel"),
    path(f"{DS}/ingest", jobs.IngestView.as_view(), name="api-ingest"),
]

# Slice versions, dynamic slices, set operations, samples, tagging by query, and exports
# (curation/api/versions.py and curation/api/exports.py).
from curation.api import exports, versions  # noqa: E402

SL = f"{DS}/slices/<int:slice_id>"
urlpatterns += [
    path(
        f"{DS}/slices/from-query",
        versions.SliceFromQueryView.as_view(),
        name="api-slices-from-query",
    ),
    path(
        f"{DS}/slices/from-items",
        versions.SliceFromItemsView.as_view(),
        name="api-slices-from-items",
    ),
    path(f"{DS}/slices/combine", versions.SliceCombineView.as_view(), name="api-slices-combine"),
    path(f"{DS}/slices/sample", versions.SliceSampleView.as_view(), name="api-slices-sample"),
    path(f"{SL}/query", versions.SliceQueryView.as_view(), name="api-slice-query"),
    path(f"{SL}/records", versions.SliceRecordsView.as_view(), name="api-slice-records"),
    path(f"{SL}/versions", versions.VersionListView.as_view(), name="api-slice-versions"),
    path(f"{SL}/versions/diff", versions.VersionDiffView.as_view(), name="api-slice-versions-diff"),
    path(
        f"{SL}/versions/<int:number>",
        versions.VersionDetailView.as_view(),
        name="api-slice-version",
    ),
    path(
        f"{SL}/versions/<int:number>/restore",
        versions.VersionRestoreView.as_view(),
        name="api-slice-version-restore",
    ),
    path(
        f"{SL}/versions/<int:number>/items",
        versions.VersionItemsView.as_view(),
        name="api-slice-version-items",
    ),
    path(f"{SL}/export", exports.SliceExportView.as_view(), name="api-slice-export"),
    path(f"{DS}/export", exports.DatasetExportView.as_view(), name="api-dataset-export"),
    path(f"{DS}/exports", exports.ExportJobListView.as_view(), name="api-exports"),
    path(
        f"{DS}/exports/<int:job_id>/download",
        exports.ExportDownloadView.as_view(),
        name="api-export-download",
    ),
    path(
        f"{DS}/tags/add-matching",
        versions.TagAddMatchingView.as_view(),
        name="api-tags-add-matching",
    ),
    path(
        f"{DS}/tags/remove-matching",
        versions.TagRemoveMatchingView.as_view(),
        name="api-tags-remove-matching",
    ),
]
