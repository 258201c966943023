"""Warming the HNSW indexes after a server start, so that the first searches are not cold.

After PostgreSQL starts, its shared buffers are empty, and on these machines the kernel's
page cache is reclaimed within about a minute, so the first searches of a large dataset
read their graph from disk one random 8 kB page at a time (tens of ms each, instead of
a few). pg_prewarm would load an index into shared buffers in one call, but the embedded
server bundles no extension besides pgvector, and an external server may not have it. So
a worker, once it starts, warms the indexes itself, in two bounded steps per index:

1. Sequential read of the index's files (``pg_read_binary_file``, in 16 MB chunks whose
   bytes stay in the server: only their length comes back). Reading a file in order is
   orders of magnitude faster than the random reads a search makes, and it leaves the
   pages in the kernel's cache for step 2. It needs a role allowed to read server files
   (a superuser, as on the embedded server, or a member of pg_read_server_files); without
   that, step 2 alone does the work, more slowly.
2. Probe searches with random unit vectors at the highest ef_search, run through the
   index exactly as a search is (same partial-index predicate, same cast), which pulls
   the graph's pages into shared buffers, where a search finds them. Each probe reports
   how many blocks it had to read from outside shared buffers (EXPLAIN (ANALYZE,
   BUFFERS)); the index counts as warm once two probes in a row read none.

Indexes are warmed most-searched first (``pg_stat_user_indexes.idx_scan``), within a
time limit (NUCLEUS_INDEX_WARM_SECONDS) and a byte budget for step 1
(NUCLEUS_INDEX_WARM_MB, by default the size of shared buffers: more would not stay).
Only one process warms at a time (an advisory lock); others skip.
"""

from __future__ import annotations

import json
import logging
import re
import time
import zlib
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import connection, transaction

from embeddings import vectors as vec
from embeddings.models import EmbeddingModel
from embeddings.search import EF_SEARCH_MAX

logger = logging.getLogger(__name__)

CHUNK_BYTES = 16 * 1024 * 1024
SEGMENT_BYTES = 1024 * 1024 * 1024  # PostgreSQL splits relation files at 1 GB
MAX_PROBES = 200  # per index: a bound even if the graph never looks fully cached
QUIET_PROBES = 2  # probes in a row that read nothing from outside shared buffers
_LOCK_KEY = "nucleus:index-warm"
_NAME = re.compile(r"^emb_hnsw_m(\d+)_d(\d+)$")


@dataclass
class IndexWarm:
    """What warming did to one index."""

    index: str
    size_bytes: int
    file_bytes_read: int = 0
    probes: int = 0
    blocks_read: int = 0  # by the probes, from outside shared buffers
    warm: bool = False  # the last probes found every page they needed in shared buffers


@dataclass
class _Index:
    name: str
    model_id: int
    dataset_id: int
    size: int
    path: str
    kind: str  # "halfvec" or "vector"


def _indexes() -> list[_Index]:
    """The valid vector indexes, most searched first."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_relation_size(c.oid), pg_relation_filepath(c.oid), o.opcname"
            " FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid"
            " JOIN pg_opclass o ON o.oid = x.indclass[0]"
            " LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = x.indexrelid"
            " WHERE c.relname ~ '^emb_hnsw_m[0-9]+_d[0-9]+$' AND x.indisvalid"
            " AND pg_table_is_visible(c.oid)"
            " ORDER BY coalesce(s.idx_scan, 0) DESC, pg_relation_size(c.oid) DESC, c.relname"
        )
        rows = cursor.fetchall()
    found = []
    for name, size, path, opclass in rows:
        match = _NAME.match(name)
        if match is None or path is None:
            continue
        kind = "halfvec" if str(opclass).startswith("halfvec") else "vector"
        found.append(_Index(name, int(match[1]), int(match[2]), int(size), str(path), kind))
    return found


def _can_read_files() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rolsuper OR pg_has_role(current_user, 'pg_read_server_files', 'MEMBER')"
            " FROM pg_roles WHERE rolname = current_user"
        )
        row = cursor.fetchone()
    return bool(row and row[0])


def _shared_buffers_bytes() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT setting::bigint * pg_size_bytes(coalesce(unit, '1B'))"
            " FROM pg_settings WHERE name = 'shared_buffers'"
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def _read_files(index: _Index, budget: int, deadline: float) -> int:
    """Read the index's files in order, at most `budget` bytes; the bytes read."""
    done = 0
    with connection.cursor() as cursor:
        while done < min(budget, index.size) and time.monotonic() < deadline:
            segment, offset = divmod(done, SEGMENT_BYTES)
            path = index.path if segment == 0 else f"{index.path}.{segment}"
            length = min(CHUNK_BYTES, budget - done, SEGMENT_BYTES - offset)
            # missing_ok: the index may have been dropped (and its file removed) meanwhile.
            cursor.execute(
                "SELECT length(pg_read_binary_file(%s, %s, %s, true))", [path, offset, length]
            )
            row = cursor.fetchone()
            got = int(row[0]) if row and row[0] is not None else 0
            if got <= 0:
                break
            done += got
    return done


