"""Slices beyond plain membership: dynamic slices, frozen versions, set operations,
reproducible samples, and tagging by query.

A *static* slice's items are its SliceItem rows. A *dynamic* slice is a saved query (and
optionally a similarity condition) evaluated whenever it is read. Freezing either kind
writes an immutable SliceVersion holding the exact items, their metadata and their
annotations at that moment.

Every bulk change here is one set-based statement (INSERT ... SELECT, DELETE ... WHERE),
never a loop over items; item sets are built with the ORM (the query language compiles
to ORM expressions) and only spliced into parameterised SQL as compiled subqueries.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import Max, Q, QuerySet

from curation import services
from curation.errors import InvalidInput, NotFound, field_error
from curation.models import (
    Dataset,
    Item,
    Slice,
    SliceItem,
    SliceVersion,
    SliceVersionItem,
    Tag,
)
from curation.query import compile_query

SET_OPERATIONS = ("union", "intersection", "difference")
SIMILARITY_MAX_LIMIT = 1000
MAX_SAMPLE_SIZE = 10_000_000
MAX_LISTED_ITEM_ERRORS = 1000

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


def _invalid(path: str, message: str) -> InvalidInput:
    return InvalidInput(f"{path}: {message}", fields=[field_error(path, message)])


def _sql_of(queryset: QuerySet[Any]) -> tuple[str, list[Any]]:
    """The SQL and parameters of a queryset, for use as a subquery."""
    sql, params = queryset.query.sql_with_params()
    return sql, list(params)


def item_ids_sql(items: QuerySet[Item]) -> tuple[str, list[Any]]:
    # order_by(): Item's default ordering would add a pointless sort to the subquery.
    return _sql_of(items.order_by().values("id"))


def _user_or_none(user: Any) -> Any:
    return user if getattr(user, "is_authenticated", False) else None


# ------------------------------------------------------------------------------ item sets


def slice_items_q(slice: Slice) -> Q:
    """A filter on Item for the items in `slice` now: its members, or its query's matches."""
    if not slice.is_dynamic:
        return Q(dataset_id=slice.dataset_id) & Q(
            pk__in=SliceItem.objects.filter(slice_id=slice.pk).values("item_id")
        )
    return query_items_q(dataset=slice.dataset, query=slice.query, similarity=slice.similarity)


def query_items_q(*, dataset: Dataset, query: str, similarity: dict[str, Any] | None) -> Q:
    """A filter on Item for a query's matches, narrowed by a similarity condition (now)."""
    q = compile_query(query, dataset=dataset)
    if similarity is not None:
        within = q if query.strip() else None
        q &= Q(pk__in=similarity_item_ids(dataset=dataset, spec=similarity, within=within))
    return q


def slice_items(slice: Slice) -> QuerySet[Item]:
    """The items in `slice` now (static or dynamic), unordered."""
    return Item.objects.filter(slice_items_q(slice)).order_by()


def slice_item_count(slice: Slice) -> int:
    return slice_items(slice).count()


@dataclass(frozen=True)
class ItemSet:
    """Some of a dataset's current items: all of them, a slice's, a version's (those still
    in the dataset), narrowed by a query when one is given."""

    dataset: Dataset
    slice: Slice | None = None
    version: SliceVersion | None = None
    query: str = ""

    def q(self) -> Q:
        q = Q(dataset_id=self.dataset.pk)
        if self.version is not None:
            q &= Q(pk__in=SliceVersionItem.objects.filter(version=self.version).values("item_id"))
        elif self.slice is not None:
            q &= slice_items_q(self.slice)
        if self.query.strip():
            q &= compile_query(self.query, dataset=self.dataset)
        return q

    def queryset(self) -> QuerySet[Item]:
        return Item.objects.filter(self.q()).order_by()


def item_set_resolve(
    *,
    dataset: Dataset,
    slice_id: int | None = None,
    version: int | None = None,
    query: str = "",
    path: str = "source",
) -> ItemSet:
    """An ItemSet from API input; unknown slices or versions are a 400 naming the field."""
    prefix = f"{path}." if path else ""
    found_slice = None
    found_version = None
    if slice_id is not None:
        found_slice = Slice.objects.filter(dataset=dataset, pk=slice_id).first()
        if found_slice is None:
            raise _invalid(f"{prefix}slice", f"no slice {slice_id} in this dataset")
    if version is not None:
        if found_slice is None:
            raise _invalid(f"{prefix}version", "needs a slice")
        found_version = SliceVersion.objects.filter(slice=found_slice, number=version).first()
        if found_version is None:
            raise _invalid(
                f"{prefix}version", f"slice {found_slice.name!r} has no version {version}"
            )
    if query.strip():
        compile_query(query, dataset=dataset)  # a bad query is a 400 with its position
    return ItemSet(dataset=dataset, slice=found_slice, version=found_version, query=query)


