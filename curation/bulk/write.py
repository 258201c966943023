"""Bulk writes of item records, annotations and predictions.

Every writer here is an idempotent upsert: items by ``(dataset, reference_id)``,
annotations by ``(dataset, annotation_id)``, predictions by ``(model, prediction_id)``.
Rows are validated first (curation.bulk.validate), then written with COPY into a
temporary table and one set-based INSERT ... ON CONFLICT, so a batch of 10,000 rows costs
a handful of statements instead of 10,000 ORM saves.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from curation.bulk.validate import (
    ItemRecord,
    RowError,
    ShapeRow,
    clean_item_rows,
    clean_shape_rows,
)
from curation.db import retry_transient
from curation.errors import InvalidInput
from curation.models import Dataset, Model
from curation.quality import QUALITY_COLUMNS

_NO_QUALITY = (None,) * len(QUALITY_COLUMNS)
_Q_COLUMNS = ", ".join(QUALITY_COLUMNS)
_Q_IN = ", ".join(f"i.{c}" for c in QUALITY_COLUMNS)
_Q_C = ", ".join(f"c.{c}" for c in QUALITY_COLUMNS)
_Q_N = ", ".join(f"n.{c}" for c in QUALITY_COLUMNS)
_Q_TYPES = ", ".join(
    f"{c} {'boolean' if c == 'quality_uniform' else 'double precision'}" for c in QUALITY_COLUMNS
)
# As for the hashes: a record without quality signals keeps the stored ones only for the
# same bytes (the brightness is set whenever the others are).
_Q_PICK = ",\n".join(
    f"CASE WHEN i.quality_brightness IS NOT NULL OR i.sha256 IS DISTINCT FROM c.sha256"
    f" AND i.sha256 IS NOT NULL THEN i.{c} ELSE c.{c} END AS {c}"
    for c in QUALITY_COLUMNS
)
_Q_SET = ", ".join(f"{c} = n.{c}" for c in QUALITY_COLUMNS)


@dataclass
class UpsertResult:
    items_created: int = 0
    items_updated: int = 0
    items_unchanged: int = 0
    annotations_written: int = 0
    predictions_written: int = 0
    errors: list[RowError] = field(default_factory=list)
    item_ids: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "items_created": self.items_created,
            "items_updated": self.items_updated,
            "items_unchanged": self.items_unchanged,
            "annotations_written": self.annotations_written,
            "predictions_written": self.predictions_written,
            "error_count": len(self.errors),
        }


def copy_rows(
    cursor: Any, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """COPY `rows` into `columns` of `table` on `cursor` (a Django cursor). cursor.copy()
    is psycopg's own API: wrapped so errors arrive as Django's exceptions (IntegrityError
    etc.), like every other query's."""
    with (
        connection.wrap_database_errors,
        cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)


def copy_now() -> str:
    """The time now, as the text a COPY of `created` and `updated` columns takes.

    Text, not a datetime: psycopg formats a datetime for COPY in Python, 1.6 us a value,
    which was half the client's CPU in a bulk write (two columns, six rows an item); the
    same instant as text costs it next to nothing, and PostgreSQL reads it the same.
    """
    return timezone.now().isoformat()


def _item_tuple(r: ItemRecord) -> tuple[Any, ...]:
    m = r.media
    if m is None:
        return (r.reference_id, r.metadata, *(None,) * 9, *_NO_QUALITY)
    return (
        r.reference_id,
        r.metadata,
        m.media_key,
        m.thumbnail_key,
        m.source_uri,
        m.width,
        m.height,
        m.sha256,
        m.byte_size,
        m.phash,
        m.phash_detail,
    ) + (_NO_QUALITY if m.quality is None else m.quality.values())


def _reserve_ids(cursor: Any, count: int) -> list[int]:
    """Take `count` ids from the item id sequence, ascending."""
    if count == 0:
        return []
    cursor.execute(
        "SELECT nextval(pg_get_serial_sequence('curation_item', 'id')) FROM generate_series(1, %s)",
        [count],
    )
    return sorted(row[0] for row in cursor.fetchall())


