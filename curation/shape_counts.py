"""The triggers that keep ShapeCount (an item's shapes counted per label, per kind and
in all), as SQL for a migration, and the one switch that stops them.

Each trigger is statement-level and reads the statement's transition table (every row it
inserted, deleted or changed, COPY included): a bulk write of 10,000 items costs one more
set-based INSERT ... ON CONFLICT, not one per shape. A count that reaches 0 is deleted,
so an item without cars has no "car" row (count conditions read that as 0).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

# While this setting is 'off' the triggers do nothing: only for deleting a whole dataset,
# whose counts go with it in one DELETE.
OFF = "nucleus.shape_counts"

# The shapes of a transition table as (item_id, source, dataset_id, kind, label).
_ROWS = {
    "annotation": "SELECT item_id, 0::bigint AS source, dataset_id, kind, label FROM {t}",
    "prediction": (
        "SELECT r.item_id, r.model_id AS source, m.dataset_id, r.kind, r.label"
        " FROM {t} r JOIN curation_model m ON m.id = r.model_id"
    ),
}
# One shape counts once in its item's total (dim 0), its label (1) and its kind (2).
_DIMS = (
    "CROSS JOIN LATERAL (VALUES (0::smallint, ''::varchar), (1::smallint, r.label),"
    " (2::smallint, r.kind)) AS d(dim, key)"
)


def _delta(table: str, signed: list[tuple[str, int]]) -> str:
    """SELECT of (item_id, source, dim, key, dataset_id, n): the change per count."""
    parts = " UNION ALL ".join(
        f"SELECT s.*, {sign} AS n FROM ({_ROWS[table].format(t=name)}) s" for name, sign in signed
    )
    return (
        "SELECT r.item_id, r.source, d.dim, d.key, r.dataset_id,"
        f" sum(r.n)::int AS n FROM ({parts}) r {_DIMS}"
        " GROUP BY r.dataset_id, r.source, d.dim, d.key, r.item_id HAVING sum(r.n) <> 0"
    )


def _upsert(delta: str, returning: str = "") -> str:
    # ON CONFLICT finds each count through the primary key, whatever the planner knows
    # (a join of the changes with the table, planned on a freshly filled table without
    # statistics, ran a 500,000-annotation delete for over 9 minutes). In key order, so
    # that concurrent writers lock the rows they share alike.
    return f"""
        INSERT INTO curation_shapecount AS c (item_id, source, dim, key, dataset_id, n)
        SELECT item_id, source, dim, key, dataset_id, n FROM ({delta}) d
        ORDER BY dataset_id, source, dim, key, item_id
        ON CONFLICT (dataset_id, source, dim, key, item_id) DO UPDATE SET n = c.n + EXCLUDED.n
        {returning}
    """


def _apply(delta: str) -> str:
    # Counts that went down to 0 are deleted by their row's address, which the upsert
    # returns: no join to plan, and the rows stay locked by this transaction in between.
    return f"""
        WITH up AS ({_upsert(delta, "RETURNING ctid, n")})
        SELECT array_agg(ctid) INTO gone FROM up WHERE n <= 0;
        IF gone IS NOT NULL THEN
            DELETE FROM curation_shapecount WHERE ctid = ANY(gone);
        END IF;
    """


def _function(table: str) -> str:
    inserted = _delta(table, [("new_rows", 1)])
    deleted = _delta(table, [("old_rows", -1)])
    changed = _delta(table, [("new_rows", 1), ("old_rows", -1)])
    return f"""
CREATE FUNCTION curation_{table}_count() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    gone tid[];
BEGIN
    IF current_setting('{OFF}', true) = 'off' THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        {_upsert(inserted)};
    ELSIF TG_OP = 'DELETE' THEN
        {_apply(deleted)}
    ELSE
        {_apply(changed)}
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER {table}_count_insert AFTER INSERT ON curation_{table}
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION curation_{table}_count();
CREATE TRIGGER {table}_count_delete AFTER DELETE ON curation_{table}
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION curation_{table}_count();
CREATE TRIGGER {table}_count_update AFTER UPDATE ON curation_{table}
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION curation_{table}_count();
"""


INSTALL = _function("annotation") + _function("prediction")
UNINSTALL = """
DROP FUNCTION IF EXISTS curation_annotation_count() CASCADE;
DROP FUNCTION IF EXISTS curation_prediction_count() CASCADE;
"""

# n in the primary key's index (INCLUDE), so that count conditions are index-only.
INCLUDE_N = (
    "ALTER TABLE curation_shapecount DROP CONSTRAINT curation_shapecount_pkey;"
    " ALTER TABLE curation_shapecount ADD CONSTRAINT curation_shapecount_pkey"
    " PRIMARY KEY (dataset_id, source, dim, key, item_id) INCLUDE (n);"
)

# The planner's statistics of which counts are large: n depends on the key (an item has
# 0-2 cars but 3-7 boxes), and without them `annotations.kind.box.count >= 5` was
# estimated at 15,000 items of 1M where 600,000 match, and run as 600,000 probes of
# the items (1.1 s; 0.5 s as the hash join the right estimate picks).
STATISTICS = (
    "CREATE STATISTICS curation_shapecount_keys (mcv) ON source, dim, key, n"
    " FROM curation_shapecount;"
    " ALTER STATISTICS curation_shapecount_keys SET STATISTICS 1000;"
)

# Every count, from the shapes (the migration's backfill; also how to rebuild the table
# after `DELETE FROM curation_shapecount`).
# In primary-key order: inserted in the grouping's hash order, the 10.3M rows of the 1M-item
# bench left an index half as large again (882 MB against 600 MB) whose index-only scans
# pinned a buffer for every two or three rows (209,000 against 3,759 for one label's
# 525,000 rows), and a table out of the index's order.
BACKFILL = (
    "INSERT INTO curation_shapecount (item_id, source, dim, key, dataset_id, n) "
    "SELECT item_id, source, dim, key, dataset_id, n FROM ("
    + _delta("annotation", [("curation_annotation", 1)])
    + " UNION ALL "
    + _delta("prediction", [("curation_prediction", 1)])
    + ") d ORDER BY dataset_id, source, dim, key, item_id"
)


@contextmanager
def shape_counts_off() -> Iterator[None]:
    """Keep no counts in this block, which must be inside a transaction (deleting a whole
    dataset: its counts are deleted with one statement instead)."""
    if not connection.in_atomic_block:
        raise RuntimeError("shape_counts_off() needs a transaction")
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(current_setting(%s, true), '')", [OFF])
        row = cursor.fetchone()
        previous = str(row[0]) if row else ""
        cursor.execute("SELECT set_config(%s, 'off', true)", [OFF])
    try:
        yield
    finally:
        # A failed transaction is rolled back by its owner, which undoes the setting.
        if not connection.needs_rollback:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config(%s, %s, true)", [OFF, previous])


__all__ = [
    "BACKFILL",
    "INCLUDE_N",
    "INSTALL",
    "OFF",
    "STATISTICS",
    "UNINSTALL",
    "shape_counts_off",
]