def item_ids_check(
    *, dataset: Dataset, item_ids: Sequence[int], path: str = "item_ids"
) -> list[int]:
    """The ids, deduplicated in order; a 400 listing every id that is not the dataset's item."""
    wanted = list(dict.fromkeys(int(i) for i in item_ids))
    found = set(Item.objects.filter(dataset=dataset, pk__in=wanted).values_list("id", flat=True))
    unknown = [(index, i) for index, i in enumerate(item_ids) if int(i) not in found]
    if unknown:
        raise InvalidInput(
            f"{len(unknown)} item ids are not items of this dataset: "
            + ", ".join(str(i) for _, i in unknown[:10])
            + (" ..." if len(unknown) > 10 else ""),
            fields=[
                field_error(f"{path}[{index}]", f"no item {i} in this dataset")
                for index, i in unknown[:MAX_LISTED_ITEM_ERRORS]
            ],
        )
    return wanted


# ----------------------------------------------------------------------------- similarity


def similarity_clean(*, dataset: Dataset, raw: Any, path: str = "similarity") -> dict[str, Any]:
    """Validate a similarity condition: {reference_id | text, model?, limit?, min_score?}."""
    if not isinstance(raw, dict):
        raise _invalid(path, "must be an object with reference_id or text")
    unknown = sorted(set(raw) - {"reference_id", "text", "model", "limit", "min_score"})
    if unknown:
        raise _invalid(f"{path}.{unknown[0]}", "is not a similarity option")
    sources = [key for key in ("reference_id", "text") if raw.get(key) is not None]
    if len(sources) != 1:
        raise _invalid(path, "give exactly one of reference_id or text")
    clean: dict[str, Any] = {}
    key = sources[0]
    value = raw[key]
    if not isinstance(value, str) or not value.strip():
        raise _invalid(f"{path}.{key}", "must be a non-blank string")
    if "\x00" in value:  # the condition is stored as jsonb, which cannot hold U+0000
        raise _invalid(f"{path}.{key}", "must not contain NUL characters")
    clean[key] = value
    if (
        key == "reference_id"
        and not Item.objects.filter(dataset=dataset, reference_id=value).exists()
    ):
        raise _invalid(f"{path}.reference_id", f"no item {value!r} in this dataset")
    model = raw.get("model")
    if model is not None:
        if not isinstance(model, str) or not model.strip() or "\x00" in model:
            raise _invalid(f"{path}.model", "must be an embedding model's name")
        clean["model"] = model
    limit = raw.get("limit", 100)
    if (
        isinstance(limit, bool)
        or not isinstance(limit, int)
        or not 1 <= limit <= SIMILARITY_MAX_LIMIT
    ):
        raise _invalid(f"{path}.limit", f"must be a whole number from 1 to {SIMILARITY_MAX_LIMIT}")
    clean["limit"] = limit
    min_score = raw.get("min_score")
    if min_score is not None:
        if isinstance(min_score, bool) or not isinstance(min_score, int | float):
            raise _invalid(f"{path}.min_score", "must be a number from -1 to 1")
        if not -1 <= float(min_score) <= 1:
            raise _invalid(f"{path}.min_score", "must be a number from -1 to 1")
        clean["min_score"] = float(min_score)
    return clean


def similarity_item_ids(*, dataset: Dataset, spec: dict[str, Any], within: Q | None) -> list[int]:
    """Evaluate a similarity condition now: ids of the nearest items (within a filter)."""
    # Imported here: the embeddings app builds on curation, not the other way round.
    from embeddings import search
    from embeddings.selectors import model_for_search

    model = model_for_search(dataset=dataset, name=spec.get("model"))
    search_filter = search.SearchFilter(items=within) if within is not None else None
    limit = int(spec.get("limit", 100))
    if spec.get("text") is not None:
        result = search.search_text(
            dataset=dataset,
            model=model,
            text=spec["text"],
            search_filter=search_filter,
            limit=limit,
        )
    else:
        item = Item.objects.filter(dataset=dataset, reference_id=spec.get("reference_id")).first()
        if item is None:
            raise _invalid(
                "similarity.reference_id",
                f"no item {spec.get('reference_id')!r} in this dataset (deleted since?)",
            )
        result = search.search_item(
            dataset=dataset, model=model, item=item, search_filter=search_filter, limit=limit
        )
    min_score = spec.get("min_score")
    return [h.item_id for h in result.hits if min_score is None or h.score >= min_score]


