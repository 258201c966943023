"""The triggers that record annotation history, as SQL for a migration.

Statement-level AFTER triggers with transition tables: one INSERT ... SELECT per
statement, whatever its size, so a COPY of 50,000 annotations costs one set-based insert
of 50,000 small rows, not 50,000 trigger calls. An UPDATE that changes none of an
annotation's own fields (the bulk upsert never rewrites an unchanged row; the ORM may)
records nothing. The context (who, through what) comes from the settings that
curation.history.context sets.
"""

from __future__ import annotations

# The annotation's own fields, as history keeps them (the `before` of a change).
_STATE = (
    "jsonb_build_object('annotation_id', {t}.annotation_id, 'item_id', {t}.item_id,"
    " 'kind', {t}.kind, 'label', {t}.label, 'geometry', {t}.geometry,"
    " 'metadata', {t}.metadata)"
)
_FIELDS = "({t}.annotation_id, {t}.item_id, {t}.kind, {t}.label, {t}.geometry, {t}.metadata)"

# The event of this context, this transaction and this dataset: made on first use and
# remembered in a transaction-local setting, so one bulk write (or one job chunk) is one
# event however many statements it takes.
EVENT_FUNCTION = """
CREATE OR REPLACE FUNCTION curation_annotation_event(ds bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    token text := coalesce(current_setting('nucleus.change_token', true), '');
    cached text := coalesce(current_setting('nucleus.change_event', true), '');
    prefix text := token || '/' || ds || '/';
    ev bigint;
BEGIN
    IF token <> '' AND starts_with(cached, prefix) THEN
        RETURN substr(cached, length(prefix) + 1)::bigint;
    END IF;
    INSERT INTO curation_annotationevent
        (dataset_id, user_id, source, job_id, entry_id, reverts_id, created)
    VALUES (
        ds,
        nullif(current_setting('nucleus.change_user', true), '')::integer,
        coalesce(nullif(current_setting('nucleus.change_source', true), ''), 'admin'),
        nullif(current_setting('nucleus.change_job', true), '')::bigint,
        nullif(current_setting('nucleus.change_entry', true), '')::bigint,
        nullif(current_setting('nucleus.change_reverts', true), '')::bigint,
        now()
    ) RETURNING id INTO ev;
    IF token <> '' THEN
        PERFORM set_config('nucleus.change_event', prefix || ev, true);
    END IF;
    RETURN ev;
END $$;
"""


def _record_function(name: str, action: str, rows: str, before: str) -> str:
    """A trigger function inserting one change per row of `rows` (a query over the
    transition tables with columns id, dataset_id, annotation_id, item_id, before)."""
    return f"""
CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('nucleus.history_off', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    WITH r AS ({rows}),
    e AS MATERIALIZED (
        SELECT d.dataset_id, curation_annotation_event(d.dataset_id) AS event_id
        FROM (SELECT DISTINCT dataset_id FROM r) d
    )
    INSERT INTO curation_annotationchange
        (event_id, dataset_id, annotation_pk, annotation_id, item_id, action, before)
    SELECT e.event_id, r.dataset_id, r.id, r.annotation_id, r.item_id, '{action}', {before}
    FROM r JOIN e ON e.dataset_id = r.dataset_id;
    RETURN NULL;
END $$;
"""


INSERTED_0008 = _record_function(
    "curation_annotation_inserted",
    "created",
    "SELECT n.id, n.dataset_id, n.annotation_id, n.item_id FROM new_rows n",
    "NULL::jsonb",
)

