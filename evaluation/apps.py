from __future__ import annotations

from django.apps import AppConfig


class EvaluationConfig(AppConfig):
    name = "evaluation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the evaluation job's runner in every process (web, worker, CLI), so
        # job_create and the worker both know the kind. curation never imports this app.
        from curation.query import register_field
        from curation.ui.extensions import DatasetTab, dataset_tab_register
        from evaluation import jobs  # noqa: F401
        from evaluation.query import FIELD, eval_field

        # The query language's eval[<run>].fp >= 1 (docs/query-language.md).
        register_field(FIELD, eval_field, bracket=True)
        # The dataset header's "Evaluations" tab (the runs page, evaluation/ui.py).
        dataset_tab_register(DatasetTab("Evaluations", "evaluation-ui:runs", "evaluations"))
