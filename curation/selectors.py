"""Reads of the curation domain: querysets for the API and the UI."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypedDict

from django.contrib.postgres.expressions import ArraySubquery
from django.db import connection
from django.db.models import (
    BooleanField,
    Case,
    Count,
    ExpressionWrapper,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django_stubs_ext import WithAnnotations

from curation import itemsets
from curation.errors import CurationError, NotFound, unknown_items
from curation.filters import items_filter
from curation.models import (
    ACTIVE_JOB_STATUSES,
    Annotation,
    ApiToken,
    Dataset,
    Item,
    Job,
    Membership,
    Model,
    Prediction,
    Role,
    Slice,
    SliceItem,
    Tag,
)

# Counts shown in API responses are exact up to here; past it they are the planner's
# estimate (and say so), so that no response scans a million rows to print one number.
EXACT_COUNT_MAX = 100_000


def _object_id(raw: Any, what: str) -> int:
    """`raw` as an id; anything that is not one (text, out of range) is simply not found."""
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise NotFound(f"{what} not found.") from None
    if not 1 <= value <= 2**63 - 1:
        raise NotFound(f"{what} not found.")
    return value


def planner_rows(queryset: QuerySet[Any]) -> int:
    """The planner's estimate of how many rows `queryset` has (EXPLAIN; nothing is scanned)."""
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def count_capped(queryset: QuerySet[Any], *, most: int | None = None) -> tuple[int, bool]:
    """How many rows `queryset` has and whether that is exact.

    Counting stops after `most` rows (EXACT_COUNT_MAX); a larger set gets the planner's
    estimate (never below what was counted), so the cost is bounded however big it is.
    Give a values() queryset of indexed columns and the count is an index-only scan.
    """
    most = EXACT_COUNT_MAX if most is None else most
    counted = queryset.order_by()[: most + 1].count()
    if counted <= most:
        return counted, True
    return max(planner_rows(queryset), counted), False


def count_upto(queryset: QuerySet[Any], *, most: int) -> int:
    """How many rows `queryset` has, counting no further than `most` + 1: a larger set
    reads as "more than `most`" at the cost of `most` rows."""
    return queryset[: most + 1].count()


def datasets_for_user(user: Any) -> QuerySet[Dataset]:
    """Datasets `user` has a role on, each with `user_role` (see dataset_counts_attach)."""
    if not user.is_authenticated:
        return Dataset.objects.none()
    member_role = Membership.objects.filter(dataset=OuterRef("pk"), user=user).values("role")[:1]
    return (
        Dataset.objects.filter(
            Q(owner=user) | Q(pk__in=Membership.objects.filter(user=user).values("dataset_id"))
        )
        .select_related("owner")
        # The plugin takes this for a redefinition of the Dataset.user_role it declares.
        .annotate(  # type: ignore[no-redef]
            user_role=Case(
                When(owner=user, then=Value(Role.ADMIN.value)), default=Subquery(member_role)
            ),
        )
    )


def dataset_item_count(*, dataset: Dataset) -> tuple[int, bool]:
    """The dataset's items and whether that is exact: one bounded count (count_capped)."""
    return count_capped(Item.objects.filter(dataset_id=dataset.pk).values("id"))


class LastJob(TypedDict):
    last_job: datetime | None


def datasets_with_last_job(*, user: Any) -> list[WithAnnotations[Dataset, LastJob]]:
    """The user's datasets by name, each with `last_job` (when its newest job was created)."""
    return list(
        datasets_for_user(user).annotate(last_job=Max("jobs__created")).order_by("name", "id")
    )


def dataset_counts_attach(datasets: Iterable[Dataset]) -> None:
    """Set `item_count` and `item_count_exact` on each dataset (one bounded count each)."""
    for dataset in datasets:
        count, exact = dataset_item_count(dataset=dataset)
        dataset.item_count, dataset.item_count_exact = count, exact  # type: ignore[attr-defined]


def dataset_detail(*, user: Any, dataset: Dataset) -> Dataset:
    """The dataset again, with `user_role`, `item_count` and `item_count_exact`."""
    found = datasets_for_user(user).get(pk=dataset.pk)
    dataset_counts_attach([found])
    return found


