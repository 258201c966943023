from __future__ import annotations

from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "review"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The dataset header's "Review" tab (review/ui.py). curation never imports this
        # app; it builds on curation, evaluation and insights.
        from curation.signals import dataset_deleting
        from curation.ui.extensions import (
            DatasetTab,
            SelectionAction,
            dataset_tab_register,
            selection_action_register,
        )
        from review.services import review_dataset_deleting

        dataset_tab_register(DatasetTab("Review", "review-ui:queues", "review"))
        # The grid's selection bar opens the new-queue form with the selected items.
        selection_action_register(
            SelectionAction("Review selection", "review-ui:from-selection", "review")
        )
        # A dataset's entries and decisions go set-based before its items.
        dataset_deleting.connect(review_dataset_deleting, dispatch_uid="review.dataset_deleting")
