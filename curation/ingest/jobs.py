"""The "ingest" job: a source read in chunks, each chunk's media stored and its rows
written with the job's progress in one checkpoint (see the package's docstring)."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
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


@dataclass
class _Started:
    """A chunk whose media are being read and stored on the pool's threads."""

    chunk: list[SourceRecord]
    stored: dict[str, _Stored]
    futures: dict[int, Future[Media]]


def _chunk_start(
    dataset: Dataset, chunk: list[SourceRecord], *, pool: Executor, trusted: bool
) -> _Started:
    """Look up what the dataset holds for a chunk and queue its media on the pool."""
    chunk = [_storable_record(r) for r in chunk]
    # Only records without an error: a bad one's reference id may be unsendable.
    stored = _stored(dataset, {r.reference_id for r in chunk if r.reference_id and r.error is None})
    futures = {
        id(r): pool.submit(
            _media_load, r.location, stored.get(r.reference_id or ""), dataset.pk, trusted
        )
        for r in chunk
        if r.error is None and r.location is not None
    }
    return _Started(chunk, stored, futures)


def _chunk_finish(started: _Started) -> tuple[list[ItemRecord], list[dict[str, Any]]]:
    """Wait for a started chunk's media and validate it: its clean item records and its
    per-item errors."""
    chunk, stored, futures = started.chunk, started.stored, started.futures
    errors: list[dict[str, Any]] = []
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


def _shares_items(chunk: list[SourceRecord], other: list[SourceRecord]) -> bool:
    refs = {r.reference_id for r in other}
    return any(r.reference_id in refs for r in chunk)


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
    size = settings.NUCLEUS_INGEST_CHUNK
    with ThreadPoolExecutor(MEDIA_THREADS, thread_name_prefix="ingest-media") as pool:
        chunk = list(itertools.islice(records_iter, size))
        started = _chunk_start(dataset, chunk, pool=pool, trusted=trusted) if chunk else None
        while started is not None:
            # The next chunk's media go on the pool before this chunk's rows are written, so
            # the threads decode on while the database writes, and no chunk ends with idle
            # threads waiting for its slowest image. Not when it repeats a reference id of
            # this chunk: what it finds stored must be what this chunk writes.
            following = list(itertools.islice(records_iter, size))
            ahead = None
            if following and not _shares_items(following, chunk):
                ahead = _chunk_start(dataset, following, pool=pool, trusted=trusted)
            try:
                records, errors = _chunk_finish(started)
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
            except BaseException:
                # A failed or cancelled chunk: the one read ahead stops where it is (a
                # resumed run reads it again from the last checkpoint).
                for future in ahead.futures.values() if ahead else ():
                    future.cancel()
                raise
            counts = state["counts"]
            pending = []
            if ahead is None and following:
                ahead = _chunk_start(dataset, following, pool=pool, trusted=trusted)
            chunk, started = following, ahead
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
