"""Candidate pairs for the duplicates job (embeddings.duplicates): each batch item's
nearest neighbours by embedding (cosine, through the model's HNSW index) and by
perceptual hash (Hamming distance).

Candidate search by Hamming distance scales the way vector search does: pgvector (>= 0.7)
has a `bit` type with an HNSW index for Hamming distance, so the job builds one partial
index per dataset over `phash::bit(64)` (item_phash_d<dataset>, like the vector indexes)
and asks it for each item's nearest hashes in one LATERAL query per batch; at 1M items
that is an index scan per hash, not all pairs in Python. The index is dropped when the
job ends (ingest would otherwise pay an HNSW insert per item) and built again by the next
run; a run that crashed reuses it. Multi-index hashing on bands of
the hash in plain SQL was the alternative: it is exact only within (bands - 1) bits,
and 8-bit bands that would cover 7 bits hold about 4,000 items each at 1M, so every
item would compare against tens of thousands of candidates. A server with pgvector < 0.7
(`bit` arrived in 0.7) gets an exact scan by `bit_count(a # b)` instead: the same
results, but quadratic in the dataset's size (four hashes against every item, per
item): minutes at 20,000 items, too slow at 1M; upgrade pgvector there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection, transaction

from curation.models import Dataset
from curation.phash import coarse_hashes, fine_distance
from embeddings import vectors as vec
from embeddings.models import DuplicateRun, EmbeddingModel

BIT_SINCE = (0, 7, 0)  # pgvector's `bit` type and its Hamming HNSW index
_CHUNK = 5000

# ------------------------------------------------------------------ embedding neighbours


def near_pairs_sql(run: DuplicateRun, model: EmbeddingModel) -> str:
    """Each batch item's nearest neighbours at or above the threshold, one HNSW scan each.

    Takes two parameters: the batch's item ids and the largest cosine distance kept.
    """
    dim = int(model.dimension)
    model_id, dataset_id = int(model.pk), int(run.dataset_id)
    # Ranked through the index's own type (halfvec where it was built so), kept on the
    # full-precision distance.
    cast = vec.index_info(model_id, dataset_id)[2]
    return f"""
        SELECT a.item_id, n.item_id, 1 - n.distance
        FROM {vec.TABLE} a
        CROSS JOIN LATERAL (
            SELECT b.item_id, b.vector <=> a.vector AS distance
            FROM {vec.TABLE} b
            WHERE b.model_id = {model_id} AND b.dataset_id = {dataset_id}
            ORDER BY b.vector::{cast}({dim}) <=> a.vector::{cast}({dim})
            LIMIT {int(run.neighbors) + 1}
        ) n
        WHERE a.model_id = {model_id} AND a.dataset_id = {dataset_id} AND a.item_id = ANY(%s)
            AND n.item_id <> a.item_id AND n.distance <= %s
    """


def near_pairs(
    run: DuplicateRun, model: EmbeddingModel, item_ids: Sequence[int]
) -> list[tuple[int, int, float]]:
    """Pairs (a < b, similarity) among each item's nearest neighbours."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL hnsw.ef_search = {max(40, 2 * (run.neighbors + 1))}")
        # A hair of slack so that exact copies (distance 0 up to float rounding) and pairs
        # right at the threshold are kept.
        cursor.execute(near_pairs_sql(run, model), [list(item_ids), 1.0 - run.threshold + 1e-6])
        pairs: dict[tuple[int, int], float] = {}
        for a, b, similarity in cursor.fetchall():
            key = (min(a, b), max(a, b))
            pairs[key] = max(pairs.get(key, -1.0), float(similarity))
    return [(a, b, s) for (a, b), s in pairs.items()]


# ------------------------------------------------------------------- perceptual hashes


def phash_index_name(dataset_id: int) -> str:
    return f"item_phash_d{int(dataset_id)}"


def has_bit_index() -> bool:
    return vec.pgvector_version() >= BIT_SINCE