def _insert_new_items(
    dataset: Dataset, records: Sequence[ItemRecord], result: UpsertResult, order: Sequence[str]
) -> bool:
    """COPY the batch straight into the table if none of its items exist yet.

    The common case (a first ingest) then skips the staging table and the upsert. Returns
    False, having written nothing, when any item exists or a concurrent writer got there
    first; the caller then takes the upsert path.
    """
    refs = [r.reference_id for r in records]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM curation_item WHERE dataset_id = %s"
            " AND reference_id = ANY(%s))",
            [dataset.pk, refs],
        )
        if cursor.fetchone()[0]:
            return False
        ids = dict(zip(order, _reserve_ids(cursor, len(order)), strict=True))
        now = copy_now()
        try:
            with transaction.atomic():  # a savepoint: a unique violation undoes only this
                copy_rows(
                    cursor,
                    "curation_item",
                    [
                        "id",
                        "dataset_id",
                        "reference_id",
                        "metadata",
                        "media_key",
                        "thumbnail_key",
                        "source_uri",
                        "width",
                        "height",
                        "sha256",
                        "byte_size",
                        "phash",
                        "phash_detail",
                        *QUALITY_COLUMNS,
                        "created",
                        "updated",
                    ],
                    (
                        (
                            ids[ref],
                            dataset.pk,
                            ref,
                            meta or "{}",
                            key or "",
                            thumb or "",
                            src or "",
                            w,
                            h,
                            sha or "",
                            size,
                            phash,
                            detail,
                            *q,
                            now,
                            now,
                        )
                        for ref, meta, key, thumb, src, w, h, sha, size, phash, detail, *q in (
                            map(_item_tuple, records)
                        )
                    ),
                )
        except IntegrityError:
            return False
    # The COPY wrote exactly these ids: no need to read them back.
    result.item_ids.update(ids)
    result.items_created += len(records)
    return True