# Creations of a bulk statement (at least COMPACT_MIN new rows; the setting
# nucleus.history_compact_min overrides it): one row per run of consecutive annotation pks
# on one item, holding the run's first pk (`annotation_pk`) and last (`last_pk`), at most
# SPAN long. Each annotation of a run still has its own change id: the run's row takes a
# block of ids from the change id sequence, its own id the first, so annotation pk p's
# creation is change `id + (p - annotation_pk)` (curation.history.compact reads them).
# Ids are reserved one per new row, then dealt out in (dataset, item, pk) order; where a
# concurrent writer took ids in between, a run splits, so every block is contiguous.
COMPACT_MIN = 64
SPAN = 1024
INSERTED = f"""
CREATE OR REPLACE FUNCTION curation_annotation_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
    seq regclass;
BEGIN
    IF coalesce(current_setting('nucleus.history_off', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    SELECT count(*) INTO n FROM new_rows;
    IF n < coalesce(nullif(current_setting('nucleus.history_compact_min', true), ''),
                    '{COMPACT_MIN}')::bigint THEN
        WITH e AS MATERIALIZED (
            SELECT d.dataset_id, curation_annotation_event(d.dataset_id) AS event_id
            FROM (SELECT DISTINCT dataset_id FROM new_rows) d
        )
        INSERT INTO curation_annotationchange
            (event_id, dataset_id, annotation_pk, annotation_id, item_id, action, before)
        SELECT e.event_id, r.dataset_id, r.id, r.annotation_id, r.item_id, 'created', NULL
        FROM new_rows r JOIN e ON e.dataset_id = r.dataset_id;
        RETURN NULL;
    END IF;
    seq := pg_get_serial_sequence('curation_annotationchange', 'id')::regclass;
    WITH r AS (
        SELECT id AS pk, dataset_id, item_id,
            row_number() OVER (ORDER BY dataset_id, item_id, id) AS rn,
            row_number() OVER (PARTITION BY dataset_id, item_id ORDER BY id) AS k
        FROM new_rows
    ),
    ids AS (
        SELECT c.cid, row_number() OVER (ORDER BY c.cid) AS rn
        FROM (SELECT nextval(seq) AS cid FROM generate_series(1, n)) c
    ),
    runs AS (
        SELECT r.dataset_id, r.item_id, min(ids.cid) AS first_id, min(r.pk) AS first_pk,
            max(r.pk) AS last_pk
        FROM r JOIN ids USING (rn)
        GROUP BY r.dataset_id, r.item_id, r.pk - r.k, ids.cid - r.pk, (r.k - 1) / {SPAN}
    ),
    e AS MATERIALIZED (
        SELECT d.dataset_id, curation_annotation_event(d.dataset_id) AS event_id
        FROM (SELECT DISTINCT dataset_id FROM runs) d
    )
    INSERT INTO curation_annotationchange
        (id, event_id, dataset_id, annotation_pk, last_pk, annotation_id, item_id, action,
         before)
    SELECT runs.first_id, e.event_id, runs.dataset_id, runs.first_pk, runs.last_pk, '',
        runs.item_id, 'created', NULL
    FROM runs JOIN e ON e.dataset_id = runs.dataset_id
    ORDER BY runs.first_id;
    RETURN NULL;
END $$;
"""
UPDATED = _record_function(
    "curation_annotation_updated",
    "changed",
    "SELECT n.id, n.dataset_id, n.annotation_id, n.item_id, "
    + _STATE.format(t="o")
    + " AS before FROM new_rows n JOIN old_rows o ON o.id = n.id"
    + " WHERE "
    + _FIELDS.format(t="o")
    + " IS DISTINCT FROM "
    + _FIELDS.format(t="n"),
    "r.before",
)
DELETED = _record_function(
    "curation_annotation_deleted",
    "deleted",
    "SELECT o.id, o.dataset_id, o.annotation_id, o.item_id, "
    + _STATE.format(t="o")
    + " AS before FROM old_rows o",
    "r.before",
)

TRIGGERS = """
CREATE TRIGGER curation_annotation_history_insert AFTER INSERT ON curation_annotation
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION curation_annotation_inserted();
CREATE TRIGGER curation_annotation_history_update AFTER UPDATE ON curation_annotation
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION curation_annotation_updated();
CREATE TRIGGER curation_annotation_history_delete AFTER DELETE ON curation_annotation
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION curation_annotation_deleted();
"""

# Compact creations back to one row per annotation (for going back to migration 0008):
# the annotation id is the annotation's own where it still exists.
EXPAND = """
INSERT INTO curation_annotationchange
    (id, event_id, dataset_id, annotation_pk, annotation_id, item_id, action, before)
SELECT c.id + (g.pk - c.annotation_pk), c.event_id, c.dataset_id, g.pk,
    coalesce(a.annotation_id, ''), c.item_id, 'created', NULL
FROM curation_annotationchange c
CROSS JOIN LATERAL generate_series(c.annotation_pk + 1, c.last_pk) g(pk)
LEFT JOIN curation_annotation a ON a.id = g.pk
WHERE c.last_pk IS NOT NULL;
UPDATE curation_annotationchange c SET last_pk = NULL, annotation_id = coalesce(
    (SELECT a.annotation_id FROM curation_annotation a WHERE a.id = c.annotation_pk), '')
WHERE c.last_pk IS NOT NULL;
"""

# What migration 0008 installed (its creations: one row per annotation).
INSTALL_0008 = EVENT_FUNCTION + INSERTED_0008 + UPDATED + DELETED + TRIGGERS
INSTALL = EVENT_FUNCTION + INSERTED + UPDATED + DELETED + TRIGGERS

UNINSTALL = """
DROP TRIGGER IF EXISTS curation_annotation_history_insert ON curation_annotation;
DROP TRIGGER IF EXISTS curation_annotation_history_update ON curation_annotation;
DROP TRIGGER IF EXISTS curation_annotation_history_delete ON curation_annotation;
DROP FUNCTION IF EXISTS curation_annotation_inserted();
DROP FUNCTION IF EXISTS curation_annotation_updated();
DROP FUNCTION IF EXISTS curation_annotation_deleted();
DROP FUNCTION IF EXISTS curation_annotation_event(bigint);
"""

__all__ = [
    "COMPACT_MIN",
    "EXPAND",
    "INSERTED",
    "INSERTED_0008",
    "INSTALL",
    "INSTALL_0008",
    "SPAN",
    "UNINSTALL",
]