def dataset_members(*, dataset: Dataset) -> list[dict[str, Any]]:
    """The owner (as admin) then every member, in the order they joined."""
    owner = dataset.owner
    members = [
        {
            "user_id": owner.pk,
            "username": owner.username,
            "role": Role.ADMIN.value,
            "is_owner": True,
            "created": dataset.created,
        }
    ]
    for m in Membership.objects.filter(dataset=dataset).select_related("user").order_by("id"):
        members.append(
            {
                "user_id": m.user_id,
                "username": m.user.username,
                "role": m.role,
                "is_owner": False,
                "created": m.created,
            }
        )
    return members


def dataset_member(*, dataset: Dataset, user_id: int) -> dict[str, Any]:
    member = next((m for m in dataset_members(dataset=dataset) if m["user_id"] == user_id), None)
    if member is None:
        raise NotFound("Member not found.")
    return member


def tokens_of(*, user: Any) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user).order_by("id")


def token_of(*, user: Any, token_id: int) -> ApiToken:
    token = ApiToken.objects.filter(user=user, pk=_object_id(token_id, "Token")).first()
    if token is None:
        raise NotFound("Token not found.")
    return token


def items_of(
    *,
    dataset: Dataset,
    params: Any = None,
    extra_params: Sequence[str] = (),
    within: Slice | None = None,
    conditions: Sequence[Q] = (),
    any_of: bool = False,
) -> QuerySet[Item]:
    """The dataset's items, filtered by query parameters (see curation.filters; `any_of`:
    repeated values of one parameter match any of them), in the slice `within`, matching
    each of `conditions` (each its own filter)."""
    items = Item.objects.filter(dataset=dataset)
    if params is not None:
        items = items_filter(
            items, dataset=dataset, params=params, extra_params=extra_params, any_of=any_of
        )
    if within is not None:
        items = items.filter(itemsets.slice_items_q(within))
    for condition in conditions:
        items = items.filter(condition)
    return items


def item_of(*, dataset: Dataset, item_id: Any) -> Item:
    item = Item.objects.filter(dataset=dataset, pk=_object_id(item_id, "Item")).first()
    if item is None:
        raise NotFound("Item not found.")
    return item


def item_by_id(*, item_id: int, with_dataset: bool = False) -> Item | None:
    """Any dataset's item by id (media checks access themselves), or None."""
    items = Item.objects.select_related("dataset") if with_dataset else Item.objects.all()
    return items.filter(pk=item_id).first()


def item_by_reference(*, dataset: Dataset, reference_id: str) -> Item:
    item = Item.objects.filter(dataset=dataset, reference_id=reference_id).first()
    if item is None:
        raise NotFound("Item not found.")
    return item


def item_detail(*, dataset: Dataset, item_id: Any, include_predictions: bool = False) -> Item:
    """The item with `tag_names`, `annotation_list` and (or None) `prediction_list`.

    The item and its tag names are one query, its annotations another (each told its item,
    so that none joins it again).
    """
    names = Tag.objects.filter(item_links__item=OuterRef("pk")).order_by("name").values("name")
    item = (
        Item.objects.filter(dataset=dataset, pk=_object_id(item_id, "Item"))
        .annotate(tag_names=ArraySubquery(names))
        .first()
    )
    if item is None:
        raise NotFound("Item not found.")
    annotations = list(Annotation.objects.filter(item=item).order_by("id"))
    for annotation in annotations:
        annotation.item = item
    item.annotation_list = annotations  # type: ignore[attr-defined]
    item.prediction_list = (  # type: ignore[attr-defined]
        list(item_predictions(item=item)) if include_predictions else None
    )
    return item


def item_tag_names(*, item: Item) -> list[str]:
    return list(
        Tag.objects.filter(item_links__item=item).order_by("name").values_list("name", flat=True)
    )


def item_annotations(*, item: Item) -> QuerySet[Annotation]:
    return Annotation.objects.filter(item=item).select_related("item").order_by("id")


def annotation_of(*, dataset: Dataset, annotation_pk: Any) -> Annotation:
    """One of the dataset's annotations by its number (`pk`), with its item."""
    pk = _object_id(annotation_pk, "Annotation")
    found = Annotation.objects.filter(dataset=dataset, pk=pk).select_related("item").first()
    if found is None:
        raise NotFound("Annotation not found.")
    return found


