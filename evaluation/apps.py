from __future__ import annotations

from django.apps import AppConfig


class EvaluationConfig(AppConfig):
    name = "evaluation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the evaluation job's runner in every process (web, worker, CLI), so
        # job_create and the worker both know the kind, and connects the demo's evaluation
        # to the end of the demo's ingest. curation never imports this app.
        from curation.signals import job_succeeded
        from evaluation import jobs  # noqa: F401
        from evaluation.demo import demo_evaluate

        job_succeeded.connect(demo_evaluate, dispatch_uid="evaluation.demo_evaluate")
