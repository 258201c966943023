"""Exports for pipelines: native JSONL, COCO detection JSON and YOLO, streamed.

Every format reads the items in keyset batches ordered by item id (never OFFSET, never
the whole set at once), with each batch's annotations aggregated by PostgreSQL into JSON
text, so memory stays flat at any size and the first bytes go out after the first batch.
A source is a dataset, a slice (its items now; a dynamic slice's query is evaluated once,
when the export starts) or a slice version (its frozen snapshot: items, metadata and
annotations exactly as they were when it was frozen).

The same writers run in the request (StreamingHttpResponse) or in an "export" job that
stores the file for a later download. docs/export.md describes the formats.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import queue
import tarfile
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import IO, Any, Literal

from django.conf import settings
from django.core import signing
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import connection
from django.db.models import Q
from django.utils.encoding import force_bytes
from django.utils.text import get_valid_filename

from curation.errors import InvalidInput, field_error
from curation.jobs import JobContext, job_create, job_runner
from curation.models import Dataset, Item, Job, Model, Slice, SliceVersion
from curation.slices import item_ids_sql, slice_items_q
from curation.storage import _SIGNING_SALT as MEDIA_SIGNING_SALT
from curation.storage import media_path, media_presign, storage_is_s3

ExportFormat = Literal["jsonl", "coco", "yolo"]
FORMATS: tuple[ExportFormat, ...] = ("jsonl", "coco", "yolo")
CONTENT_TYPES = {
    "jsonl": "application/x-ndjson",
    "coco": "application/json",
    "yolo": "application/x-tar",
}
EXTENSIONS = {"jsonl": "jsonl", "coco": "json", "yolo": "tar"}
BATCH_SIZE = 2000
MAX_URL_TTL = 7 * 24 * 3600  # S3 presigned URLs cannot live longer
COCO_KINDS = ("box", "polygon", "segmentation")
YOLO_KINDS = ("box",)
_SPOOL_CHUNK = 1 << 16

Progress = Callable[[int], None]


def _invalid(path: str, message: str) -> InvalidInput:
    return InvalidInput(f"{path}: {message}", fields=[field_error(path, message)])


# -------------------------------------------------------------------------------- sources


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
        raise _invalid("version", "does not belong to this slice")
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
    payload: str  # JSON text: the whole record, or the annotations array


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
    payload: Literal["record", "annotations"],
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
    payload: Literal["record", "annotations"],
    model: Model | None,
) -> Batch:
    """The rows of the items `ids` (in id order), their annotations aggregated to JSON."""
    with connection.cursor() as cursor:
        joins = f"LEFT JOIN ({_ANNOTATIONS_OF_BATCH}) an ON an.item_id = i.id"
        params: list[Any] = [ids]
        annotations = "COALESCE(an.shapes, '[]'::json)"
        predictions = None
        if model is not None and payload == "record":
            joins += f" LEFT JOIN ({_PREDICTIONS_OF_BATCH}) pr ON pr.item_id = i.id"
            params += [ids, model.pk]
            predictions = "COALESCE(pr.shapes, '[]'::json)"
        if payload == "record":
            select = _record_sql("i", "i.id", annotations, predictions)
        else:
            select = f"{annotations}::text"
        cursor.execute(
            f"SELECT i.id, i.reference_id, i.width, i.height, i.media_key, {select} "
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
    payload: Literal["record", "annotations"],
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
    else:
        select = "v.annotations::text"
    # The page's rows are picked first (the unique index alone), then only they are turned
    # into JSON: the planner may otherwise build JSON for every row after the cursor
    # before sorting and cutting them to the page.
    cursor.execute(
        "SELECT v.item_id, v.reference_id, v.width, v.height, v.media_key, "
        f"{select} FROM curation_sliceversionitem v JOIN ("
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
    payload: Literal["record", "annotations"],
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
    payload: Literal["record", "annotations"],
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
    payload: Literal["record", "annotations"],
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


# ----------------------------------------------------------------------------- media URLs


class MediaTokens:
    """The tokens curation.storage.media_signature makes, at a fraction of the cost.

    They are django.core.signing tokens ("<base64 JSON>:<base62 time>:<base64 HMAC>");
    Signer derives its HMAC key anew for every token, which is half the work when an
    export signs a million of them. Here the key is derived once. The first token is
    checked against signing.loads (what media_signature_valid uses); should Django's
    format ever differ, every token is made by Django's own signer instead.
    """

    def __init__(self, expires: int) -> None:
        self.expires = expires
        self._signer = signing.TimestampSigner(salt=MEDIA_SIGNING_SALT)
        algorithm = self._signer.algorithm
        self._digest = getattr(hashlib, algorithm)
        self._key = self._digest(
            force_bytes(self._signer.salt) + b"signer" + force_bytes(self._signer.key)
        ).digest()
        self._stamp = self._signer.timestamp()
        self._fast = True
        probe = self.token(1)
        try:
            self._fast = signing.loads(probe, salt=MEDIA_SIGNING_SALT) == [1, "original", expires]
        except signing.BadSignature:
            self._fast = False

    def token(self, item_id: int) -> str:
        if not self._fast:
            return self._signer.sign_object([item_id, "original", self.expires], compress=False)
        payload = f'[{int(item_id)},"original",{self.expires}]'.encode()
        value = f"{signing.b64_encode(payload).decode()}:{self._stamp}"
        mac = hmac.new(self._key, value.encode(), self._digest).digest()
        return f"{value}:{signing.b64_encode(mac).decode()}"


MediaUrlMode = Literal["signed", "plain"]
MEDIA_URL_MODES: tuple[MediaUrlMode, ...] = ("signed", "plain")


class MediaUrls:
    """The media URL each exported item names, in one of two modes.

    - ``signed``: works without credentials until it expires, as
      curation.storage.media_signed_url makes them (an S3 presigned URL, or the media view
      with a `sig` token). The signature carries its expiry, so two exports made at
      different times differ in these bytes.
    - ``plain``: the media view's URL with no signature; fetching it needs the caller's
      token or session. It never changes, which is what makes a frozen version's export
      the same file, byte for byte, whenever and however it is made.

    An export signs hundreds of thousands of URLs, so the per-URL work is cut down: the
    media view's URL is reversed once and ids filled in, and the expiry is fixed when the
    export starts. The media view checks the tokens with media_signature_valid.
    """

    _SENTINEL = 987654321

    def __init__(
        self,
        *,
        mode: MediaUrlMode = "signed",
        ttl: int | None = None,
        request: Any = None,
        base_url: str | None = None,
    ) -> None:
        self.mode = mode
        self.ttl = ttl or settings.MEDIA_URL_TTL
        self.s3 = storage_is_s3()
        path = media_path(self._SENTINEL, "original")
        if request is not None:
            url = str(request.build_absolute_uri(path))
        else:
            url = (base_url or settings.SITE_URL).rstrip("/") + path
        self.prefix, self.suffix = url.split(str(self._SENTINEL), 1)
        self.tokens = MediaTokens(int(time.time()) + self.ttl) if mode == "signed" else None

    def url(self, item_id: int, media_key: str) -> str | None:
        if not media_key:
            return None
        if self.tokens is None:
            return f"{self.prefix}{item_id}{self.suffix}"
        if self.s3:
            # Presigned from the key itself: a frozen version's media stays reachable for
            # as long as the object exists.
            return media_presign(media_key, ttl=self.ttl)
        # Tokens are URL-safe base64 with ":" separators; ":" is what urlencode would quote.
        token = self.tokens.token(item_id).replace(":", "%3A")
        return f"{self.prefix}{item_id}{self.suffix}?sig={token}"


def request_base_url(request: Any) -> str:
    """The scheme and host a request reached the service by, for links made later."""
    return str(request.build_absolute_uri("/")).rstrip("/")


def url_ttl_clean(raw: Any) -> int | None:
    if raw in (None, ""):
        return None
    try:
        ttl = int(raw)
    except (TypeError, ValueError):
        ttl = 0
    if not 10 <= ttl <= MAX_URL_TTL:
        raise _invalid("url_ttl", f"must be a whole number of seconds from 10 to {MAX_URL_TTL}")
    return ttl


# ---------------------------------------------------------------------------------- JSONL


def jsonl_chunks(
    source: ExportSource,
    *,
    urls: MediaUrls,
    model: Model | None = None,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> Iterator[bytes]:
    """One JSON object per line and item, in item id order."""
    dumps = json.dumps
    for batch in iter_rows(
        source, payload="record", model=model, batch_size=batch_size, progress=progress
    ):
        # PostgreSQL built each object; only the signed URL is added here, as the last key.
        lines = [
            f'{row.payload[:-1]}, "media_url" : {dumps(urls.url(row.item_id, row.media_key))}}}\n'
            for row in batch
        ]
        yield "".join(lines).encode()


def record_page(
    source: ExportSource,
    *,
    after: int,
    limit: int,
    urls: MediaUrls,
    model: Model | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of records (as JSONL lines hold them) after item id `after`, and the id to
    continue after, or None on the last page."""
    batch = fetch_rows(source, after=after, limit=limit + 1, payload="record", model=model)
    cursor = None
    rows = batch.rows
    if len(batch.ids) > limit:
        cursor = batch.ids[limit - 1]
        rows = [row for row in rows if row.item_id <= cursor]
    records = []
    for row in rows:
        record = json.loads(row.payload)
        record["media_url"] = urls.url(row.item_id, row.media_key)
        records.append(record)
    return records, cursor