def _write_items(
    dataset: Dataset, records: Sequence[ItemRecord], result: UpsertResult, order: Sequence[str]
) -> None:
    """Upsert item rows; fields that are None keep the stored value.

    `records` come sorted by reference id (the lock order); `order` is the callers' order,
    in which new items get their ids, so ids follow the order items were sent in.
    """
    if _insert_new_items(dataset, records, result, order):
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _nucleus_item_in ("
            " reference_id text, metadata jsonb, media_key text, thumbnail_key text,"
            " source_uri text, width int, height int, sha256 text, byte_size bigint,"
            f" phash bigint, phash_detail bytea, {_Q_TYPES}, id bigint"
            ") ON COMMIT DELETE ROWS"
        )
        cursor.execute("TRUNCATE _nucleus_item_in")

        copy_rows(
            cursor,
            "_nucleus_item_in",
            [
                "reference_id",
                "metadata",
                "media_key",
                "thumbnail_key",
                "source_uri",
                "width",
                "height",
                "sha256",
                "byte_size",
                "phash",
                "phash_detail",
                *QUALITY_COLUMNS,
            ],
            map(_item_tuple, records),
        )
        cursor.execute(
            "SELECT i.reference_id FROM _nucleus_item_in i WHERE NOT EXISTS ("
            " SELECT 1 FROM curation_item c"
            " WHERE c.dataset_id = %s AND c.reference_id = i.reference_id)",
            [dataset.pk],
        )
        new = {row[0] for row in cursor.fetchall()}
        if new:
            new_refs = [ref for ref in order if ref in new]
            cursor.execute(
                "UPDATE _nucleus_item_in i SET id = v.id"
                " FROM unnest(%s::text[], %s::bigint[]) AS v(ref, id) WHERE i.reference_id = v.ref",
                [new_refs, _reserve_ids(cursor, len(new_refs))],
            )
        # Insert the new ones. ON CONFLICT DO NOTHING keeps a concurrent writer of the same
        # reference id from failing the batch; the UPDATE below then handles that row.
        cursor.execute(
            f"""
            INSERT INTO curation_item (id, dataset_id, reference_id, metadata, media_key,
                thumbnail_key, source_uri, width, height, sha256, byte_size, phash, phash_detail,
                {_Q_COLUMNS}, created, updated)
            SELECT i.id, %s, i.reference_id, coalesce(i.metadata, '{{}}'::jsonb),
                coalesce(i.media_key, ''), coalesce(i.thumbnail_key, ''),
                coalesce(i.source_uri, ''), i.width, i.height,
                coalesce(i.sha256, ''), i.byte_size, i.phash, i.phash_detail, {_Q_IN},
                now(), now()
            FROM _nucleus_item_in i
            WHERE i.id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM curation_item c
                              WHERE c.dataset_id = %s AND c.reference_id = i.reference_id)
            ORDER BY i.reference_id
            ON CONFLICT (dataset_id, reference_id) DO NOTHING
            """,
            [dataset.pk, dataset.pk],
        )
        result.items_created += cursor.rowcount
        # Lock the existing rows in id order first: two batches touching the same items
        # then wait for each other instead of deadlocking.
        cursor.execute(
            "SELECT c.id FROM curation_item c JOIN _nucleus_item_in i"
            " ON c.dataset_id = %s AND c.reference_id = i.reference_id ORDER BY c.id FOR UPDATE",
            [dataset.pk],
        )
        # Update existing ones, only where something differs, so a re-run writes nothing.
        cursor.execute(
            f"""
            WITH n AS (
                SELECT c.id,
                    coalesce(i.metadata, c.metadata) AS metadata,
                    coalesce(i.media_key, c.media_key) AS media_key,
                    coalesce(i.thumbnail_key, c.thumbnail_key) AS thumbnail_key,
                    coalesce(i.source_uri, c.source_uri) AS source_uri,
                    coalesce(i.width, c.width) AS width,
                    coalesce(i.height, c.height) AS height,
                    coalesce(i.sha256, c.sha256) AS sha256,
                    coalesce(i.byte_size, c.byte_size) AS byte_size,
                    -- a record without hashes keeps the stored ones only for the same bytes
                    CASE WHEN i.phash IS NOT NULL OR i.sha256 IS DISTINCT FROM c.sha256
                        AND i.sha256 IS NOT NULL THEN i.phash ELSE c.phash END AS phash,
                    CASE WHEN i.phash IS NOT NULL OR i.sha256 IS DISTINCT FROM c.sha256
                        AND i.sha256 IS NOT NULL THEN i.phash_detail ELSE c.phash_detail
                        END AS phash_detail,
                    {_Q_PICK}
                FROM _nucleus_item_in i
                JOIN curation_item c ON c.dataset_id = %s AND c.reference_id = i.reference_id
            )
            UPDATE curation_item c SET metadata = n.metadata, media_key = n.media_key,
                thumbnail_key = n.thumbnail_key, source_uri = n.source_uri, width = n.width,
                height = n.height, sha256 = n.sha256, byte_size = n.byte_size, phash = n.phash,
                phash_detail = n.phash_detail, {_Q_SET}, updated = now()
            FROM n
            WHERE c.id = n.id AND (c.metadata, c.media_key, c.thumbnail_key, c.source_uri,
                c.width, c.height, c.sha256, c.byte_size, c.phash, c.phash_detail, {_Q_C})
                IS DISTINCT FROM (n.metadata, n.media_key, n.thumbnail_key, n.source_uri,
                n.width, n.height, n.sha256, n.byte_size, n.phash, n.phash_detail, {_Q_N})
            """,
            [dataset.pk],
        )
        result.items_updated += cursor.rowcount
        result.items_unchanged += len(records) - cursor.rowcount
        cursor.execute(
            "SELECT c.reference_id, c.id FROM _nucleus_item_in i JOIN curation_item c "
            "ON c.dataset_id = %s AND c.reference_id = i.reference_id",
            [dataset.pk],
        )
        result.item_ids.update(cursor.fetchall())
    # rows inserted above were counted as unchanged by the update step too
    result.items_unchanged -= result.items_created


