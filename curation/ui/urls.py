"""URLs of the UI. Dataset pages sit under /datasets/<id>/, so a shared link names the
dataset and its view's full state (see curation.ui.state)."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, include, path

from curation.ui import (
    grid,
    history,
    item,
    query,
    reference,
    score_facets,
    selection,
    slices,
    views,
)

app_name = "ui"

slice_urls: list[URLPattern | URLResolver] = [
    path("", slices.slice_page, name="slice"),
    path("count", grid.view_count, name="slice-count"),
    path("facets", grid.facets_panel, name="slice-facets"),
    path("score-facet", score_facets.score_facet, name="slice-score-facet"),
    path("versions", slices.version_freeze, name="version-freeze"),
    path("versions/<int:number>/restore", slices.version_restore, name="version-restore"),
    path("diff", slices.version_diff, name="version-diff"),
]

dataset_urls: list[URLPattern | URLResolver] = [
    path("ingest", views.dataset_ingest, name="ingest"),
    path("", grid.grid, name="grid"),
    path("count", grid.view_count, name="count"),
    path("facets", grid.facets_panel, name="facets"),
    path("score-facet", score_facets.score_facet, name="score-facet"),
    path("query/check", query.query_check, name="query-check"),
    path("query/complete", query.query_complete, name="query-complete"),
    path("selection", selection.selection_apply, name="selection"),
    path("search/image", selection.search_image, name="search-image"),
    path("items/<int:item_id>", item.item_view, name="item"),
    path("items/<int:item_id>/", item.item_slash),
    path("history/<int:change_id>/revert", history.change_revert, name="history-revert"),
    path("stats", views.dataset_stats, name="stats"),
    path("quality/jobs", views.quality_start, name="quality-job"),
    path("slices/from-view", slices.slice_from_view, name="slice-from-view"),
    path("slices/<int:slice_id>/", include(slice_urls)),
    path("jobs/<int:job_id>", views.job_detail, name="job"),
    path("jobs/<int:job_id>/progress", views.job_progress, name="job-progress"),
    path("jobs/<int:job_id>/cancel", views.job_cancel_view, name="job-cancel"),
]

urlpatterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.dataset_list, name="datasets"),
    path("datasets/new", views.dataset_create, name="dataset-create"),
    path("datasets/<int:dataset_id>/", include(dataset_urls)),
    path("help/query", reference.query_reference, name="query-reference"),
    path("jobs/", views.job_list, name="jobs"),
    path("tokens/", views.token_list, name="tokens"),
    path("tokens/new", views.token_create, name="token-create"),
    path("tokens/<int:token_id>/revoke", views.token_revoke, name="token-revoke"),
]