def item_predictions(*, item: Item, model: Model | None = None) -> QuerySet[Prediction]:
    predictions = Prediction.objects.filter(item=item).select_related("model").order_by("id")
    return predictions.filter(model=model) if model is not None else predictions


def item_ids_for(
    *, dataset: Dataset, reference_ids: Sequence[str], path: str = "reference_ids"
) -> list[int]:
    """Ids of the dataset's items with these reference ids; 400 listing every unknown one."""
    found = dict(
        Item.objects.filter(dataset=dataset, reference_id__in=set(reference_ids)).values_list(
            "reference_id", "id"
        )
    )
    unknown = [(i, repr(ref)) for i, ref in enumerate(reference_ids) if ref not in found]
    if unknown:
        raise unknown_items(unknown, path=path, noun="reference ids")
    return list(dict.fromkeys(found[ref] for ref in reference_ids))


def item_reference_ids(*, dataset: Dataset, item_ids: Sequence[int]) -> dict[int, str]:
    """Reference ids of those of `item_ids` that are items of the dataset, by item id."""
    return dict(
        Item.objects.filter(dataset=dataset, pk__in=item_ids).values_list("pk", "reference_id")
    )


def items_reference_ids(items: QuerySet[Item], *, most: int) -> list[str]:
    """Reference ids of `items` in id order, no more than `most` + 1 of them."""
    return list(items.order_by("id").values_list("reference_id", flat=True)[: most + 1])


def items_in_order(*, dataset: Dataset, item_ids: Sequence[int]) -> list[Item]:
    """The dataset's items of `item_ids`, in that order (ids of other or deleted items are
    left out)."""
    found = Item.objects.filter(dataset=dataset, pk__in=list(item_ids)).in_bulk()
    return [found[i] for i in item_ids if i in found]


def annotations_drawn(*, item_ids: Sequence[int]) -> list[Mapping[str, Any]]:
    """The annotations of these items that a tile draws (all but masks), as plain rows."""
    return list(
        Annotation.objects.filter(item_id__in=item_ids)
        .exclude(kind="segmentation")
        .values("id", "item_id", "kind", "label", "geometry")
    )


# Labels listed for a dataset's colours: one index probe each (below), and past a few
# hundred no reader tells colours apart anyway.
MAX_DATASET_LABELS = 1000


def dataset_labels(*, dataset: Dataset) -> list[str]:
    """The distinct labels of a dataset's annotations, sorted (at most MAX_DATASET_LABELS)."""
    # A loose index scan: each step asks annotation_dataset_label for the next label after
    # the last one, so the cost is one probe per label, not a pass over every annotation
    # (a plain DISTINCT reads all of them: seconds at millions of rows).
    sql = (
        "WITH RECURSIVE labels(label, n) AS ("
        "  SELECT min(label), 1 FROM curation_annotation WHERE dataset_id = %s"
        "  UNION ALL"
        "  SELECT (SELECT min(a.label) FROM curation_annotation a"
        "          WHERE a.dataset_id = %s AND a.label > labels.label), n + 1"
        "  FROM labels WHERE labels.label IS NOT NULL AND n < %s"
        ") SELECT label FROM labels WHERE label IS NOT NULL"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [dataset.pk, dataset.pk, MAX_DATASET_LABELS])
        return sorted(row[0] for row in cursor.fetchall())


def predictions_drawn(
    *, item_ids: Sequence[int], model_id: int, min_confidence: float
) -> list[Mapping[str, Any]]:
    """One model's predictions of these items at or above `min_confidence` that a tile
    draws (all but masks), as plain rows."""
    return list(
        Prediction.objects.filter(
            item_id__in=item_ids, model_id=model_id, confidence__gte=min_confidence
        )
        .exclude(kind="segmentation")
        .values("id", "item_id", "kind", "label", "geometry", "confidence")
    )


def models_of(*, dataset: Dataset) -> QuerySet[Model]:
    """The dataset's models; listings add counts with model_counts_attach."""
    return Model.objects.filter(dataset=dataset)