# ----------------------------------------------------------------------------------- COCO


def rle_counts(counts: Any) -> list[int]:
    """Run lengths of a COCO RLE: an uncompressed list, or the compressed string form."""
    if isinstance(counts, list):
        return [int(c) for c in counts]
    out: list[int] = []
    data = str(counts).encode()
    p = 0
    while p < len(data):
        x, k, more = 0, 0, True
        while more:
            c = data[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def rle_area_bbox(rle: dict[str, Any]) -> tuple[float, list[float]]:
    """Area and [x, y, w, h] of a column-major COCO RLE mask."""
    height = int(rle["size"][0])
    area = 0
    x0 = y0 = float("inf")
    x1 = y1 = -1.0
    pos = 0
    for index, run in enumerate(rle_counts(rle["counts"])):
        if index % 2 and run > 0:
            area += run
            first, last = pos, pos + run - 1
            col0, col1 = first // height, last // height
            x0, x1 = min(x0, col0), max(x1, col1)
            if col0 == col1:
                y0, y1 = min(y0, first % height), max(y1, last % height)
            else:
                y0, y1 = 0, max(y1, height - 1)
        pos += run
    if area == 0:
        return 0.0, [0.0, 0.0, 0.0, 0.0]
    return float(area), [float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1)]


def _polygon_area(flat: Sequence[float]) -> float:
    xs, ys = flat[0::2], flat[1::2]
    n = len(xs)
    twice = sum(xs[i] * ys[(i + 1) % n] - xs[(i + 1) % n] * ys[i] for i in range(n))
    return abs(twice) / 2.0


