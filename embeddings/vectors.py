"""Vector storage: bulk writes, the per-(model, dataset) HNSW indexes, server capabilities.

See embeddings/models.py for the table layout and why indexes are partial expression
indexes on ``vector::vector(D)``. Everything here that builds SQL from numbers (model and
dataset ids, dimensions) inlines them as integers on purpose: the planner only matches a
partial index when the predicate's values are constants in the query text, whatever the
driver's parameter binding mode.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction

from curation.models import Dataset
from embeddings.models import EmbeddingModel

logger = logging.getLogger(__name__)

TABLE = "embeddings_embedding"
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
_COPY_TRAILER = (-1).to_bytes(2, "big", signed=True)


def normalize(vectors: np.ndarray) -> np.ndarray:
    """L2-normalise rows; all-zero rows (no direction) are refused by the callers."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def vector_literal(vector: Sequence[float] | np.ndarray) -> str:
    """pgvector's text form of a vector, e.g. '[0.1,0.2]'."""
    return "[" + ",".join(repr(float(v)) for v in np.asarray(vector, dtype=np.float32)) + "]"


def _copy_payload(item_ids: Sequence[int], vectors: np.ndarray) -> bytes:
    """COPY BINARY rows of (item_id bigint, vector vector), built with NumPy in one go."""
    n, dim = vectors.shape
    row = np.dtype(
        [
            ("fields", ">i2"),
            ("id_len", ">i4"),
            ("id", ">i8"),
            ("vec_len", ">i4"),
            ("dim", ">i2"),
            ("unused", ">i2"),
            ("values", ">f4", (dim,)),
        ]
    )
    rows = np.empty(n, dtype=row)
    rows["fields"] = 2
    rows["id_len"] = 8
    rows["id"] = np.asarray(item_ids, dtype=np.int64)
    rows["vec_len"] = 4 + 4 * dim
    rows["dim"] = dim
    rows["unused"] = 0
    rows["values"] = vectors
    return _COPY_HEADER + rows.tobytes() + _COPY_TRAILER