def model_choices(*, dataset: Dataset) -> list[tuple[int, str]]:
    """(id, name) of the dataset's models by name, for a menu."""
    return list(models_of(dataset=dataset).order_by("name").values_list("pk", "name"))


def model_counts_attach(models: Iterable[Model]) -> None:
    """Set `prediction_count` and `prediction_count_exact` on each model (bounded counts)."""
    for model in models:
        # prediction_id: with model_id, the columns of the unique index (index-only scan).
        count, exact = count_capped(
            Prediction.objects.filter(model_id=model.pk).values("prediction_id")
        )
        model.prediction_count, model.prediction_count_exact = count, exact  # type: ignore[attr-defined]


def model_of(*, dataset: Dataset, model_id: Any) -> Model:
    """The model, without counts: write paths (predictions/bulk) must not count."""
    model = Model.objects.filter(dataset=dataset, pk=_object_id(model_id, "Model")).first()
    if model is None:
        raise NotFound("Model not found.")
    return model


def model_detail(*, dataset: Dataset, model_id: Any) -> Model:
    """The model with its prediction count."""
    model = model_of(dataset=dataset, model_id=model_id)
    model_counts_attach([model])
    return model


def slices_of(*, dataset: Dataset) -> QuerySet[Slice]:
    """The dataset's slices; listings add counts with slice_counts_attach."""
    return Slice.objects.filter(dataset=dataset).select_related("created_by")


def slice_names(*, dataset: Dataset, slice_ids: Iterable[str]) -> dict[str, str]:
    """Names of the dataset's slices among `slice_ids` (as text; others are left out)."""
    ids = [int(s) for s in slice_ids if s.isdigit()]
    return {str(s.pk): s.name for s in Slice.objects.filter(dataset=dataset, pk__in=ids)}


def static_slice_choices(*, dataset: Dataset) -> list[tuple[int, str]]:
    """(id, name) of the dataset's static slices by name, for a menu."""
    return list(
        Slice.objects.filter(dataset=dataset, query="", similarity__isnull=True)
        .order_by("name")
        .values_list("pk", "name")
    )


def item_slices(*, dataset: Dataset, item: Item, max_dynamic: int) -> list[Slice]:
    """Static slices the item is a member of, and dynamic slices whose query it matches
    (of the first `max_dynamic` dynamic slices), by name."""
    found = list(Slice.objects.filter(dataset=dataset, memberships__item=item))
    conditions: dict[str, Q] = {}
    dynamic: dict[str, Slice] = {}
    for candidate in Slice.objects.filter(dataset=dataset).exclude(
        query="", similarity__isnull=True
    )[:max_dynamic]:
        candidate.dataset = dataset  # compiling reads it: no query per slice
        try:
            conditions[f"in_{candidate.pk}"] = itemsets.slice_items_q(candidate)
        except CurationError:
            continue  # a saved query that no longer compiles matches nothing
        dynamic[f"in_{candidate.pk}"] = candidate
    if conditions:
        # Every dynamic slice's condition on this one item, in a single statement.
        matches = (
            Item.objects.filter(pk=item.pk)
            .annotate(
                **{
                    name: ExpressionWrapper(condition, output_field=BooleanField())
                    for name, condition in conditions.items()
                }
            )
            .values(*conditions)
            .first()
        ) or {}
        found.extend(dynamic[name] for name, matched in matches.items() if matched)
    return sorted(found, key=lambda s: s.name)


def slice_counts_attach(slices: Iterable[Slice], *, dynamic: bool = False) -> None:
    """Set `item_count` and `item_count_exact` on each slice (bounded counts).

    A dynamic slice is counted only with `dynamic` (one slice's detail): evaluating every
    saved query of a listing would run them all. A dynamic slice whose query no longer
    evaluates (it names a slice since renamed or deleted) gets a null count and its
    `query_error`, so it can still be read, repaired or deleted.
    """
    for found in slices:
        found.item_count, found.item_count_exact = None, None  # type: ignore[attr-defined]
        found.query_error = None  # type: ignore[attr-defined]
        if found.is_dynamic and not dynamic:
            continue
        try:
            count, exact = slice_item_count(slice=found)
        except CurationError as exc:
            found.query_error = exc.message  # type: ignore[attr-defined]
            continue
        found.item_count, found.item_count_exact = count, exact  # type: ignore[attr-defined]