@dataclass
class _Group:
    label: str
    box: list[float] | None = None
    polygons: list[list[float]] = field(default_factory=list)
    rle: dict[str, Any] | None = None
    iscrowd: int | None = None


def coco_objects(
    item_id: int, shapes: Sequence[dict[str, Any]], categories: dict[str, int], next_id: int
) -> list[dict[str, Any]]:
    """An item's shapes as COCO annotations, numbered from `next_id`.

    Shapes that came from one COCO annotation (same `coco_id` in their metadata, as our
    COCO import writes them) become one annotation again: the box its bbox, the polygons
    or mask its segmentation. Other boxes, polygons and masks are one annotation each;
    a polygon's or mask's bbox is computed. Lines, keypoints and categories are skipped.
    """
    groups: dict[Any, _Group] = {}
    for shape in shapes:
        kind = shape.get("kind")
        if kind not in COCO_KINDS:
            continue
        metadata = shape.get("metadata") or {}
        coco_id = metadata.get("coco_id") if isinstance(metadata, dict) else None
        key = ("coco", coco_id) if coco_id is not None else ("id", shape.get("id"))
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(label=shape["label"])
        if isinstance(metadata, dict) and metadata.get("iscrowd") in (0, 1):
            group.iscrowd = int(metadata["iscrowd"])
        geometry = shape.get("geometry") or {}
        if kind == "box":
            group.box = [
                float(geometry["x"]),
                float(geometry["y"]),
                float(geometry["width"]),
                float(geometry["height"]),
            ]
        elif kind == "polygon":
            group.polygons.append([float(c) for point in geometry["vertices"] for c in point[:2]])
        else:
            group.rle = geometry["rle"]
    out = []
    for group in groups.values():
        if group.label not in categories:
            categories[group.label] = max(categories.values(), default=0) + 1
        segmentation: Any = []
        bbox = group.box
        if group.polygons:
            segmentation = group.polygons
            area = sum(_polygon_area(p) for p in group.polygons)
            if bbox is None:
                xs = [c for p in group.polygons for c in p[0::2]]
                ys = [c for p in group.polygons for c in p[1::2]]
                bbox = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
        elif group.rle is not None:
            segmentation = group.rle
            area, rle_box = rle_area_bbox(group.rle)
            bbox = bbox or rle_box
        else:
            area = bbox[2] * bbox[3] if bbox else 0.0
        iscrowd = group.iscrowd
        if iscrowd is None:
            iscrowd = 1 if group.rle is not None and not group.polygons else 0
        out.append(
            {
                "id": next_id,
                "image_id": item_id,
                "category_id": categories[group.label],
                "bbox": bbox,
                "area": area,
                "iscrowd": iscrowd,
                "segmentation": segmentation,
            }
        )
        next_id += 1
    return out