def phash_index_ensure(*, dataset: Dataset) -> bool:
    """Build the dataset's HNSW index of whole-picture hashes if missing; True if built.

    Only where pgvector has `bit` (>= 0.7); elsewhere hashes are compared by a scan.
    """
    if not has_bit_index():
        return False
    name = phash_index_name(dataset.pk)
    with connection.cursor() as cursor:
        cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [name])
        row = cursor.fetchone()
        if row is not None and row[0]:
            return False
        cursor.execute("SELECT pg_advisory_lock(hashtext(%s))", [name])
        try:
            cursor.execute(f"DROP INDEX IF EXISTS {name}")  # a crash's half-built one
            concurrently = "" if connection.in_atomic_block else "CONCURRENTLY"
            if connection.in_atomic_block:
                # Deferred foreign-key checks of rows written earlier in the transaction
                # would make PostgreSQL refuse to index the table: run them now.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(
                f"CREATE INDEX {concurrently} {name} ON curation_item"
                " USING hnsw ((phash::bit(64)) bit_hamming_ops)"
                f" WHERE dataset_id = {int(dataset.pk)} AND phash IS NOT NULL"
            )
        finally:
            cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [name])
    return True


def phash_index_drop(*, dataset_id: int) -> None:
    """Drop a deleted dataset's hash index (after the commit, CONCURRENTLY where possible)."""
    concurrently = "" if connection.in_atomic_block else "CONCURRENTLY"
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX {concurrently} IF EXISTS {phash_index_name(dataset_id)}")


def hash_pairs_sql(dataset_id: int, neighbors: int, indexed: bool) -> str:
    """Items whose whole-picture hash is nearest to each query hash, within a distance.

    Takes three parameters: the query item ids, their hashes (as many, an item repeated
    once per hash) and the largest Hamming distance (of 64 bits) kept.
    """
    dataset_id = int(dataset_id)
    if indexed:
        distance = "b.phash::bit(64) <~> q.h::bit(64)"
    else:
        distance = "bit_count(b.phash::bit(64) # q.h::bit(64))"
    return f"""
        SELECT q.item_id, n.id, n.distance
        FROM unnest(%s::bigint[], %s::bigint[]) AS q(item_id, h)
        CROSS JOIN LATERAL (
            SELECT b.id, {distance} AS distance
            FROM curation_item b
            WHERE b.dataset_id = {dataset_id} AND b.phash IS NOT NULL
            ORDER BY {distance}
            LIMIT {int(neighbors) + 1}
        ) n
        WHERE n.id <> q.item_id AND n.distance <= %s
    """


def hash_pairs(
    run: DuplicateRun, batch: Sequence[tuple[int, Any, Any]], candidates: int
) -> list[tuple[int, int, float]]:
    """Pairs (a < b, distance of the 256-bit hashes) of batch items and their candidates."""
    ids: list[int] = []
    hashes: list[int] = []
    detail = {item_id: bytes(d) for item_id, _, d in batch}
    for item_id, phash, d in batch:
        for h in coarse_hashes(phash, bytes(d)):
            ids.append(item_id)
            hashes.append(h)
    indexed = has_bit_index()
    found: set[tuple[int, int]] = set()
    with transaction.atomic(), connection.cursor() as cursor:
        if indexed:
            cursor.execute(f"SET LOCAL hnsw.ef_search = {max(40, 2 * (run.neighbors + 1))}")
        cursor.execute(
            hash_pairs_sql(run.dataset_id, run.neighbors, indexed), [ids, hashes, candidates]
        )
        for a, b, _ in cursor.fetchall():
            found.add((min(a, b), max(a, b)))
        missing = sorted({i for pair in found for i in pair} - set(detail))
        for start in range(0, len(missing), _CHUNK):
            chunk = missing[start : start + _CHUNK]
            cursor.execute(
                "SELECT id, phash_detail FROM curation_item WHERE id = ANY(%s)", [list(chunk)]
            )
            detail.update((i, bytes(d)) for i, d in cursor.fetchall() if d is not None)
    pairs = []
    for a, b in sorted(found):
        if a in detail and b in detail:
            distance = fine_distance(detail[a], detail[b])
            if distance <= run.hash_distance:
                pairs.append((a, b, float(distance)))
    return pairs
