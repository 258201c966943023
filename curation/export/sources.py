"""What an export reads: its source, and the source's items in keyset batches.

Every format reads the items in keyset batches ordered by item id (never OFFSET, never
the whole set at once), with each batch's annotations aggregated by PostgreSQL into JSON
text, so memory stays flat at any size and the first bytes go out after the first batch.
A source is a dataset, a slice (its items now; a dynamic slice's query is evaluated once,
when the export starts) or a slice version (its frozen snapshot: items, metadata and
annotations exactly as they were when it was frozen). A live source is read by parallel
fetchers (see iter_rows).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Literal

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils.text import get_valid_filename

from curation.errors import invalid_field
from curation.file_names import file_name_sql, frozen_file_name_sql, stem_sql
from curation.itemsets import item_ids_sql, slice_items_q
from curation.models import Dataset, Item, Model, Slice, SliceVersion

BATCH_SIZE = 2000
# The pieces in which writers copy their spooled temporary files into the stream.
SPOOL_CHUNK = 1 << 16

Progress = Callable[[int], None]
# What each row carries as JSON: the whole record (JSONL), its annotations (COCO, YOLO),
# or one model's predictions (COCO results).
Payload = Literal["record", "annotations", "predictions"]


@dataclass
class ExportSource:
    """What to export: a dataset, a slice's current items, or a frozen slice version."""

    dataset: Dataset
    slice: Slice | None = None
    version: SliceVersion | None = None
    # A dynamic slice's filter, evaluated once (similarity included) so that every batch
    # of one export sees the same condition.
    members: Q | None = None

    @property
    def filename_stem(self) -> str:
        parts = [self.dataset.name]
        if self.slice is not None:
            parts.append(self.slice.name)
        if self.version is not None:
            parts.append(f"v{self.version.number}")
        stem = get_valid_filename("-".join(parts)) if any(p.strip() for p in parts) else ""
        return stem[:150] or "export"

    def describe(self) -> str:
        if self.version is not None:
            # Ids, not names: renaming the dataset or slice after the freeze must not
            # change a version's bytes.
            return (
                f"dataset {self.dataset.pk}, slice {self.version.slice_id}, "
                f"version {self.version.number}"
            )
        what = f"dataset {self.dataset.name!r}"
        if self.slice is not None:
            what += f", slice {self.slice.name!r}"
        if self.version is not None:
            what += f", version {self.version.number}"
        return what

    def timestamp(self) -> float:
        """When the content was fixed: a version's freeze, else now (a live export)."""
        if self.version is not None:
            return self.version.created.timestamp()
        return time.time()

    @property
    def reproducible(self) -> bool:
        """Whether every export of this source is the same file (a frozen version)."""
        return self.version is not None


def export_source(
    *, dataset: Dataset, slice: Slice | None = None, version: SliceVersion | None = None
) -> ExportSource:
    """Build an export source; a dynamic slice's query is checked (and evaluated) here."""
    if version is not None and (slice is None or version.slice_id != slice.pk):
        raise invalid_field("version", "does not belong to this slice")
    members = None
    if slice is not None and version is None and slice.is_dynamic:
        members = slice_items_q(slice)
    return ExportSource(dataset=dataset, slice=slice, version=version, members=members)


@dataclass
class Row:
    item_id: int
    reference_id: str
    width: int | None
    height: int | None
    media_key: str
    # The image's file name as ingested (curation.file_names); None in a version frozen
    # before file names were kept, which exports as it always did.
    file_name: str | None
    payload: str  # JSON text: the whole record, the annotations or the predictions array