def vectors_write(
    *,
    model: EmbeddingModel,
    dataset: Dataset,
    item_ids: Sequence[int],
    vectors: np.ndarray,
    overwrite: bool = True,
) -> int:
    """Store unit vectors for items of `dataset` in bulk (COPY + one INSERT); returns rows written.

    Items that are not in `dataset` (or were deleted meanwhile) are skipped by the join.
    With `overwrite` False an item that already has a vector keeps it, so two jobs racing
    over the same items write each one once.
    """
    if len(item_ids) == 0:
        return 0
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[1] != model.dimension:
        raise ValueError(f"expected vectors of dimension {model.dimension}, got {vectors.shape}")
    conflict = (
        "DO UPDATE SET vector = EXCLUDED.vector, created = now()" if overwrite else "DO NOTHING"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _nucleus_vec_in (item_id bigint, vector vector)"
            " ON COMMIT DELETE ROWS"
        )
        cursor.execute("TRUNCATE _nucleus_vec_in")
        with cursor.copy(
            "COPY _nucleus_vec_in (item_id, vector) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.write(_copy_payload(item_ids, vectors))
        cursor.execute(
            f"""
            INSERT INTO {TABLE} (model_id, dataset_id, item_id, vector, created)
            SELECT DISTINCT ON (v.item_id) %s, i.dataset_id, v.item_id, v.vector, now()
            FROM _nucleus_vec_in v JOIN curation_item i ON i.id = v.item_id AND i.dataset_id = %s
            ORDER BY v.item_id
            ON CONFLICT (model_id, item_id) {conflict}
            """,
            [model.pk, dataset.pk],
        )
        return int(cursor.rowcount)


# ---------------------------------------------------------------------------- indexes


def index_name(model_id: int, dataset_id: int) -> str:
    return f"emb_hnsw_m{int(model_id)}_d{int(dataset_id)}"


# Indexes store half-precision copies of the vectors (pgvector >= 0.7's `halfvec`) where
# the server has the type: half the index's size (20,000 x 512: 52 MB as vector, 26 MB as
# halfvec), so a 1M x 512 graph (about 1.3 GB instead of 2.6) stays in a page cache that
# these machines reclaim within a minute, and a cold start reads half as much. The table
# keeps full precision: the index only ranks candidates, and their distances (the scores
# the API returns, the threshold of duplicates, the order of a page) are computed on the
# stored vectors.
# tests/test_search_service.py checks recall@10 against exact full-precision search.
HALFVEC_SINCE = (0, 7, 0)
HALFVEC_MAX_DIMENSION = 4000  # pgvector's HNSW limit for `halfvec`


def index_type_for(dimension: int) -> str:
    """The type a new index of `dimension`-d vectors stores: halfvec where possible."""
    if pgvector_version() >= HALFVEC_SINCE and dimension <= HALFVEC_MAX_DIMENSION:
        return "halfvec"
    return "vector"


def distance_sql(dimension: int, alias: str = "", index_type: str = "vector") -> str:
    """The indexed distance expression; queries must use exactly this to hit the index.

    `index_type` is the index's own (see `index_info`): an index built as `vector` on
    pgvector 0.6 keeps that type after an upgrade, and the query must cast the same way.
    """
    column = f"{alias}.vector" if alias else "vector"
    cast = "halfvec" if index_type == "halfvec" else "vector"
    return f"({column}::{cast}({int(dimension)}) <=> %s::{cast}({int(dimension)}))"


def index_info(model_id: int, dataset_id: int) -> tuple[bool, float, str]:
    """Whether the (model, dataset) index exists and is valid, its row estimate, its type."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT x.indisvalid, c.reltuples, o.opcname FROM pg_index x"
            " JOIN pg_class c ON c.oid = x.indexrelid"
            " JOIN pg_opclass o ON o.oid = x.indclass[0]"
            " WHERE x.indexrelid = to_regclass(%s)",
            [index_name(model_id, dataset_id)],
        )
        row = cursor.fetchone()
    if row is None:
        return False, 0.0, "vector"
    return bool(row[0]), float(row[1]), "halfvec" if row[2].startswith("halfvec") else "vector"


# A search asks which index serves its (model, dataset) on every query: one catalog round
# trip of the few a search makes. A valid index stays valid until it is dropped, so a
# process remembers a found one for a while (drops and builds in this process forget it
# at once). A stale answer after another process dropped or rebuilt the index costs only
# speed: the query keeps its shape, and PostgreSQL answers it exactly without the index.
# Absent indexes are never remembered: a new one is used by the next search.
INDEX_INFO_SECONDS = 30.0
_index_seen: dict[tuple[str, int, int], tuple[float, tuple[bool, float, str]]] = {}


def _cache_key(model_id: int, dataset_id: int) -> tuple[str, int, int]:
    db = f"{connection.settings_dict.get('HOST')}/{connection.settings_dict.get('NAME')}"
    return db, int(model_id), int(dataset_id)


def index_info_for_search(model_id: int, dataset_id: int) -> tuple[bool, float, str]:
    """`index_info`, remembered for INDEX_INFO_SECONDS once the index is found valid."""
    key = _cache_key(model_id, dataset_id)
    seen = _index_seen.get(key)
    now = time.monotonic()
    if seen is not None and now - seen[0] < INDEX_INFO_SECONDS:
        return seen[1]
    info = index_info(model_id, dataset_id)
    if info[0]:
        _index_seen[key] = (now, info)
    else:
        _index_seen.pop(key, None)
    return info


def _index_forget(model_id: int | None = None, dataset_id: int | None = None) -> None:
    for key in list(_index_seen):
        if (model_id is None or key[1] == model_id) and (
            dataset_id is None or key[2] == dataset_id
        ):
            _index_seen.pop(key, None)


def index_state(model_id: int, dataset_id: int) -> tuple[bool, float]:
    """Whether the (model, dataset) index exists and is valid, and its row estimate."""
    valid, rows, _ = index_info(model_id, dataset_id)
    return valid, rows


def vector_index_ensure(*, model: EmbeddingModel, dataset: Dataset) -> bool:
    """Build the HNSW index of a model's vectors in a dataset if missing; True if built.

    Jobs call this after loading vectors: building once over all rows is several times
    faster than inserting them one by one into an existing graph. Outside a transaction the
    build is CONCURRENTLY, so searches and writes go on meanwhile; a half-built (invalid)
    index left by a crash is dropped and built again.
    """
    name = index_name(model.pk, dataset.pk)
    valid, _ = index_state(model.pk, dataset.pk)
    if valid:
        return False
    concurrently = "" if connection.in_atomic_block else "CONCURRENTLY"
    dim = int(model.dimension)
    _index_forget(model.pk, dataset.pk)
    # Two jobs finishing together must not both build (or one drop the other's build in
    # progress as "invalid"): the second waits for the first, then finds the index.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(hashtext(%s))", [name])
    try:
        if index_state(model.pk, dataset.pk)[0]:
            return False
        _index_build(name, dim, model, dataset, concurrently)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [name])
    logger.info("built HNSW index %s", name)
    return True


def _index_build(
    name: str, dim: int, model: EmbeddingModel, dataset: Dataset, concurrently: str
) -> None:
    with connection.cursor() as cursor:
        if connection.in_atomic_block:
            # Inside a transaction that wrote vectors, their deferred foreign-key checks are
            # still pending, and PostgreSQL refuses to index a table with pending trigger
            # events: run the checks now.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"DROP INDEX {concurrently} IF EXISTS {name}")
        # HNSW builds are much faster when the graph fits in maintenance_work_mem.
        if settings.NUCLEUS_HNSW_BUILD_MEMORY:
            cursor.execute(
                "SELECT set_config('maintenance_work_mem', %s, false)",
                [settings.NUCLEUS_HNSW_BUILD_MEMORY],
            )
        kind = index_type_for(dim)
        try:
            cursor.execute(
                f"CREATE INDEX {concurrently} IF NOT EXISTS {name} ON {TABLE} "
                f"USING hnsw ((vector::{kind}({dim})) {kind}_cosine_ops) "
                f"WITH (m = {int(settings.NUCLEUS_HNSW_M)}, "
                f"ef_construction = {int(settings.NUCLEUS_HNSW_EF_CONSTRUCTION)}) "
                f"WHERE model_id = {int(model.pk)} AND dataset_id = {int(dataset.pk)}"
            )
            cursor.execute(f"ANALYZE {TABLE}")
        finally:
            cursor.execute("RESET maintenance_work_mem")
            if connection.in_atomic_block:
                # Back to Django's deferred checks: left IMMEDIATE, a later cascade in the
                # same transaction (a dataset delete) fails on the order of its DELETEs.
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def vector_index_drop(*, model_id: int | None = None, dataset_id: int | None = None) -> None:
    """Drop the HNSW indexes of a model, of a dataset, or of a model in a dataset.

    Outside a transaction the drop is CONCURRENTLY: a plain DROP INDEX takes an ACCESS
    EXCLUSIVE lock on the embeddings table, which every dataset shares, until the
    transaction ends.
    """
    if model_id is None and dataset_id is None:
        raise ValueError("name a model, a dataset, or both")
    model_part = str(int(model_id)) if model_id is not None else "[0-9]+"
    dataset_part = str(int(dataset_id)) if dataset_id is not None else "[0-9]+"
    concurrently = "" if connection.in_atomic_block else "CONCURRENTLY"
    _index_forget(model_id, dataset_id)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'i' AND relname ~ %s"
            " AND pg_table_is_visible(oid)",
            [f"^emb_hnsw_m{model_part}_d{dataset_part}$"],
        )
        for (name,) in cursor.fetchall():
            cursor.execute(f'DROP INDEX {concurrently} IF EXISTS "{name}"')


# ----------------------------------------------------------------------- capabilities

_version_lock = threading.Lock()
_versions: dict[str, tuple[int, ...]] = {}


def pgvector_version() -> tuple[int, ...]:
    """The server's pgvector version, e.g. (0, 6, 2); asked once per database."""
    key = f"{connection.settings_dict.get('HOST')}/{connection.settings_dict.get('NAME')}"
    with _version_lock:
        if key not in _versions:
            with connection.cursor() as cursor:
                cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
                row = cursor.fetchone()
            text = row[0] if row else "0"
            _versions[key] = tuple(int(p) for p in text.split(".") if p.isdigit())
        return _versions[key]


def has_iterative_scan() -> bool:
    return pgvector_version() >= (0, 8, 0)


# hnsw.ef_search each open database connection has by default (see ef_search_default).
_session_ef: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def ef_search_default(*, connection: Any, **kwargs: Any) -> None:
    """On every new database connection: hnsw.ef_search at the service's default, so an
    unfiltered search at that breadth needs no transaction and no SET LOCAL of its own
    (three round trips fewer). Searches that need another breadth SET LOCAL it. Set as a
    placeholder before pgvector's library loads, the value is taken when it does."""
    ef = int(settings.NUCLEUS_SEARCH_EF_SEARCH)
    with connection.cursor() as cursor:
        cursor.execute(f"SET hnsw.ef_search = {ef}")
    _session_ef[connection.connection] = ef


def session_ef_search() -> int | None:
    """The hnsw.ef_search this process's current connection has by default, if known."""
    raw = connection.connection
    return _session_ef.get(raw) if raw is not None else None
