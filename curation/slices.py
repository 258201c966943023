"""Slice operations beyond plain membership: slices from a query (dynamic or static) or
from item ids, set operations, reproducible samples, and tagging by query.

A *static* slice's items are its SliceItem rows. A *dynamic* slice is a saved query (and
optionally a similarity condition) evaluated whenever it is read (curation.itemsets);
freezing either kind into a version is curation.versions.

Every bulk change here is one set-based statement (INSERT ... SELECT, DELETE ... WHERE),
never a loop over items; item sets are built with the ORM (the query language compiles
to ORM expressions) and only spliced into parameterised SQL as compiled subqueries.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from django.db import connection, transaction

from curation import services
from curation.errors import invalid_field
from curation.itemsets import ItemSet, item_ids_check, item_ids_sql, slice_items, sql_of
from curation.models import Dataset, Item, Slice, SliceItem, Tag
from curation.query import compile_query, query_items_q

SET_OPERATIONS = ("union", "intersection", "difference")
SIMILARITY_MAX_LIMIT = 1000
MAX_SAMPLE_SIZE = 10_000_000


# ----------------------------------------------------------------------------- similarity


def similarity_clean(*, dataset: Dataset, raw: Any, path: str = "similarity") -> dict[str, Any]:
    """Validate a similarity condition: {reference_id | text, model?, limit?, min_score?}."""
    if not isinstance(raw, dict):
        raise invalid_field(path, "must be an object with reference_id or text")
    unknown = sorted(set(raw) - {"reference_id", "text", "model", "limit", "min_score"})
    if unknown:
        raise invalid_field(f"{path}.{unknown[0]}", "is not a similarity option")
    sources = [key for key in ("reference_id", "text") if raw.get(key) is not None]
    if len(sources) != 1:
        raise invalid_field(path, "give exactly one of reference_id or text")
    clean: dict[str, Any] = {}
    key = sources[0]
    value = raw[key]
    if not isinstance(value, str) or not value.strip():
        raise invalid_field(f"{path}.{key}", "must be a non-blank string")
    if "\x00" in value:  # the condition is stored as jsonb, which cannot hold U+0000
        raise invalid_field(f"{path}.{key}", "must not contain NUL characters")
    clean[key] = value
    if (
        key == "reference_id"
        and not Item.objects.filter(dataset=dataset, reference_id=value).exists()
    ):
        raise invalid_field(f"{path}.reference_id", f"no item {value!r} in this dataset")
    model = raw.get("model")
    if model is not None:
        if not isinstance(model, str) or not model.strip() or "\x00" in model:
            raise invalid_field(f"{path}.model", "must be an embedding model's name")
        clean["model"] = model
    limit = raw.get("limit", 100)
    if (
        isinstance(limit, bool)
        or not isinstance(limit, int)
        or not 1 <= limit <= SIMILARITY_MAX_LIMIT
    ):
        raise invalid_field(
            f"{path}.limit", f"must be a whole number from 1 to {SIMILARITY_MAX_LIMIT}"
        )
    clean["limit"] = limit
    min_score = raw.get("min_score")
    if min_score is not None:
        if isinstance(min_score, bool) or not isinstance(min_score, int | float):
            raise invalid_field(f"{path}.min_score", "must be a number from -1 to 1")
        if not -1 <= float(min_score) <= 1:
            raise invalid_field(f"{path}.min_score", "must be a number from -1 to 1")
        clean["min_score"] = float(min_score)
    return clean


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
        raise invalid_field("query", "a dynamic slice needs a query or a similarity condition")
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
        raise invalid_field("op", f"must be one of {', '.join(SET_OPERATIONS)}")
    a = left.queryset().values("id")
    b = right.queryset().values("id")
    combined = {"union": a.union, "intersection": a.intersection, "difference": a.difference}[op](b)
    sql, params = sql_of(combined)
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
    raise invalid_field("stratify_by", "must be label or metadata.<key>")


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
        raise invalid_field("size", f"must be a whole number from 1 to {MAX_SAMPLE_SIZE}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise invalid_field("seed", "must be a whole number >= 0")
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
        raise invalid_field("query", "give a query, item_ids, or both")
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
        raise invalid_field("name", "must not be blank")
    if len(name) > services.MAX_NAME_LENGTH:
        raise invalid_field("name", f"must be at most {services.MAX_NAME_LENGTH} characters")
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
        raise invalid_field("name", f"no tag {name!r} in this dataset")
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


__all__ = [
    "SET_OPERATIONS",
    "sample_allocate",
    "similarity_clean",
    "slice_combine",
    "slice_create_from_items",
    "slice_create_from_query",
    "slice_query_update",
    "slice_sample",
    "stratify_clean",
    "tag_add_matching",
    "tag_remove_matching",
]
