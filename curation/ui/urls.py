"""URLs of the UI. Dataset pages sit under /datasets/<id>/, so a shared link names the
dataset and its view's full state (see curation.ui.state)."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from curation.ui import browse, slices, views

app_name = "ui"

DS = "datasets/<int:dataset_id>"

urlpatterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.dataset_list, name="datasets"),
    path("datasets/new", views.dataset_create, name="dataset-create"),
    path(f"{DS}/ingest", views.dataset_ingest, name="ingest"),
    path(f"{DS}/", browse.grid, name="grid"),
    path(f"{DS}/count", browse.view_count, name="count"),
    path(f"{DS}/facets", browse.facets_panel, name="facets"),
    path(f"{DS}/query/check", browse.query_check, name="query-check"),
    path(f"{DS}/selection", browse.selection_apply, name="selection"),
    path(f"{DS}/search/image", browse.search_image, name="search-image"),
    path(f"{DS}/items/<int:item_id>", browse.item_view, name="item"),
    path(f"{DS}/stats", views.dataset_stats, name="stats"),
    path(f"{DS}/slices/from-view", slices.slice_from_view, name="slice-from-view"),
    path(f"{DS}/slices/<int:slice_id>/", slices.slice_page, name="slice"),
    path(f"{DS}/slices/<int:slice_id>/count", browse.view_count, name="slice-count"),
    path(f"{DS}/slices/<int:slice_id>/facets", browse.facets_panel, name="slice-facets"),
    path(f"{DS}/slices/<int:slice_id>/versions", slices.version_freeze, name="version-freeze"),
    path(
        f"{DS}/slices/<int:slice_id>/versions/<int:number>/restore",
        slices.version_restore,
        name="version-restore",
    ),
    path(f"{DS}/slices/<int:slice_id>/diff", slices.version_diff, name="version-diff"),
    path(f"{DS}/jobs/<int:job_id>/progress", views.job_progress, name="job-progress"),
    path(f"{DS}/jobs/<int:job_id>/cancel", views.job_cancel_view, name="job-cancel"),
    path("jobs/", views.job_list, name="jobs"),
    path("tokens/", views.token_list, name="tokens"),
    path("tokens/new", views.token_create, name="token-create"),
    path("tokens/<int:token_id>/revoke", views.token_revoke, name="token-revoke"),
]
