"""Slice versions: freezing a slice into an immutable numbered version, restoring one,
and what changed between two.

A version holds the exact items of its slice at that moment, with their metadata and
their annotations, so that an export of it is the same, byte for byte, every time.
Every bulk change is one set-based statement (INSERT ... SELECT), never a loop over items.
"""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction
from django.db.models import Max, QuerySet

from curation.errors import NotFound
from curation.file_names import file_name_sql
from curation.history.selectors import changes_between, history_mark
from curation.itemsets import item_ids_sql, slice_items
from curation.models import Slice, SliceItem, SliceVersion, SliceVersionItem

# One annotation as a version stores it (jsonb, so that diffs compare values, not text);
# curation.export writes live annotations as the same objects.
ANNOTATION_JSON = (
    "jsonb_build_object('id', a.annotation_id, 'kind', a.kind, 'label', a.label, "
    "'geometry', a.geometry, 'metadata', a.metadata)"
)
# An item's annotations as one jsonb array, ordered by their client id: a stable order
# that does not change when annotations are deleted and written again with the same ids.
ITEM_ANNOTATIONS_SQL = (
    f"COALESCE((SELECT jsonb_agg({ANNOTATION_JSON} ORDER BY a.annotation_id) "
    "FROM curation_annotation a WHERE a.item_id = i.id), '[]'::jsonb)"
)


def _user_or_none(user: Any) -> Any:
    return user if getattr(user, "is_authenticated", False) else None


def slice_versions(*, slice: Slice) -> QuerySet[SliceVersion]:
    return SliceVersion.objects.filter(slice=slice).select_related("created_by").order_by("number")


def slice_version_of(*, slice: Slice, number: Any) -> SliceVersion:
    try:
        number = int(number)
    except (TypeError, ValueError):
        raise NotFound("Version not found.") from None
    found = slice_versions(slice=slice).filter(number=number).first()
    if found is None:
        raise NotFound(f"Slice {slice.name!r} has no version {number}.")
    return found


@transaction.atomic
def slice_version_create(*, slice: Slice, user: Any, note: str = "") -> SliceVersion:
    """Freeze a slice: a new numbered version with its items, metadata and annotations now.

    One INSERT ... SELECT copies every item with its annotations aggregated in the
    database, so freezing 100k items is one statement, not 100k round trips.
    """
    # The row lock serialises freezes of one slice, so numbers never clash.
    locked = Slice.objects.select_for_update().select_related("dataset").get(pk=slice.pk)
    last = SliceVersion.objects.filter(slice=locked).aggregate(n=Max("number"))["n"] or 0
    members_sql, members_params = item_ids_sql(slice_items(locked))
    version = SliceVersion.objects.create(
        slice=locked,
        number=last + 1,
        note=note,
        query=locked.query,
        similarity=locked.similarity,
        created_by=_user_or_none(user),
        history_mark=history_mark(),
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH written AS ("
            "  INSERT INTO curation_sliceversionitem (version_id, item_id, reference_id,"
            "    file_name, media_key, thumbnail_key, width, height, sha256, metadata,"
            "    annotations)"
            f"  SELECT %s, i.id, i.reference_id, {file_name_sql('i')}, i.media_key,"
            "   i.thumbnail_key, i.width, i.height,"
            f"   i.sha256, i.metadata, {ITEM_ANNOTATIONS_SQL}"
            f"  FROM curation_item i WHERE i.id IN ({members_sql})"
            "  RETURNING jsonb_array_length(annotations) AS n"
            ") SELECT count(*), COALESCE(sum(n), 0) FROM written",
            [version.pk, *members_params],
        )
        items, annotations = cursor.fetchone()
        # Fresh statistics, so that paging through the new version uses the unique index
        # in order instead of sorting the whole version (a few hundred ms at most: ANALYZE
        # reads a fixed-size sample).
        cursor.execute("ANALYZE curation_sliceversionitem")
    version.item_count = int(items)
    version.annotation_count = int(annotations)
    version.save(update_fields=["item_count", "annotation_count"])
    return version


@transaction.atomic
def slice_version_restore(*, slice: Slice, version: SliceVersion) -> dict[str, int]:
    """Make a version's items the slice's current items; the slice becomes static.

    Items deleted from the dataset since the version was frozen cannot come back; they
    are counted as `missing`. Annotations are not rolled back: they belong to the items,
    and the version keeps its own copy for export.
    """
    if version.slice_id != slice.pk:
        raise NotFound("Version not found.")
    locked = Slice.objects.select_for_update().get(pk=slice.pk)
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM curation_sliceitem si WHERE si.slice_id = %s AND NOT EXISTS ("
            " SELECT 1 FROM curation_sliceversionitem v"
            " WHERE v.version_id = %s AND v.item_id = si.item_id)",
            [locked.pk, version.pk],
        )
        removed = int(cursor.rowcount)
        cursor.execute(
            "INSERT INTO curation_sliceitem (slice_id, item_id, added) "
            "SELECT %s, v.item_id, now() FROM curation_sliceversionitem v "
            "JOIN curation_item i ON i.id = v.item_id AND i.dataset_id = %s "
            "WHERE v.version_id = %s ON CONFLICT DO NOTHING",
            [locked.pk, locked.dataset_id, version.pk],
        )
        added = int(cursor.rowcount)
    present = SliceItem.objects.filter(slice=locked).count()
    was_dynamic = locked.is_dynamic
    locked.query = ""
    locked.similarity = None
    locked.save(update_fields=["query", "similarity", "updated"])
    return {
        "added": added,
        "removed": 0 if was_dynamic else removed,
        "missing": version.item_count - present,
        "item_count": present,
    }


DIFF_KINDS = ("added", "removed", "changed")


def slice_versions_diff(
    *, old: SliceVersion, new: SliceVersion, limit: int = 1000
) -> dict[str, Any]:
    """What changed from version `old` to `new`, computed in SQL from the two snapshots.

    `added`/`removed`: items in only one of them; `changed`: in both, with different
    annotations or metadata (each entry says which). Counts are exact; each list holds
    at most `limit` entries, by item id.
    """
    compare = (
        "SELECT COALESCE(n.item_id, o.item_id) AS item_id,"
        " COALESCE(n.reference_id, o.reference_id) AS reference_id,"
        " CASE WHEN o.item_id IS NULL THEN 'added' WHEN n.item_id IS NULL THEN 'removed'"
        " ELSE 'changed' END AS kind,"
        " o.annotations IS DISTINCT FROM n.annotations AS annotations_changed,"
        " o.metadata IS DISTINCT FROM n.metadata AS metadata_changed"
        " FROM (SELECT * FROM curation_sliceversionitem WHERE version_id = %s) o"
        " FULL JOIN (SELECT * FROM curation_sliceversionitem WHERE version_id = %s) n"
        " ON n.item_id = o.item_id"
        " WHERE o.item_id IS NULL OR n.item_id IS NULL"
        " OR o.annotations <> n.annotations OR o.metadata <> n.metadata"
    )
    result: dict[str, Any] = {
        "from_version": old.number,
        "to_version": new.number,
        "counts": dict.fromkeys(DIFF_KINDS, 0),
        **{kind: [] for kind in DIFF_KINDS},
    }
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT d.kind, count(*) FROM ({compare}) d GROUP BY d.kind", [old.pk, new.pk]
        )
        for kind, n in cursor.fetchall():
            result["counts"][kind] = int(n)
        cursor.execute(
            "SELECT item_id, reference_id, kind, annotations_changed, metadata_changed FROM ("
            f" SELECT d.*, row_number() OVER (PARTITION BY d.kind ORDER BY d.item_id) AS rn"
            f" FROM ({compare}) d) r WHERE r.rn <= %s ORDER BY r.item_id",
            [old.pk, new.pk, limit],
        )
        for item_id, reference_id, kind, annotations_changed, metadata_changed in cursor:
            entry: dict[str, Any] = {"item_id": item_id, "reference_id": reference_id}
            if kind == "changed":
                entry["annotations_changed"] = annotations_changed
                entry["metadata_changed"] = metadata_changed
            result[kind].append(entry)
    _add_corrections(old, new, [e for e in result["changed"] if e["annotations_changed"]])
    result["truncated"] = any(result["counts"][k] > len(result[k]) for k in DIFF_KINDS)
    return result


