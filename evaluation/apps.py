from __future__ import annotations

from django.apps import AppConfig


class EvaluationConfig(AppConfig):
    name = "evaluation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the evaluation job's runner in every process (web, worker, CLI), so
        # job_create and the worker both know the kind. curation never imports this app.
        from evaluation import jobs  # noqa: F401
