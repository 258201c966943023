from __future__ import annotations

from django.apps import AppConfig


class SelectionConfig(AppConfig):
    name = "selection"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The dataset header's "Select" tab (selection/ui.py) and the selection job's
        # runner. curation, embeddings, evaluation and insights never import this app.
        from curation.ui.extensions import DatasetTab, dataset_tab_register
        from selection import jobs  # noqa: F401  (registers the selection job's runner)

        dataset_tab_register(DatasetTab("Select", "selection-ui:builder", "select"))