def _corrections(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The annotations added, removed or changed between two snapshots of one item."""
    old = {a["id"]: a for a in before}
    new = {a["id"]: a for a in after}
    found = []
    for annotation_id in sorted(old.keys() | new.keys()):
        was, now = old.get(annotation_id), new.get(annotation_id)
        if was == now:
            continue
        change = "added" if was is None else "removed" if now is None else "changed"
        fields = [
            f
            for f in ("kind", "label", "geometry", "metadata")
            if (was or {}).get(f) != (now or {}).get(f)
        ]
        found.append(
            {
                "annotation_id": annotation_id,
                "change": change,
                "fields": fields if change == "changed" else [],
                "before": was,
                "after": now,
                "by": [],
            }
        )
    return found


def _add_corrections(old: SliceVersion, new: SliceVersion, entries: list[dict[str, Any]]) -> None:
    """Give each changed item's entry its annotation corrections, each with who made it
    (from the annotation history between the two versions' freezing)."""
    if not entries:
        return
    snapshots: dict[tuple[int, int], list[dict[str, Any]]] = {
        (version_id, item_id): annotations
        for version_id, item_id, annotations in SliceVersionItem.objects.filter(
            version__in=[old.pk, new.pk], item_id__in=[e["item_id"] for e in entries]
        ).values_list("version_id", "item_id", "annotations")
    }
    wanted: set[str] = set()
    for entry in entries:
        entry["annotations"] = _corrections(
            snapshots.get((old.pk, entry["item_id"]), []),
            snapshots.get((new.pk, entry["item_id"]), []),
        )
        wanted.update(c["annotation_id"] for c in entry["annotations"])
    earlier, later = sorted((old.history_mark or 0, new.history_mark or 0))
    by = changes_between(
        dataset_id=new.slice.dataset_id,
        annotation_ids=sorted(wanted),
        item_ids=[e["item_id"] for e in entries],
        after=earlier,
        until=later,
    )
    for entry in entries:
        for correction in entry["annotations"]:
            correction["by"] = by.get((entry["item_id"], correction["annotation_id"]), [])


__all__ = [
    "slice_version_create",
    "slice_version_of",
    "slice_version_restore",
    "slice_versions",
    "slice_versions_diff",
]