# ---------------------------------------------------------------------------- creation


def _members_insert(slice: Slice, ids_sql: str, params: Sequence[Any]) -> int:
    """Add the items an id subquery yields to a static slice; returns how many were new."""
    with connection.cursor() as cursor:
        # ON CONFLICT: overlapping appends and retries are harmless.
        cursor.execute(
            "INSERT INTO curation_sliceitem (slice_id, item_id, added) "
            f"SELECT %s, s.id, now() FROM ({ids_sql}) AS s(id) ON CONFLICT DO NOTHING",
            [slice.pk, *params],
        )
        return int(cursor.rowcount)


@transaction.atomic
def slice_create_from_query(
    *,
    dataset: Dataset,
    user: Any,
    name: str,
    query: str,
    description: str = "",
    similarity: Any = None,
    dynamic: bool = True,
) -> tuple[Slice, int]:
    """Create a slice from a query: dynamic (the query is saved) or static (its matches now).

    Returns the slice and, for a static one, how many items it got (0 for a dynamic one).
    """
    compile_query(query, dataset=dataset)
    clean_similarity = (
        similarity_clean(dataset=dataset, raw=similarity) if similarity is not None else None
    )
    if dynamic and not query.strip() and clean_similarity is None:
        raise _invalid("query", "a dynamic slice needs a query or a similarity condition")
    new, _ = services.slice_create(dataset=dataset, user=user, name=name, description=description)
    if dynamic:
        new.query = query
        new.similarity = clean_similarity
        new.save(update_fields=["query", "similarity"])
        return new, 0
    matches = query_items_q(dataset=dataset, query=query, similarity=clean_similarity)
    sql, params = item_ids_sql(Item.objects.filter(matches))
    return new, _members_insert(new, sql, params)


@transaction.atomic
def slice_create_from_items(
    *,
    dataset: Dataset,
    user: Any,
    name: str,
    description: str = "",
    item_ids: Sequence[int] = (),
    reference_ids: Sequence[str] = (),
) -> tuple[Slice, int]:
    """Create a static slice from item ids (a search result, a duplicate group) and/or
    reference ids; any unknown id refuses the whole call."""
    ids = item_ids_check(dataset=dataset, item_ids=item_ids)
    new, added = services.slice_create(
        dataset=dataset, user=user, name=name, description=description, reference_ids=reference_ids
    )
    if ids:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO curation_sliceitem (slice_id, item_id, added) "
                "SELECT %s, unnest(%s::bigint[]), now() ON CONFLICT DO NOTHING",
                [new.pk, ids],
            )
            added += int(cursor.rowcount)
    return new, added


@transaction.atomic
def slice_query_update(*, slice: Slice, query: str, similarity: Any = None) -> Slice:
    """Make a slice dynamic with this query (and similarity), or static again.

    A static slice that becomes dynamic drops its member rows (its items now come from the
    query). A dynamic slice given a blank query and no similarity becomes static, keeping
    the items its query matched at that moment.
    """
    locked = Slice.objects.select_for_update().select_related("dataset").get(pk=slice.pk)
    dataset = locked.dataset
    compile_query(query, dataset=dataset)
    clean_similarity = (
        similarity_clean(dataset=dataset, raw=similarity) if similarity is not None else None
    )
    if query.strip() or clean_similarity is not None:
        SliceItem.objects.filter(slice=locked).delete()
    elif locked.is_dynamic:
        sql, params = item_ids_sql(slice_items(locked))
        _members_insert(locked, sql, params)
    locked.query = query if (query.strip() or clean_similarity is not None) else ""
    locked.similarity = clean_similarity
    locked.save(update_fields=["query", "similarity", "updated"])
    return locked


