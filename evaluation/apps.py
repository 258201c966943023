from __future__ import annotations

from django.apps import AppConfig


class EvaluationConfig(AppConfig):
    name = "evaluation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the evaluation job's runner in every process (web, worker, CLI), so
        # job_create and the worker both know the kind, and connects the demo's evaluation
        # to the end of the demo's ingest. curation never imports this app.
        from curation.query import register_field
        from curation.signals import job_succeeded
        from curation.ui.extensions import DatasetTab, dataset_tab_register, run_outcomes_register
        from evaluation import jobs  # noqa: F401
        from evaluation.demo import demo_evaluate
        from evaluation.outcomes import EvaluationOutcomes
        from evaluation.query import COMPLETION, FIELD, eval_field, eval_value

        job_succeeded.connect(demo_evaluate, dispatch_uid="evaluation.demo_evaluate")
        # The query language's eval[<run>].fp >= 1 (docs/query-language.md).
        register_field(FIELD, eval_field, bracket=True, value=eval_value, completion=COMPLETION)
        # The dataset header's "Evaluations" tab (the runs page, evaluation/ui.py).
        dataset_tab_register(DatasetTab("Evaluations", "evaluation-ui:runs", "evaluations"))
        # Boxes coloured by their outcome in a run, and the grid's orders by matches.
        run_outcomes_register(EvaluationOutcomes())