def _last_per_id(rows: Sequence[ShapeRow], *, by_key: bool = True) -> list[ShapeRow]:
    """Keep the last row for each (model, client id), sorted by it.

    ON CONFLICT can't touch a row twice; and writing in key order makes concurrent batches
    take their locks in the same order, so they wait for each other instead of deadlocking.
    Rows of new items (`by_key` False) are left unsorted here: _write_shapes orders them
    item by item (then by key), so each item's rows take consecutive ids, which history
    records as one row per item (curation.history.compact). Their items are this
    transaction's own, so only a concurrent batch putting the same ids on other new items
    could deadlock with it (and is retried); the upsert that follows a conflict sorts by
    key in SQL.
    """
    by_id = {(r.model or "", r.client_id): r for r in rows}
    if not by_key:
        return list(by_id.values())
    return [by_id[key] for key in sorted(by_id)]


def _copy_new_shapes(table: str, columns: list[str], rows: Iterable[tuple[Any, ...]]) -> bool:
    """COPY rows straight into `table`; False (nothing written) if any id already exists.

    Used when every row belongs to an item created in this batch: its ids are then almost
    always new, and COPY costs half of the staging-table upsert.
    """
    now = copy_now()
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            copy_rows(
                cursor, table, [*columns, "created", "updated"], ((*row, now, now) for row in rows)
            )
    except IntegrityError:
        return False
    return True


@dataclass(frozen=True)
class _ShapeTable:
    """Where a kind of shape lives: its conflict key and the columns an upsert may change.

    Column names come only from the two constants below, never from input.
    """

    table: str
    keys: tuple[str, ...]
    values: tuple[str, ...]
    types: tuple[str, ...]  # SQL types of keys + values, for the staging table
    # A counter column that every real change adds one to (annotations' `version`, which
    # single-annotation edits compare); an unchanged row keeps it, as it keeps `updated`.
    bump: str = ""

    def upsert_sql(self, staging: str) -> str:
        columns = ", ".join((*self.keys, *self.values))
        changed = ", ".join(f"{v} = EXCLUDED.{v}" for v in self.values)
        if self.bump:
            changed += f", {self.bump} = {self.table}.{self.bump} + 1"
        ours = ", ".join(f"{self.table}.{v}" for v in self.values)
        theirs = ", ".join(f"EXCLUDED.{v}" for v in self.values)
        return (
            f"INSERT INTO {self.table} ({columns}, created, updated)"
            f" SELECT {columns}, now(), now() FROM {staging} ORDER BY {', '.join(self.keys)}"
            f" ON CONFLICT ({', '.join(self.keys)}) DO UPDATE SET {changed}, updated = now()"
            f" WHERE ({ours}) IS DISTINCT FROM ({theirs})"
        )


_ANNOTATIONS = _ShapeTable(
    table="curation_annotation",
    keys=("dataset_id", "annotation_id"),
    values=("item_id", "kind", "label", "geometry", "metadata"),
    types=("bigint", "text", "bigint", "text", "text", "jsonb", "jsonb"),
    bump="version",
)
_PREDICTIONS = _ShapeTable(
    table="curation_prediction",
    keys=("model_id", "prediction_id"),
    values=("item_id", "kind", "label", "confidence", "geometry", "metadata"),
    types=("bigint", "text", "bigint", "text", "text", "float8", "jsonb", "jsonb"),
)


_ITEM = 2  # the item id's place in a row of either table (after its two keys)


def _write_shapes(spec: _ShapeTable, rows: list[tuple[Any, ...]], *, new_items: bool) -> int:
    """Upsert rows (keys, then values, in `spec`'s order); returns rows inserted or changed.

    `new_items`: every row's item was created in this transaction, so the ids are almost
    surely new and a straight COPY is tried first. Otherwise (or if an id exists) rows go
    through a staging table and one INSERT ... ON CONFLICT that writes only what differs.
    """
    columns = [*spec.keys, *spec.values]
    # Item by item, and by key within an item: an item's new rows take consecutive ids,
    # which history records as one row per item (curation.history.compact), and their ids
    # follow the client ids' order whatever order the input came in, as they always have.
    if new_items and _copy_new_shapes(
        spec.table, columns, sorted(rows, key=lambda r: (r[_ITEM], r[: len(spec.keys)]))
    ):
        return len(rows)
    staging = f"_nucleus_{spec.table}_in"
    definition = ", ".join(f"{c} {t}" for c, t in zip(columns, spec.types, strict=True))
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {staging} ({definition}) ON COMMIT DELETE ROWS"
        )
        cursor.execute(f"TRUNCATE {staging}")
        copy_rows(cursor, staging, columns, rows)
        cursor.execute(spec.upsert_sql(staging))
        return int(cursor.rowcount)


