"""The "ingest" job: a source read in chunks, each chunk's media stored and its rows
written with the job's progress in one checkpoint (see the package's docstring)."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from django.conf import settings
from django.db import connection

from curation.bulk.validate import ItemRecord, Media, clean_item_record
from curation.bulk.write import UpsertResult, records_write
from curation.extensions import vectors
from curation.fetch import (
    FetchError,
    read_location,
)
from curation.geometry import GeometryError
from curation.history import change_context
from curation.history.models import ChangeSource
from curation.ingest.sources import SourceError, SourceRecord, source_open
from curation.jobs import JobContext, job_runner
from curation.media import MediaError, media_process
from curation.models import Dataset
from curation.storable import Unstorable, json_check

# Media of a chunk is read and decoded by a few threads: fetching URLs waits on the
# network, and Pillow releases the GIL while it decodes.
MEDIA_THREADS = 4


@dataclass
class _Stored:
    media: Media
    size: tuple[int | None, int | None]


def _stored(dataset: Dataset, refs: Iterable[str]) -> dict[str, _Stored]:
    """What the dataset already holds for these reference ids: media fields and size."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reference_id, media_key, thumbnail_key, source_uri, width, height, sha256,"
            " byte_size FROM curation_item WHERE dataset_id = %s AND reference_id = ANY(%s)",
            [dataset.pk, list(refs)],
        )
        return {
            ref: _Stored(Media(key, thumb, uri, w, h, sha, size), (w, h))
            for ref, key, thumb, uri, w, h, sha, size in cursor.fetchall()
        }


def _media_load(location: str, stored: _Stored | None, dataset_id: int, trusted: bool) -> Media:
    """Read an image and store it, unless the stored item already has these very bytes."""
    data = read_location(location, max_bytes=settings.NUCLEUS_MAX_IMAGE_BYTES, trusted=trusted)
    if (
        stored is not None
        and stored.media.media_key
        and stored.media.source_uri == location
        and hashlib.sha256(data).hexdigest() == stored.media.sha256
    ):
        return stored.media  # same file, same bytes: already decoded, stored, thumbnailed
    return media_process(dataset_id=dataset_id, data=data, source_uri=location)


def _storable_record(record: SourceRecord) -> SourceRecord:
    """The record, or a copy carrying the error if its row holds text PostgreSQL cannot
    store or is nested too deep: one error path for every source's records."""
    if record.error is not None:
        return record
    try:
        json_check(record.raw)
    except Unstorable as exc:
        return replace(record, error=exc.message)
    return record


def _chunk_prepare(
    dataset: Dataset, chunk: list[SourceRecord], *, pool: Executor, trusted: bool
) -> tuple[list[ItemRecord], list[dict[str, Any]]]:
    """Read, store and validate one chunk: its clean item records and its per-item errors."""
    chunk = [_storable_record(r) for r in chunk]
    errors: list[dict[str, Any]] = []
    # Only records without an error: a bad one's reference id may be unsendable.
    stored = _stored(dataset, {r.reference_id for r in chunk if r.reference_id and r.error is None})
    futures = {
        id(r): pool.submit(
            _media_load, r.location, stored.get(r.reference_id or ""), dataset.pk, trusted
        )
        for r in chunk
        if r.error is None and r.location is not None
    }
    records: dict[str, ItemRecord] = {}
    for record in chunk:
        if record.error is not None:
            errors.append(record.error_dict(record.error))
            continue
        media = None
        if id(record) in futures:
            try:
                media = futures[id(record)].result()
            except (FetchError, MediaError) as exc:
                errors.append(record.error_dict(str(exc)))
                continue
        known = stored[record.reference_id].size if record.reference_id in stored else (None, None)
        try:
            item = clean_item_record(record.raw, media=media, known_size=known)
        except GeometryError as exc:
            errors.append(
                record.error_dict(f"{exc.path}: {exc.message}" if exc.path else exc.message)
            )
            continue
        # A reference id twice in one chunk: the later row wins, as it would across chunks.
        records[item.reference_id] = item
    return list(records.values()), errors


_COUNTS = ("created", "updated", "unchanged", "annotations_written", "predictions_written")


def _count(counts: dict[str, int], result: UpsertResult) -> None:
    counts["created"] += result.items_created
    counts["updated"] += result.items_updated
    counts["unchanged"] += result.items_unchanged
    counts["annotations_written"] += result.annotations_written
    counts["predictions_written"] += result.predictions_written


@job_runner("ingest")
def ingest_run(ctx: JobContext) -> dict[str, Any]:
    """Ingest the job's source into its dataset, resuming after the last checkpoint."""
    dataset = ctx.job.dataset
    if dataset is None:
        raise SourceError("an ingest job needs a dataset")
    trusted = bool(ctx.params.get("trusted"))
    source = source_open(ctx.params["source"], trusted=trusted)
    ctx.set_total(source.count())
    position = source.start(ctx.state)
    counts = {key: 0 for key in _COUNTS} | dict(ctx.state.get("counts", {}))
    pending = source.preamble_errors() if position == 0 else []
    records_iter = source.records(position)
    with ThreadPoolExecutor(MEDIA_THREADS, thread_name_prefix="ingest-media") as pool:
        while chunk := list(itertools.islice(records_iter, settings.NUCLEUS_INGEST_CHUNK)):
            records, errors = _chunk_prepare(dataset, chunk, pool=pool, trusted=trusted)
            position += len(chunk)
            state: dict[str, Any] = {"position": position, "counts": dict(counts)}
            if chunk[-1].cursor is not None:
                state["after"] = chunk[-1].cursor
            with (
                ctx.checkpoint(done=position, state=state, errors=pending + errors),
                change_context(
                    user=ctx.job.created_by, source=ChangeSource.INGEST, job_id=ctx.job.pk
                ),
            ):
                result = records_write(dataset=dataset, records=records)
                # checkpoint() saves `state` when the block ends: the counts committed
                # with these rows include them, and a resumed run starts from them.
                _count(state["counts"], result)
            counts = state["counts"]
            pending = []
    if pending:  # a source with no records, only errors (e.g. COCO annotations of no image)
        with ctx.checkpoint(
            done=position, state={"position": position, "counts": counts}, errors=pending
        ):
            pass
    if counts["created"] or counts["updated"]:
        # New or changed images need vectors for search; with the embeddings app this
        # queues one embedding job (or reuses a waiting one) and never fails the ingest.
        vectors().items_ingested(dataset=dataset, user=ctx.job.created_by)
    return {**counts, "errors": ctx.job.error_count, "total": position}
