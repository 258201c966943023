"""Reads of the curation domain: querysets for the API and the UI."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import Case, Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce

from curation.errors import InvalidInput, NotFound, field_error
from curation.filters import items_filter
from curation.models import (
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

MAX_LISTED_ERRORS = 1000


def _count_of(queryset: QuerySet[Any], field: str) -> Coalesce:
    """A correlated COUNT(*) subquery over `queryset` grouped by `field`, 0 when empty."""
    counted = queryset.order_by().values(field).annotate(n=Count("*")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def datasets_for_user(user: Any) -> QuerySet[Dataset]:
    """Datasets `user` has a role on, each with `user_role` and `item_count`."""
    if not user.is_authenticated:
        return Dataset.objects.none()
    member_role = Membership.objects.filter(dataset=OuterRef("pk"), user=user).values("role")[:1]
    return (
        Dataset.objects.filter(
            Q(owner=user) | Q(pk__in=Membership.objects.filter(user=user).values("dataset_id"))
        )
        .select_related("owner")
        .annotate(
            user_role=Case(
                When(owner=user, then=Value(Role.ADMIN.value)), default=Subquery(member_role)
            ),
            item_count=_count_of(Item.objects.filter(dataset=OuterRef("pk")), "dataset"),
        )
    )


def dataset_detail(*, user: Any, dataset: Dataset) -> Dataset:
    """The dataset again, with `user_role` and `item_count`."""
    return datasets_for_user(user).get(pk=dataset.pk)


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
    token = ApiToken.objects.filter(user=user, pk=token_id).first()
    if token is None:
        raise NotFound("Token not found.")
    return token


def items_of(
    *, dataset: Dataset, params: Any = None, extra_params: Sequence[str] = ()
) -> QuerySet[Item]:
    """The dataset's items, filtered by query parameters (see curation.filters)."""
    items = Item.objects.filter(dataset=dataset)
    if params is not None:
        items = items_filter(items, dataset=dataset, params=params, extra_params=extra_params)
    return items


def item_of(*, dataset: Dataset, item_id: Any) -> Item:
    item = Item.objects.filter(dataset=dataset, pk=item_id).first()
    if item is None:
        raise NotFound("Item not found.")
    return item


def item_detail(*, dataset: Dataset, item_id: Any, include_predictions: bool = False) -> Item:
    """The item with `tag_names`, `annotation_list` and (or None) `prediction_list`."""
    item = item_of(dataset=dataset, item_id=item_id)
    item.tag_names = list(  # type: ignore[attr-defined]
        Tag.objects.filter(item_links__item=item).order_by("name").values_list("name", flat=True)
    )
    item.annotation_list = list(item_annotations(item=item))  # type: ignore[attr-defined]
    item.prediction_list = (  # type: ignore[attr-defined]
        list(item_predictions(item=item)) if include_predictions else None
    )
    return item


def item_annotations(*, item: Item) -> QuerySet[Annotation]:
    return Annotation.objects.filter(item=item).select_related("item").order_by("id")


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
    unknown = [(i, ref) for i, ref in enumerate(reference_ids) if ref not in found]
    if unknown:
        raise InvalidInput(
            f"{len(unknown)} reference ids are not items of this dataset: "
            + ", ".join(repr(ref) for _, ref in unknown[:10])
            + (" ..." if len(unknown) > 10 else ""),
            fields=[
                field_error(f"{path}[{i}]", f"no item {ref!r} in this dataset")
                for i, ref in unknown[:MAX_LISTED_ERRORS]
            ],
        )
    return list(dict.fromkeys(found[ref] for ref in reference_ids))


def models_of(*, dataset: Dataset) -> QuerySet[Model]:
    return Model.objects.filter(dataset=dataset).annotate(
        prediction_count=_count_of(Prediction.objects.filter(model=OuterRef("pk")), "model")
    )


def model_of(*, dataset: Dataset, model_id: Any) -> Model:
    model = models_of(dataset=dataset).filter(pk=model_id).first()
    if model is None:
        raise NotFound("Model not found.")
    return model


def slices_of(*, dataset: Dataset) -> QuerySet[Slice]:
    return (
        Slice.objects.filter(dataset=dataset)
        .select_related("created_by")
        .annotate(
            item_count=Case(
                When(
                    query="",
                    then=_count_of(SliceItem.objects.filter(slice=OuterRef("pk")), "slice"),
                ),
                default=None,
            )
        )
    )


def slice_of(*, dataset: Dataset, slice_id: Any) -> Slice:
    found = slices_of(dataset=dataset).filter(pk=slice_id).first()
    if found is None:
        raise NotFound("Slice not found.")
    if found.is_dynamic:
        # A dynamic slice's members are its query's matches now; count them for one slice
        # (listings leave the count null rather than run every slice's query).
        found.item_count = slice_items(slice=found).count()
    return found


def slice_items(*, slice: Slice) -> QuerySet[Item]:
    """The slice's items now: its members, or a dynamic slice's query matches."""
    # Imported here: curation.slices builds on services, which import this module.
    from curation.slices import slice_items as items_now

    return items_now(slice)


def tags_of(*, dataset: Dataset) -> QuerySet[Tag]:
    return (
        Tag.objects.filter(dataset=dataset)
        .annotate(item_count=Count("item_links"))
        .order_by("name")
    )


def tag_of(*, dataset: Dataset, tag_id: Any) -> Tag:
    tag = tags_of(dataset=dataset).filter(pk=tag_id).first()
    if tag is None:
        raise NotFound("Tag not found.")
    return tag


def jobs_of(*, dataset: Dataset) -> QuerySet[Job]:
    return Job.objects.filter(dataset=dataset).select_related("created_by")


def job_of(*, dataset: Dataset, job_id: Any) -> Job:
    job = jobs_of(dataset=dataset).filter(pk=job_id).first()
    if job is None:
        raise NotFound("Job not found.")
    return job