# A batch's annotations (and one model's predictions), aggregated per item in one pass
# over the (item, label) index. json, not jsonb: building text is cheaper, and exports
# only ever print it.
_PREDICTION_OBJECT = (
    "json_build_object('id', p.prediction_id, 'kind', p.kind, 'label', p.label,"
    " 'confidence', p.confidence, 'geometry', p.geometry, 'metadata', p.metadata)"
)
_ANNOTATIONS_OF_BATCH = (
    "SELECT a.item_id, json_agg(json_build_object('id', a.annotation_id, 'kind', a.kind,"
    " 'label', a.label, 'geometry', a.geometry, 'metadata', a.metadata)"
    " ORDER BY a.annotation_id) AS shapes"
    " FROM curation_annotation a WHERE a.item_id = ANY(%s) GROUP BY a.item_id"
)
_PREDICTIONS_OF_BATCH = (
    f"SELECT p.item_id, json_agg({_PREDICTION_OBJECT} ORDER BY p.prediction_id) AS shapes"
    " FROM curation_prediction p WHERE p.item_id = ANY(%s) AND p.model_id = %s"
    " GROUP BY p.item_id"
)
_PREDICTIONS_OF_VERSION_ITEM = (
    f"COALESCE((SELECT json_agg({_PREDICTION_OBJECT} ORDER BY p.prediction_id)"
    " FROM curation_prediction p WHERE p.item_id = v.item_id AND p.model_id = %s),"
    " '[]'::json)"
)


FILE_NAME_I = file_name_sql("i")
FILE_NAME_V = frozen_file_name_sql("v")


def _record_sql(alias: str, id_column: str, annotations: str, predictions: str | None) -> str:
    """JSON text of one record (without media_url; the writer adds the signed URL)."""
    extra = f", 'predictions', {predictions}" if predictions is not None else ""
    return (
        f"json_build_object('id', {id_column}, 'reference_id', {alias}.reference_id,"
        f" 'width', {alias}.width, 'height', {alias}.height, 'metadata', {alias}.metadata,"
        f" 'annotations', {annotations}{extra})::text"
    )


def _live_ids(source: ExportSource, after: int, limit: int) -> list[int]:
    """The next `limit` item ids after `after`, by the index that suits the source."""
    with connection.cursor() as cursor:
        if source.slice is None:
            cursor.execute(
                "SELECT id FROM curation_item WHERE dataset_id = %s AND id > %s "
                "ORDER BY id LIMIT %s",
                [source.dataset.pk, after, limit],
            )
        elif source.members is None:
            # Keyset over the membership index (slice_id, item_id): a page of a small slice
            # in a large dataset reads only that slice's rows.
            cursor.execute(
                "SELECT item_id FROM curation_sliceitem WHERE slice_id = %s AND item_id > %s "
                "ORDER BY item_id LIMIT %s",
                [source.slice.pk, after, limit],
            )
        else:
            items = Item.objects.filter(source.members, id__gt=after).order_by("id")
            sql, params = items.values("id")[:limit].query.sql_with_params()
            cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


@dataclass
class Batch:
    ids: list[int]  # the ids scanned, in order: the keyset moves past the last one
    rows: list[Row]  # the rows of those ids (an item deleted meanwhile has none)


def fetch_rows(
    source: ExportSource,
    *,
    after: int,
    limit: int,
    payload: Payload,
    model: Model | None = None,
) -> Batch:
    """One batch: up to `limit` items with ids above `after`, in id order."""
    if source.version is not None:
        with connection.cursor() as cursor:
            return _version_rows(cursor, source.version, after, limit, payload, model)
    ids = _live_ids(source, after, limit)
    if not ids:
        return Batch([], [])
    return _live_rows(source, ids, payload, model)


def _live_rows(
    source: ExportSource,
    ids: list[int],
    payload: Payload,
    model: Model | None,
) -> Batch:
    """The rows of the items `ids` (in id order), their `payload` aggregated to JSON."""
    with connection.cursor() as cursor:
        joins = ""
        params: list[Any] = []
        annotations = "COALESCE(an.shapes, '[]'::json)"
        predictions = None
        if payload != "predictions":
            joins = f"LEFT JOIN ({_ANNOTATIONS_OF_BATCH}) an ON an.item_id = i.id"
            params = [ids]
        if model is not None and payload != "annotations":
            joins += f" LEFT JOIN ({_PREDICTIONS_OF_BATCH}) pr ON pr.item_id = i.id"
            params += [ids, model.pk]
            predictions = "COALESCE(pr.shapes, '[]'::json)"
        if payload == "record":
            select = _record_sql("i", "i.id", annotations, predictions)
        elif payload == "predictions":
            select = f"{predictions}::text" if predictions is not None else "'[]'"
        else:
            select = f"{annotations}::text"
        cursor.execute(
            f"SELECT i.id, i.reference_id, i.width, i.height, i.media_key, {FILE_NAME_I}, "
            f"{select} "
            f"FROM curation_item i {joins} "
            "WHERE i.id = ANY(%s) AND i.dataset_id = %s ORDER BY i.id",
            [*params, ids, source.dataset.pk],
        )
        return Batch(ids, [Row(*r) for r in cursor.fetchall()])


