"""The demo's evaluation: once the demo dataset's ingest has succeeded, evaluate its model
(demo-detector) against its ground truth, so that a new user finds a finished evaluation
run on first start. Idempotent: a run of that name is created once."""

from __future__ import annotations

import logging
from typing import Any

from curation.demo.items import MODEL_NAME
from curation.errors import Conflict
from curation.models import Job, Model
from evaluation.models import EvaluationRun
from evaluation.services import evaluation_create

logger = logging.getLogger(__name__)

DEMO_RUN_NAME = f"{MODEL_NAME} on the demo"


def demo_evaluate(sender: Any, job: Job, **kwargs: Any) -> EvaluationRun | None:
    """Receiver of curation.signals.job_succeeded: queue the demo's evaluation run after the
    demo's ingest job (marked `demo` by bootstrap), unless it exists already."""
    if job.kind != "ingest" or not (job.params or {}).get("demo") or job.dataset is None:
        return None
    model = Model.objects.filter(dataset=job.dataset, name=MODEL_NAME).first()
    if model is None:  # deleted by hand before the ingest finished
        return None
    if EvaluationRun.objects.filter(dataset=job.dataset, name=DEMO_RUN_NAME).exists():
        return None
    try:
        run = evaluation_create(
            dataset=job.dataset, user=job.created_by, name=DEMO_RUN_NAME, model_id=model.pk
        )
    except Conflict:
        return None  # created meanwhile by another process
    logger.info("queued the demo's evaluation run %s (job %s)", run.pk, run.job_id)
    return run
