"""URLs of the embeddings app's pages and buttons, beside curation's UI (same paths)."""

from __future__ import annotations

from django.urls import path

from embeddings import autotag_ui, map_ui, ui

app_name = "embeddings-ui"

DS = "datasets/<int:dataset_id>"

urlpatterns = [
    path(f"{DS}/embed", ui.embed_start, name="embed"),
    path(f"{DS}/duplicates", ui.duplicates_start, name="duplicates"),
    path(f"{DS}/duplicates/groups", ui.duplicates_page, name="duplicates-page"),
    path(f"{DS}/duplicates/keep-one", ui.duplicates_keep_one, name="duplicates-keep-one"),
    path(f"{DS}/map/", map_ui.map_page, name="map"),
    path(f"{DS}/map/start", map_ui.map_start, name="map-start"),
    path(f"{DS}/map/points", map_ui.map_points, name="map-points"),
    path(f"{DS}/map/colors", map_ui.map_colours, name="map-colors"),
    path(f"{DS}/map/highlight", map_ui.map_highlight, name="map-highlight"),
    path(f"{DS}/map/select", map_ui.map_select, name="map-select"),
    path(f"{DS}/autotags/", autotag_ui.autotags_page, name="autotags"),
    path(f"{DS}/autotags/start", autotag_ui.autotag_start, name="autotag-start"),
    path(
        f"{DS}/autotags/from-selection",
        autotag_ui.autotag_from_selection,
        name="autotag-from-selection",
    ),
    path(f"{DS}/autotags/<int:autotag_id>/", autotag_ui.autotag_page, name="autotag"),
    path(
        f"{DS}/autotags/<int:autotag_id>/retrain",
        autotag_ui.autotag_retrain,
        name="autotag-retrain",
    ),
    path(f"{DS}/autotags/<int:autotag_id>/apply", autotag_ui.autotag_apply, name="autotag-apply"),
]