def _spooled_copy(spool: IO[bytes]) -> Iterator[bytes]:
    spool.seek(0)
    while chunk := spool.read(_SPOOL_CHUNK):
        yield chunk


def coco_chunks(
    source: ExportSource,
    *,
    urls: MediaUrls,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> Iterator[bytes]:
    """A COCO detection file, written incrementally.

    One pass over the items: images go out as they are read; their annotations wait in a
    temporary file (disk, not memory) and follow; categories come last, so a label that
    appears while a live slice is being exported still gets its category. Key order does
    not matter to JSON readers (pycocotools included).
    """
    categories = {label: index for index, label in enumerate(source_labels(source, COCO_KINDS), 1)}
    info = {
        "description": f"Exported from nucleus: {source.describe()}",
        "version": str(source.version.number) if source.version is not None else "",
        "date_created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(source.timestamp())),
    }
    yield ('{"info": ' + json.dumps(info) + ', "licenses": [], "images": [').encode()
    next_id = 1
    first_image = True
    first_annotation = True
    with tempfile.TemporaryFile() as spool:
        for batch in iter_rows(
            source, payload="annotations", batch_size=batch_size, progress=progress
        ):
            images = []
            annotations: list[str] = []
            for row in batch:
                images.append(
                    json.dumps(
                        {
                            "id": row.item_id,
                            "file_name": row.reference_id,
                            "width": row.width,
                            "height": row.height,
                            "coco_url": urls.url(row.item_id, row.media_key),
                        }
                    )
                )
                objects = coco_objects(row.item_id, json.loads(row.payload), categories, next_id)
                next_id += len(objects)
                annotations.extend(json.dumps(o) for o in objects)
            text = ", ".join(images)
            yield ((", " if not first_image else "") + text).encode()
            first_image = False
            if annotations:
                spool.write(
                    ((", " if not first_annotation else "") + ", ".join(annotations)).encode()
                )
                first_annotation = False
        yield b'], "annotations": ['
        yield from _spooled_copy(spool)
    listed = [
        {"id": index, "name": label, "supercategory": ""}
        for label, index in sorted(categories.items(), key=lambda c: c[1])
    ]
    yield ('], "categories": ' + json.dumps(listed) + "}\n").encode()


# ----------------------------------------------------------------------------------- YOLO


class _Tar:
    """A tar archive written as a stream of bytes, member by member.

    Written by hand (headers from tarfile.TarInfo) rather than with tarfile.TarFile,
    which keeps every member it wrote in a list and buffers whole members: here each
    member's bytes go out as soon as they are made, and large ones in pieces.
    """

    BLOCK = tarfile.BLOCKSIZE
    RECORD = tarfile.RECORDSIZE

    def __init__(self, *, mtime: float) -> None:
        self.offset = 0
        self.mtime = int(mtime)

    def _out(self, data: bytes) -> bytes:
        self.offset += len(data)
        return data

    def header(self, name: str, size: int) -> bytes:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mtime = self.mtime
        info.mode = 0o644
        return self._out(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def padding(self, size: int) -> bytes:
        return self._out(b"\0" * (-size % self.BLOCK))

    def member(self, name: str, data: bytes) -> bytes:
        return self.header(name, len(data)) + self._out(data) + self.padding(len(data))

    def member_from(self, name: str, f: IO[bytes], size: int) -> Iterator[bytes]:
        """A member whose `size` bytes are read from `f`, in pieces."""
        yield self.header(name, size)
        left = size
        while left > 0:
            chunk = f.read(min(_SPOOL_CHUNK, left))
            if not chunk:
                raise OSError(f"{name}: the file ended early")
            left -= len(chunk)
            yield self._out(chunk)
        yield self.padding(size)

    def end(self) -> bytes:
        # Two zero blocks, then zeros up to a whole record, as tar(1) and tarfile write.
        closing = self._out(b"\0" * (2 * self.BLOCK))
        return closing + self._out(b"\0" * (-self.offset % self.RECORD))


def yolo_line(box: dict[str, Any], cls: int, width: int, height: int) -> str | None:
    """`cls cx cy w h`, normalised to the image size and clipped to it; None if empty."""
    x0 = min(max(float(box["x"]), 0.0), width)
    y0 = min(max(float(box["y"]), 0.0), height)
    x1 = min(max(float(box["x"]) + float(box["width"]), 0.0), width)
    y1 = min(max(float(box["y"]) + float(box["height"]), 0.0), height)
    if x1 <= x0 or y1 <= y0:
        return None
    cx, cy = (x0 + x1) / 2 / width, (y0 + y1) / 2 / height
    w, h = (x1 - x0) / width, (y1 - y0) / height
    return f"{cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"


def _csv_field(value: str) -> str:
    if any(c in value for c in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _media_member(tar: _Tar, name: str, key: str) -> Iterator[bytes]:
    """The stored image as a tar member; nothing if it cannot be read."""
    try:
        size = default_storage.size(key)
        f = default_storage.open(key, "rb")
    except OSError:
        return  # missing media: media.csv still lists its URL
    with f:
        yield from tar.member_from(name, f, size)


def yolo_chunks(
    source: ExportSource,
    *,
    urls: MediaUrls,
    include_media: bool = False,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> Iterator[bytes]:
    """A tar stream: labels/<item id>.txt per item, media.csv, data.yaml (and with
    `include_media`, images/<item id><ext> read from storage).

    Only boxes become YOLO labels; classes are the box labels sorted by name. Items
    without a known width and height cannot be normalised: they are listed in
    skipped.txt instead.
    """
    names = {label: index for index, label in enumerate(source_labels(source, YOLO_KINDS))}
    tar = _Tar(mtime=source.timestamp())
    # media.csv and skipped.txt grow with the items: they wait on disk, not in memory.
    with tempfile.TemporaryFile() as media_list, tempfile.TemporaryFile() as skipped:
        media_list.write(b"image,label,reference_id,url\n")
        for batch in iter_rows(
            source, payload="annotations", batch_size=batch_size, progress=progress
        ):
            out: list[bytes] = []
            for row in batch:
                if not row.width or not row.height:
                    skipped.write(f"{row.item_id}\t{row.reference_id}\tno width/height\n".encode())
                    continue
                lines = []
                for shape in json.loads(row.payload):
                    if shape.get("kind") not in YOLO_KINDS:
                        continue
                    label = shape["label"]
                    if label not in names:
                        names[label] = len(names)
                    line = yolo_line(shape["geometry"], names[label], row.width, row.height)
                    if line is not None:
                        lines.append(line)
                stem = str(row.item_id)
                label_path = f"labels/{stem}.txt"
                out.append(
                    tar.member(label_path, ("\n".join(lines) + "\n" if lines else "").encode())
                )
                ext = PurePosixPath(row.media_key).suffix.lower() or ".jpg"
                image_path = f"images/{stem}{ext}"
                if include_media and row.media_key:
                    yield b"".join(out)
                    out = []
                    yield from _media_member(tar, image_path, row.media_key)
                url = urls.url(row.item_id, row.media_key) or ""
                fields = (image_path, label_path, row.reference_id, url)
                media_list.write(",".join(_csv_field(v) for v in fields).encode() + b"\n")
            yield b"".join(out)
        yield tar.member("data.yaml", _data_yaml(source, names, include_media).encode())
        for name, f in (("media.csv", media_list), ("skipped.txt", skipped)):
            size = f.tell()
            if size or name == "media.csv":
                f.seek(0)
                yield from tar.member_from(name, f, size)
    yield tar.end()


def _data_yaml(source: ExportSource, names: dict[str, int], include_media: bool) -> str:
    lines = [
        f"# Exported from nucleus: {source.describe()}",
        "# Boxes only. Labels are labels/<item id>.txt; media.csv maps each to its image URL.",
    ]
    if not include_media:
        lines.append("# Download each url in media.csv to its `image` path before training.")
    lines += ["path: .", "train: images", "val: images", f"nc: {len(names)}", "names:"]
    # JSON strings are valid YAML double-quoted scalars: any label is written safely.
    lines += [
        f"  {index}: {json.dumps(label)}"
        for label, index in sorted(names.items(), key=lambda n: n[1])
    ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ dispatch


def export_options_clean(
    *,
    dataset: Dataset,
    format: Any,
    predictions: Any = None,
    url_ttl: Any = None,
    include_media: Any = False,
    media_urls: Any = None,
) -> dict[str, Any]:
    """Check export options; unknown formats or models are a 400 naming the field.

    `media_urls` may stay None: export_media_mode picks it once the source is known.
    """
    if format not in FORMATS:
        raise _invalid("format", f"must be one of {', '.join(FORMATS)}")
    model = None
    if predictions not in (None, ""):
        if format != "jsonl":
            raise _invalid("predictions", "only the jsonl format carries predictions")
        model = Model.objects.filter(dataset=dataset, name=predictions).first()
        if model is None:
            raise _invalid("predictions", f"no model {predictions!r} in this dataset")
    if include_media not in (True, False):
        raise _invalid("include_media", "must be true or false")
    if include_media and format != "yolo":
        raise _invalid("include_media", "only the yolo format can include images")
    if media_urls in (None, ""):
        media_urls = None
    elif media_urls not in MEDIA_URL_MODES:
        raise _invalid("media_urls", f"must be one of {', '.join(MEDIA_URL_MODES)}")
    ttl = url_ttl_clean(url_ttl)
    if media_urls == "plain" and ttl is not None:
        raise _invalid("url_ttl", "only signed media URLs expire; plain ones need a token")
    return {
        "format": format,
        "model": model,
        "url_ttl": ttl,
        "include_media": include_media,
        "media_urls": media_urls,
    }


def export_media_mode(
    source: ExportSource, *, media_urls: MediaUrlMode | None, url_ttl: int | None
) -> MediaUrlMode:
    """The media URL mode asked for, else plain for a frozen version (so that its export
    is the same file every time) and signed for live data (or when a `url_ttl` was given)."""
    if media_urls is not None:
        return media_urls
    if url_ttl is not None or not source.reproducible:
        return "signed"
    return "plain"


def export_chunks(
    source: ExportSource,
    *,
    format: ExportFormat,
    urls: MediaUrls,
    model: Model | None = None,
    include_media: bool = False,
    progress: Progress | None = None,
) -> Iterator[bytes]:
    """The export as a stream of byte chunks."""
    if format == "jsonl":
        return jsonl_chunks(source, urls=urls, model=model, progress=progress)
    if format == "coco":
        return coco_chunks(source, urls=urls, progress=progress)
    return yolo_chunks(source, urls=urls, include_media=include_media, progress=progress)


def export_filename(source: ExportSource, format: ExportFormat) -> str:
    return f"{source.filename_stem}.{EXTENSIONS[format]}"


# ----------------------------------------------------------------------------------- jobs


def export_job_start(
    *,
    dataset: Dataset,
    user: Any,
    format: ExportFormat,
    slice: Slice | None = None,
    version: SliceVersion | None = None,
    model: Model | None = None,
    url_ttl: int | None = None,
    include_media: bool = False,
    media_urls: MediaUrlMode | None = None,
    base_url: str | None = None,
) -> Job:
    """Queue an export that writes its file into storage for a later download.

    `base_url` is where the caller reached the service (the request's scheme and host):
    the file's media URLs point there, not at a SITE_URL that may name another port.
    """
    source = export_source(dataset=dataset, slice=slice, version=version)
    params = {
        "format": format,
        "slice_id": slice.pk if slice is not None else None,
        "version": version.number if version is not None else None,
        "predictions": model.name if model is not None else None,
        "url_ttl": url_ttl,
        "include_media": include_media,
        "media_urls": export_media_mode(source, media_urls=media_urls, url_ttl=url_ttl),
        "base_url": base_url or settings.SITE_URL,
    }
    return job_create(
        kind="export", dataset=dataset, user=user, params=params, total=source_count(source)
    )


def export_storage_key(job: Job, filename: str) -> str:
    return f"datasets/{job.dataset_id}/exports/{job.pk}/{filename}"


@job_runner("export")
def export_run(ctx: JobContext) -> dict[str, Any]:
    """Write the export to a temporary file, then store it under a key fixed by the job.

    A retried or resumed job writes the whole file again and replaces the stored one, so
    running it twice leaves exactly one complete file.
    """
    job = ctx.job
    dataset = job.dataset
    if dataset is None:
        raise ValueError("an export job needs a dataset")
    params = ctx.params
    slice = version = None
    if params.get("slice_id") is not None:
        slice = Slice.objects.get(dataset=dataset, pk=params["slice_id"])
        if params.get("version") is not None:
            version = SliceVersion.objects.get(slice=slice, number=params["version"])
    model = None
    if params.get("predictions"):
        model = Model.objects.get(dataset=dataset, name=params["predictions"])
    source = export_source(dataset=dataset, slice=slice, version=version)
    ctx.set_total(source_count(source))
    format = params["format"]

    def progress(done: int) -> None:
        with ctx.checkpoint(done=done, state={}):  # also stops a cancelled job
            pass

    filename = export_filename(source, format)
    key = export_storage_key(job, filename)
    # Jobs queued before media_urls and base_url were recorded keep their old behaviour.
    urls = MediaUrls(
        mode=params.get("media_urls") or "signed",
        ttl=params.get("url_ttl"),
        base_url=params.get("base_url"),
    )
    digest = hashlib.sha256()
    with tempfile.TemporaryFile() as out:
        for chunk in export_chunks(
            source,
            format=format,
            urls=urls,
            model=model,
            include_media=bool(params.get("include_media")),
            progress=progress,
        ):
            out.write(chunk)
            digest.update(chunk)
        size = out.tell()
        out.seek(0)
        if default_storage.exists(key):
            default_storage.delete(key)
        stored = default_storage.save(key, File(out, name=filename))
    return {
        "key": stored,
        "filename": filename,
        "size": size,
        "sha256": digest.hexdigest(),
        "format": format,
        "content_type": CONTENT_TYPES[format],
        "items": ctx.job.progress_done,
    }


def export_file_name(job: Job) -> str:
    return str(job.result.get("filename") or os.path.basename(str(job.result.get("key", ""))))


__all__ = [
    "CONTENT_TYPES",
    "FORMATS",
    "MEDIA_URL_MODES",
    "ExportSource",
    "MediaUrls",
    "coco_chunks",
    "coco_objects",
    "export_chunks",
    "export_filename",
    "export_job_start",
    "export_media_mode",
    "export_options_clean",
    "export_run",
    "export_source",
    "fetch_rows",
    "iter_rows",
    "jsonl_chunks",
    "record_page",
    "request_base_url",
    "rle_area_bbox",
    "source_count",
    "source_labels",
    "yolo_chunks",
    "yolo_line",
]
