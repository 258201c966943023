"""URLs of the embeddings app's pages and buttons, beside curation's UI (same paths)."""

from __future__ import annotations

from django.urls import path

from embeddings import ui

app_name = "embeddings-ui"

DS = "datasets/<int:dataset_id>"

urlpatterns = [
    path(f"{DS}/embed", ui.embed_start, name="embed"),
    path(f"{DS}/duplicates", ui.duplicates_start, name="duplicates"),
    path(f"{DS}/duplicates/groups", ui.duplicates_page, name="duplicates-page"),
    path(f"{DS}/duplicates/keep-one", ui.duplicates_keep_one, name="duplicates-keep-one"),
]