def write_annotations(
    dataset: Dataset,
    rows: Sequence[ShapeRow],
    item_ids: dict[str, int],
    *,
    new_items: bool = False,
) -> int:
    """Upsert annotations by (dataset, annotation_id); returns rows inserted or changed."""
    if not rows:
        return 0
    return _write_shapes(
        _ANNOTATIONS,
        [
            (
                dataset.pk,
                r.client_id,
                item_ids[r.reference_id],
                r.kind,
                r.label,
                r.geometry,
                r.metadata,
            )
            for r in _last_per_id(rows, by_key=not new_items)
        ],
        new_items=new_items,
    )


def write_predictions(
    dataset: Dataset,
    rows: Sequence[ShapeRow],
    item_ids: dict[str, int],
    *,
    new_items: bool = False,
) -> int:
    """Upsert predictions by (model, prediction_id), creating models named by the rows."""
    if not rows:
        return 0
    rows = _last_per_id(rows, by_key=not new_items)
    names = sorted({r.model for r in rows if r.model})
    models = {m.name: m.pk for m in Model.objects.filter(dataset=dataset, name__in=names)}
    for name in names:
        if name not in models:
            model, _ = Model.objects.get_or_create(dataset=dataset, name=name)
            models[name] = model.pk
    return _write_shapes(
        _PREDICTIONS,
        [
            (
                models[r.model or ""],
                r.client_id,
                item_ids[r.reference_id],
                r.kind,
                r.label,
                r.confidence,
                r.geometry,
                r.metadata,
            )
            for r in rows
        ],
        new_items=new_items,
    )


@transaction.atomic
def records_write(*, dataset: Dataset, records: Sequence[ItemRecord]) -> UpsertResult:
    """Write validated item records with their annotations and predictions, atomically."""
    result = UpsertResult()
    if not records:
        return result
    # Key order everywhere, so concurrent batches lock rows in the same order (no deadlock).
    order = [r.reference_id for r in records]
    records = sorted(records, key=lambda r: r.reference_id)
    _write_items(dataset, records, result, order)
    new_items = result.items_created == len(records)
    result.annotations_written = write_annotations(
        dataset, [a for r in records for a in r.annotations], result.item_ids, new_items=new_items
    )
    result.predictions_written = write_predictions(
        dataset, [p for r in records for p in r.predictions], result.item_ids, new_items=new_items
    )
    return result


def items_upsert(*, dataset: Dataset, rows: Sequence[Any]) -> UpsertResult:
    """Validate and write API item rows: all of them, or none and a 400 naming each bad row."""
    records, errors = clean_item_rows(dataset, rows)
    if errors:
        raise InvalidInput(
            f"{len(errors)} of {len(rows)} rows are invalid; nothing was written.",
            fields=[e.as_field("items") for e in errors[:1000]],
        )
    return retry_transient(lambda: records_write(dataset=dataset, records=records))


def shapes_upsert(*, dataset: Dataset, rows: Sequence[Any], model: Model | None = None) -> int:
    """Validate and write annotation rows (or prediction rows for `model`), all or none.

    Each row names its item by ``reference_id``; a row with an unknown item is an error.
    """
    collection = "predictions" if model else "annotations"
    cleaned, errors = clean_shape_rows(dataset, rows, model=model)
    if errors:
        raise InvalidInput(
            f"{len(errors)} of {len(rows)} rows are invalid; nothing was written.",
            fields=[e.as_field(collection) for e in errors[:1000]],
        )
    refs = {row.reference_id for row in cleaned}

    def write() -> int:
        with transaction.atomic():
            ids = dict(
                Dataset.objects.get(pk=dataset.pk)
                .items.filter(reference_id__in=refs)
                .values_list("reference_id", "id")
            )
            if model is not None:
                return write_predictions(dataset, cleaned, ids)
            return write_annotations(dataset, cleaned, ids)

    return retry_transient(write)
