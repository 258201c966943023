from __future__ import annotations

from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "review"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The dataset header's "Review" tab (review/ui.py). curation never imports this
        # app; it builds on curation, evaluation and insights.
        from curation.ui.extensions import DatasetTab, dataset_tab_register

        dataset_tab_register(DatasetTab("Review", "review-ui:queues", "review"))