def slice_item_count(*, slice: Slice) -> tuple[int, bool]:
    """The slice's items and whether that is exact: one bounded count (count_capped).

    A dynamic slice evaluates its query: CurationError when it no longer compiles.
    """
    # A static slice counts its member rows alone, from the unique (slice, item)
    # index; a dynamic one evaluates its query, which compiles here.
    members = (
        slice_items(slice=slice).values("id")
        if slice.is_dynamic
        else SliceItem.objects.filter(slice_id=slice.pk).values("item_id")
    )
    return count_capped(members)


def slice_of(*, dataset: Dataset, slice_id: Any) -> Slice:
    """The slice, without counts: write and paging paths must not count or evaluate it."""
    found = slices_of(dataset=dataset).filter(pk=_object_id(slice_id, "Slice")).first()
    if found is None:
        raise NotFound("Slice not found.")
    found.dataset = dataset  # the row just checked: reading slice.dataset needs no query
    return found


def slice_detail(*, dataset: Dataset, slice_id: Any) -> Slice:
    """The slice with its item count now (a dynamic slice's query evaluated)."""
    found = slice_of(dataset=dataset, slice_id=slice_id)
    slice_counts_attach([found], dynamic=True)
    return found


def slice_items(*, slice: Slice) -> QuerySet[Item]:
    """The slice's items now: its members, or a dynamic slice's query matches."""
    return itemsets.slice_items(slice)


class ItemCount(TypedDict):
    item_count: int


def tags_of(*, dataset: Dataset) -> QuerySet[WithAnnotations[Tag, ItemCount]]:
    return (
        Tag.objects.filter(dataset=dataset)
        .annotate(item_count=Count("item_links"))
        .order_by("name")
    )


def tag_names_of(*, dataset: Dataset) -> list[tuple[int, str]]:
    """The dataset's tags as (id, name), by name, without counting their items."""
    return list(Tag.objects.filter(dataset=dataset).order_by("name").values_list("pk", "name"))


def tag_of(*, dataset: Dataset, tag_id: Any) -> Tag:
    tag = tags_of(dataset=dataset).filter(pk=_object_id(tag_id, "Tag")).first()
    if tag is None:
        raise NotFound("Tag not found.")
    return tag


def jobs_of(*, dataset: Dataset, kind: str | None = None) -> QuerySet[Job]:
    """The dataset's jobs (of one `kind`, e.g. "export", or of every kind)."""
    jobs = Job.objects.filter(dataset=dataset).select_related("created_by")
    return jobs.filter(kind=kind) if kind is not None else jobs


def job_of(*, dataset: Dataset, job_id: Any) -> Job:
    job = jobs_of(dataset=dataset).filter(pk=_object_id(job_id, "Job")).first()
    if job is None:
        raise NotFound("Job not found.")
    return job


def recent_jobs(*, user: Any, datasets: Sequence[Dataset], limit: int) -> list[Job]:
    """The newest jobs of `datasets` that are still active or that `user` started."""
    return list(
        Job.objects.filter(dataset__in=[d.pk for d in datasets])
        .filter(Q(status__in=ACTIVE_JOB_STATUSES) | Q(created_by=user))
        .select_related("dataset", "created_by")
        .order_by("-id")[:limit]
    )


def jobs_listed(
    *, user: Any, dataset: Dataset | None, status: str, before: int | None, limit: int
) -> list[Job]:
    """Jobs of `dataset` (or of every dataset the user has a role on) newest first, with
    `status` ("" for any) and ids below `before` (None: from the newest); `limit` at most."""
    if dataset is not None:
        jobs = jobs_of(dataset=dataset)
    else:
        jobs = Job.objects.filter(
            dataset__in=Dataset.objects.visible_to(user).values("pk")
        ).select_related("created_by")
    jobs = jobs.select_related("dataset").order_by("-id")
    if status:
        jobs = jobs.filter(status=status)
    if before is not None:
        jobs = jobs.filter(id__lt=before)
    return list(jobs[:limit])
