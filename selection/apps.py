from __future__ import annotations

from django.apps import AppConfig


class SelectionConfig(AppConfig):
    name = "selection"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The dataset header's "Select" tab (selection/ui.py) and the selection job's
        # runner. curation, embeddings, evaluation and insights never import this app.
        from curation.ui.extensions import DatasetTab, dataset_tab_register, job_links_register
        from selection import jobs  # noqa: F401  (registers the selection job's runner)
        from selection.services import SELECTION_JOB
        from selection.ui import selection_job_links

        dataset_tab_register(DatasetTab("Select", "selection-ui:builder", "select"))
        # The job page of a finished selection job links to the slice it made.
        job_links_register(SELECTION_JOB, selection_job_links)