def _probe(index: _Index, dimension: int, rng: np.random.Generator, seconds: float) -> int:
    """One search through the index with a random unit vector; blocks it read from outside
    shared buffers (the index's and the table's)."""
    query = rng.standard_normal(dimension).astype(np.float32)
    query /= np.linalg.norm(query) or 1.0
    literal = vec.vector_literal(query)
    order = vec.distance_sql(dimension, index_type=index.kind)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL hnsw.ef_search = {EF_SEARCH_MAX}")
        cursor.execute(f"SET LOCAL statement_timeout = {max(1, int(seconds * 1000))}")
        cursor.execute(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "
            f"SELECT item_id FROM {vec.TABLE} "
            f"WHERE model_id = {index.model_id} AND dataset_id = {index.dataset_id} "
            f"ORDER BY {order} LIMIT 10",
            [literal],
        )
        row = cursor.fetchone()
    plan = row[0] if row else []
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"].get("Shared Read Blocks", 0)) if plan else 0


def _probe_until_warm(index: _Index, dimension: int, deadline: float, report: IndexWarm) -> None:
    # Seeded by the index's name: the same probes after every start, which is as good as
    # any other random sample and keeps a warm-up's work the same from run to run.
    rng = np.random.default_rng(zlib.crc32(index.name.encode()))
    quiet = 0
    while report.probes < MAX_PROBES and quiet < QUIET_PROBES:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        blocks = _probe(index, dimension, rng, left)
        report.probes += 1
        report.blocks_read += blocks
        quiet = quiet + 1 if blocks == 0 else 0
    report.warm = quiet >= QUIET_PROBES


def indexes_warm(*, seconds: float, budget_bytes: int | None = None) -> list[IndexWarm] | None:
    """Warm the vector indexes within `seconds`; None when another process is warming.

    `budget_bytes` bounds the sequential file reads (default: NUCLEUS_INDEX_WARM_MB, or the
    size of shared buffers when that is 0).
    """
    deadline = time.monotonic() + seconds
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [_LOCK_KEY])
        row = cursor.fetchone()
    if not (row and row[0]):
        return None
    try:
        if budget_bytes is None:
            budget_bytes = settings.NUCLEUS_INDEX_WARM_MB * 1024 * 1024
            budget_bytes = budget_bytes or _shared_buffers_bytes()
        budget = budget_bytes if _can_read_files() else 0
        indexes = _indexes()
        dimensions = dict(
            EmbeddingModel.objects.filter(pk__in={i.model_id for i in indexes}).values_list(
                "pk", "dimension"
            )
        )
        reports = []
        for index in indexes:
            if time.monotonic() >= deadline or index.model_id not in dimensions:
                continue
            report = IndexWarm(index=index.name, size_bytes=index.size)
            if budget > 0:
                report.file_bytes_read = _read_files(index, budget, deadline)
                budget -= report.file_bytes_read
            _probe_until_warm(index, int(dimensions[index.model_id]), deadline, report)
            reports.append(report)
        return reports
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [_LOCK_KEY])


def indexes_warm_logged() -> None:
    """Warm the indexes as configured and log what was done (a worker runs this at start)."""
    seconds = settings.NUCLEUS_INDEX_WARM_SECONDS
    if seconds <= 0:
        return
    started = time.monotonic()
    try:
        reports = indexes_warm(seconds=seconds)
    except Exception:
        logger.exception("warming the vector indexes failed; searches start cold")
        return
    finally:
        connection.close()
    if reports is None:
        logger.info("vector indexes: another process is warming them")
        return
    for r in reports:
        logger.info(
            "warmed %s (%d MB): %d MB read in order, %d probes read %d blocks, %s",
            r.index,
            r.size_bytes // 2**20,
            r.file_bytes_read // 2**20,
            r.probes,
            r.blocks_read,
            "warm" if r.warm else "partly warm (time or probe limit)",
        )
    if reports:
        logger.info("vector indexes warmed: %d in %.1f s", len(reports), time.monotonic() - started)