def _version_rows(
    cursor: Any,
    version: SliceVersion,
    after: int,
    limit: int,
    payload: Payload,
    model: Model | None,
) -> Batch:
    """A batch of a version: its frozen rows (predictions, if asked for, are current)."""
    params: list[Any] = []
    if payload == "record":
        predictions = None
        if model is not None:
            predictions = _PREDICTIONS_OF_VERSION_ITEM
            params = [model.pk]
        select = _record_sql("v", "v.item_id", "v.annotations", predictions)
    elif payload == "predictions":
        select = "'[]'"
        if model is not None:
            select = _PREDICTIONS_OF_VERSION_ITEM
            params = [model.pk]
        select = f"{select}::text"
    else:
        select = "v.annotations::text"
    # The page's rows are picked first (the unique index alone), then only they are turned
    # into JSON: the planner may otherwise build JSON for every row after the cursor
    # before sorting and cutting them to the page.
    cursor.execute(
        "SELECT v.item_id, v.reference_id, v.width, v.height, v.media_key, "
        f"{FILE_NAME_V}, {select} FROM curation_sliceversionitem v JOIN ("
        "  SELECT id FROM curation_sliceversionitem"
        "  WHERE version_id = %s AND item_id > %s ORDER BY item_id LIMIT %s"
        ") page ON page.id = v.id ORDER BY v.item_id",
        [*params, version.pk, after, limit],
    )
    rows = [Row(*r) for r in cursor.fetchall()]
    return Batch([row.item_id for row in rows], rows)


def iter_rows(
    source: ExportSource,
    *,
    payload: Payload,
    model: Model | None = None,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> Iterator[list[Row]]:
    """Every item of the source in id order, batch by batch (each a separate query).

    A live source (not a version) outside a transaction is read by EXPORT_FETCHERS threads,
    each on its own database connection: turning a batch's annotations into JSON is most
    of an export's work and runs in PostgreSQL, so while the caller formats one batch the
    server builds the next ones on the other cores. Inside a transaction every batch comes
    from the caller's own connection, the only one that sees the transaction's writes.
    """
    fetchers = settings.NUCLEUS_EXPORT_FETCHERS
    if source.version is None and fetchers > 1 and not connection.in_atomic_block:
        batches = _live_batches_parallel(source, payload, model, batch_size, fetchers)
    else:
        batches = _batches(source, payload, model, batch_size)
    done = 0
    for batch in batches:
        if batch.rows:
            done += len(batch.rows)
            yield batch.rows
        if progress is not None and batch.ids:
            progress(done)


def _batches(
    source: ExportSource,
    payload: Payload,
    model: Model | None,
    batch_size: int,
) -> Iterator[Batch]:
    after = 0
    while True:
        batch = fetch_rows(source, after=after, limit=batch_size, payload=payload, model=model)
        yield batch
        if len(batch.ids) < batch_size:
            return
        after = batch.ids[-1]


def _live_batches_parallel(
    source: ExportSource,
    payload: Payload,
    model: Model | None,
    batch_size: int,
    fetchers: int,
) -> Iterator[Batch]:
    """Batches in id order, built by `fetchers` threads; at most 2 x fetchers in flight.

    The id pages are read here, in order (an index-only keyset scan, cheap); the threads
    turn them into rows. Memory stays bounded by the batches in flight, and a consumer that
    stops early (a client that hangs up) stops the threads and closes their connections.
    """
    tasks: queue.Queue[tuple[Future[Batch], list[int]] | None] = queue.Queue()

    def work() -> None:
        try:
            while (task := tasks.get()) is not None:
                future, ids = task
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(_live_rows(source, ids, payload, model))
                    except BaseException as error:  # handed to the consumer, raised there
                        future.set_exception(error)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=work, name=f"export-fetch-{n}", daemon=True)
        for n in range(fetchers)
    ]
    for thread in threads:
        thread.start()
    pending: deque[tuple[Future[Batch], list[int]]] = deque()
    after, exhausted = 0, False
    try:
        while True:
            while not exhausted and len(pending) < 2 * fetchers:
                ids = _live_ids(source, after, batch_size)
                if ids:
                    task: tuple[Future[Batch], list[int]] = (Future(), ids)
                    pending.append(task)
                    tasks.put(task)
                    after = ids[-1]
                exhausted = len(ids) < batch_size
            if not pending:
                return
            future, ids = pending.popleft()
            batch = future.result()
            # The keyset moved past every id of the page, deleted items included.
            yield Batch(ids, batch.rows)
    finally:
        for future, _ in pending:
            future.cancel()
        for _ in threads:
            tasks.put(None)
        for thread in threads:
            thread.join()


