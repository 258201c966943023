"""Job runners of the embeddings app (thin: load what the job names, call the service).

Registering them happens on import; embeddings.apps imports this module in every process
(web, worker, CLI), so job_create and the worker both know these kinds.
"""

from __future__ import annotations

from typing import Any

from curation.jobs import JobContext, job_runner
from embeddings import vectors as vec
from embeddings.autotag import AUTOTAG_JOB, autotag_score_run
from embeddings.clip import ModelSpec, encoder_for
from embeddings.duplicates import DUPLICATES_JOB, duplicates_run
from embeddings.models import EmbeddingModel
from embeddings.pipeline import embed_run
from embeddings.projection import PROJECT_JOB, projection_run
from embeddings.services import EMBED_JOB, dataset_default_offer

# Embedding and duplicate search are the long jobs (minutes to hours at scale): their own
# queue, so ingest and export jobs on the default queue start at once beside them.
EMBED_QUEUE = "embed"


@job_runner(EMBED_JOB, queue=EMBED_QUEUE)
def run_embed(ctx: JobContext) -> dict[str, Any]:
    dataset = ctx.job.dataset
    assert dataset is not None
    model = EmbeddingModel.objects.get(pk=ctx.params["model_id"])
    # Weights that cannot be had fail the job here, with a message naming how to fix it.
    encoder = encoder_for(ModelSpec(model.architecture, model.weights))
    result = embed_run(ctx, encoder=encoder, model=model, dataset=dataset)
    # One index build over everything the job loaded beats inserting into a graph.
    vec.vector_index_ensure(model=model, dataset=dataset)
    dataset_default_offer(dataset=dataset, model=model)
    return result


@job_runner(DUPLICATES_JOB, queue=EMBED_QUEUE)
def run_duplicates(ctx: JobContext) -> dict[str, Any]:
    return duplicates_run(ctx)


@job_runner(PROJECT_JOB, queue=EMBED_QUEUE)
def run_project(ctx: JobContext) -> dict[str, Any]:
    return projection_run(ctx)


# Scoring is one sequential pass over the dataset's vectors, as the duplicates job's walk.
@job_runner(AUTOTAG_JOB, queue=EMBED_QUEUE)
def run_autotag_score(ctx: JobContext) -> dict[str, Any]:
    return autotag_score_run(ctx)