@transaction.atomic
def slice_combine(
    *,
    dataset: Dataset,
    user: Any,
    name: str,
    op: str,
    left: ItemSet,
    right: ItemSet,
    description: str = "",
) -> tuple[Slice, int]:
    """A new static slice with the union, intersection or difference of two item sets."""
    if op not in SET_OPERATIONS:
        raise _invalid("op", f"must be one of {', '.join(SET_OPERATIONS)}")
    a = left.queryset().values("id")
    b = right.queryset().values("id")
    combined = {"union": a.union, "intersection": a.intersection, "difference": a.difference}[op](b)
    sql, params = _sql_of(combined)
    new, _ = services.slice_create(dataset=dataset, user=user, name=name, description=description)
    return new, _members_insert(new, sql, params)


# ------------------------------------------------------------------------------ samples


def _stratum_sql(stratify_by: str) -> tuple[str, list[Any]]:
    """SQL for an item's stratum (over alias `i`): its main label, or a metadata value."""
    if stratify_by == "label":
        # The item's most frequent label (ties: the first by name); NULL without annotations.
        return (
            "(SELECT a.label FROM curation_annotation a WHERE a.item_id = i.id "
            "GROUP BY a.label ORDER BY count(*) DESC, a.label LIMIT 1)",
            [],
        )
    parts = stratify_by.split(".")[1:]
    return "(i.metadata #>> %s::text[])", [parts]


def stratify_clean(value: str | None) -> str | None:
    """`label`, `metadata.<key>` (dotted for nested keys) or None; else a 400."""
    if value is None or value == "":
        return None
    if value == "label":
        return value
    parts = value.split(".")
    if parts[0] == "metadata" and len(parts) > 1 and all(parts[1:]):
        return value
    raise _invalid("stratify_by", "must be label or metadata.<key>")


def sample_allocate(
    counts: Sequence[tuple[str | None, int]], size: int
) -> list[tuple[str | None, int]]:
    """Split `size` among strata in proportion to their sizes (largest remainder).

    The quotas add up to exactly min(size, total); ties in the remainders go to the
    stratum that sorts first, so the split is deterministic.
    """
    total = sum(n for _, n in counts)
    if size >= total:
        return list(counts)
    exact = [(key, size * n / total, n) for key, n in counts]
    quotas = {key: math.floor(share) for key, share, _ in exact}
    left = size - sum(quotas.values())
    order = sorted(exact, key=lambda e: (-(e[1] - math.floor(e[1])), e[0] is None, e[0] or ""))
    for key, _, _ in order[:left]:
        quotas[key] += 1
    return [(key, quotas[key]) for key, _ in counts]