def source_count(source: ExportSource) -> int:
    """How many items the source has (for job progress)."""
    if source.version is not None:
        return source.version.item_count
    if source.slice is None:
        return Item.objects.filter(dataset=source.dataset).count()
    if source.members is None:
        return source.slice.memberships.count()
    return Item.objects.filter(source.members).count()


def source_renamed_stems(source: ExportSource) -> set[int]:
    """Items whose file stem an item with a smaller id in the source already has: the
    ones YOLO names `<stem>-<item id>` (curation.export.yolo). Usually few or none."""
    if source.version is not None:
        items = (
            f"SELECT v.item_id AS id, {stem_sql(FILE_NAME_V)} AS stem "
            "FROM curation_sliceversionitem v WHERE v.version_id = %s AND v.file_name <> ''"
        )
        params: list[Any] = [source.version.pk]
    else:
        items = (
            f"SELECT i.id, {stem_sql(FILE_NAME_I)} AS stem FROM curation_item i "
            "WHERE i.dataset_id = %s"
        )
        params = [source.dataset.pk]
        if source.slice is not None:
            if source.members is None:
                members: tuple[str, Any] = (
                    "SELECT item_id FROM curation_sliceitem WHERE slice_id = %s",
                    [source.slice.pk],
                )
            else:
                members = item_ids_sql(Item.objects.filter(source.members))
            items += f" AND i.id IN ({members[0]})"
            params += list(members[1])
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY stem ORDER BY id) AS n"
            f" FROM ({items}) s) ranked WHERE n > 1",
            params,
        )
        return {row[0] for row in cursor.fetchall()}


def source_labels(source: ExportSource, kinds: Sequence[str]) -> list[str]:
    """The distinct labels of the source's annotations of these kinds, sorted."""
    with connection.cursor() as cursor:
        if source.version is not None:
            cursor.execute(
                "SELECT DISTINCT e->>'label' FROM curation_sliceversionitem v, "
                "jsonb_array_elements(v.annotations) e "
                "WHERE v.version_id = %s AND e->>'kind' = ANY(%s)",
                [source.version.pk, list(kinds)],
            )
        elif source.slice is None:
            cursor.execute(
                "SELECT DISTINCT label FROM curation_annotation "
                "WHERE dataset_id = %s AND kind = ANY(%s)",
                [source.dataset.pk, list(kinds)],
            )
        else:
            if source.members is None:
                members = (
                    "SELECT item_id FROM curation_sliceitem WHERE slice_id = %s",
                    [source.slice.pk],
                )
            else:
                members = item_ids_sql(Item.objects.filter(source.members))
            cursor.execute(
                "SELECT DISTINCT a.label FROM curation_annotation a "
                f"WHERE a.dataset_id = %s AND a.kind = ANY(%s) AND a.item_id IN ({members[0]})",
                [source.dataset.pk, list(kinds), *members[1]],
            )
        return sorted(row[0] for row in cursor.fetchall() if row[0] is not None)
