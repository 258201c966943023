"""Signals other apps listen to, so that curation never has to import them."""

from __future__ import annotations

from django.dispatch import Signal

# A job worker has started and is about to take jobs. Keyword arguments: `queues` (the
# queues it serves, None for all) and `once` (it stops when the queue is empty). The
# embeddings app warms the vector indexes on it.
worker_started = Signal()

# A job has succeeded; sent with `job` by the process that ran it, once the job is
# recorded as succeeded. An exception in a receiver is logged, never the job's. The
# evaluation app evaluates the demo's model when the demo's ingest (params["demo"]) is done.
job_succeeded = Signal()

# A dataset is being deleted (curation.services.dataset_delete), inside its transaction,
# before its items go; sent with `dataset`. An app with large tables of its own under the
# dataset empties them here set-based, as curation does its own, instead of leaving them
# to Django's cascade (which loads every row first). The review app's queues do.
dataset_deleting = Signal()