@transaction.atomic
def slice_sample(
    *,
    dataset: Dataset,
    user: Any,
    name: str,
    source: ItemSet,
    size: int,
    seed: int,
    stratify_by: str | None = None,
    description: str = "",
) -> tuple[Slice, int]:
    """A new static slice with a reproducible sample of `size` items from `source`.

    Items are ranked by md5(seed:id), so the same seed over the same items always picks
    the same ones (and adding items to the source displaces few of them). Stratified, each
    stratum (main label, or a metadata value) gets a share proportional to its size.
    """
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_SAMPLE_SIZE:
        raise _invalid("size", f"must be a whole number from 1 to {MAX_SAMPLE_SIZE}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise _invalid("seed", "must be a whole number >= 0")
    stratify_by = stratify_clean(stratify_by)
    pool_sql, pool_params = item_ids_sql(source.queryset())
    new, _ = services.slice_create(dataset=dataset, user=user, name=name, description=description)
    rank = "md5(%s::text || ':' || s.id::text), s.id"
    with connection.cursor() as cursor:
        if stratify_by is None:
            cursor.execute(
                "INSERT INTO curation_sliceitem (slice_id, item_id, added) "
                f"SELECT %s, s.id, now() FROM ({pool_sql}) AS s(id) ORDER BY {rank} LIMIT %s",
                [new.pk, *pool_params, str(seed), size],
            )
            return new, int(cursor.rowcount)
        stratum, stratum_params = _stratum_sql(stratify_by)
        strata = (
            f"SELECT i.id, {stratum} AS stratum FROM curation_item i WHERE i.id IN ({pool_sql})"
        )
        strata_params = [*stratum_params, *pool_params]
        cursor.execute(
            f"SELECT s.stratum, count(*) FROM ({strata}) s GROUP BY s.stratum "
            "ORDER BY s.stratum NULLS LAST",
            strata_params,
        )
        counts = [(key, int(n)) for key, n in cursor.fetchall()]
        quotas = [(key, quota) for key, quota in sample_allocate(counts, size) if quota > 0]
        if not quotas:
            return new, 0
        cursor.execute(
            "INSERT INTO curation_sliceitem (slice_id, item_id, added) "
            "SELECT %s, r.id, now() FROM ("
            f"  SELECT s.id, s.stratum, row_number() OVER (PARTITION BY s.stratum ORDER BY {rank})"
            f"  AS rn FROM ({strata}) s"
            ") r JOIN unnest(%s::text[], %s::int[]) AS q(stratum, quota)"
            " ON q.stratum IS NOT DISTINCT FROM r.stratum WHERE r.rn <= q.quota",
            [
                new.pk,
                str(seed),
                *strata_params,
                [key for key, _ in quotas],
                [quota for _, quota in quotas],
            ],
        )
        return new, int(cursor.rowcount)


# --------------------------------------------------------------------------------- tags


def _tag_items(
    dataset: Dataset, query: str | None, item_ids: Sequence[int] | None
) -> tuple[str, list[Any]] | None:
    """The SQL of the items to (un)tag; None when none can match (`item_ids` is empty)."""
    if query is None and item_ids is None:
        raise _invalid("query", "give a query, item_ids, or both")
    items = ItemSet(dataset=dataset, query=query or "").queryset()
    if item_ids is not None:
        ids = item_ids_check(dataset=dataset, item_ids=item_ids)
        if not ids:
            # Django compiles `pk__in=[]` to no SQL at all (EmptyResultSet), not to FALSE.
            return None
        items = items.filter(pk__in=ids)
    return item_ids_sql(items)


@transaction.atomic
def tag_add_matching(
    *,
    dataset: Dataset,
    name: str,
    query: str | None = None,
    item_ids: Sequence[int] | None = None,
) -> tuple[Tag, int]:
    """Tag every item a query matches (blank: all), or these item ids, or both (AND).

    Returns the tag (created if needed) and how many items gained it.
    """
    name = name.strip()
    if not name:
        raise _invalid("name", "must not be blank")
    if len(name) > services.MAX_NAME_LENGTH:
        raise _invalid("name", f"must be at most {services.MAX_NAME_LENGTH} characters")
    matching = _tag_items(dataset, query, item_ids)
    tag, _ = Tag.objects.get_or_create(dataset=dataset, name=name)
    if matching is None:
        return tag, 0
    sql, params = matching
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO curation_itemtag (tag_id, item_id, added) "
            f"SELECT %s, s.id, now() FROM ({sql}) AS s(id) ON CONFLICT DO NOTHING",
            [tag.pk, *params],
        )
        return tag, int(cursor.rowcount)


@transaction.atomic
def tag_remove_matching(
    *,
    dataset: Dataset,
    name: str,
    query: str | None = None,
    item_ids: Sequence[int] | None = None,
) -> tuple[Tag, int]:
    """Untag every item a query matches, or these item ids; returns how many lost it."""
    tag = Tag.objects.filter(dataset=dataset, name=name.strip()).first()
    if tag is None:
        raise _invalid("name", f"no tag {name!r} in this dataset")
    matching = _tag_items(dataset, query, item_ids)
    if matching is None:
        return tag, 0
    sql, params = matching
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM curation_itemtag WHERE tag_id = %s AND item_id IN ({sql})",
            [tag.pk, *params],
        )
        return tag, int(cursor.rowcount)


# ----------------------------------------------------------------------------- versions


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
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH written AS ("
            "  INSERT INTO curation_sliceversionitem (version_id, item_id, reference_id,"
            "    media_key, thumbnail_key, width, height, sha256, metadata, annotations)"
            "  SELECT %s, i.id, i.reference_id, i.media_key, i.thumbnail_key, i.width, i.height,"
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
    result["truncated"] = any(result["counts"][k] > len(result[k]) for k in DIFF_KINDS)
    return result


__all__ = [
    "SET_OPERATIONS",
    "ItemSet",
    "item_ids_check",
    "item_set_resolve",
    "query_items_q",
    "sample_allocate",
    "similarity_clean",
    "similarity_item_ids",
    "slice_combine",
    "slice_create_from_items",
    "slice_create_from_query",
    "slice_item_count",
    "slice_items",
    "slice_items_q",
    "slice_query_update",
    "slice_sample",
    "slice_version_create",
    "slice_version_of",
    "slice_version_restore",
    "slice_versions",
    "slice_versions_diff",
    "stratify_clean",
    "tag_add_matching",
    "tag_remove_matching",
]
