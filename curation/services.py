"""Writes of the curation domain: `<noun>_<verb>(*, ...)`, typed and transactional."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from curation import signals
from curation.authentication import hash_token, new_token_secret
from curation.errors import Conflict, CurationError, InvalidInput, NotFound, field_error
from curation.export.jobs import export_job_start
from curation.extensions import vectors
from curation.history import history_off
from curation.models import (
    Annotation,
    AnnotationChange,
    AnnotationEvent,
    ApiToken,
    Dataset,
    Item,
    ItemTag,
    Job,
    Membership,
    Model,
    Prediction,
    Role,
    ShapeCount,
    Slice,
    SliceItem,
    SliceVersion,
    SliceVersionItem,
    Tag,
)
from curation.selectors import item_ids_for
from curation.shape_counts import shape_counts_off

MAX_NAME_LENGTH = 200
# Export jobs one user may have queued or running at once, over all datasets: any viewer
# may export, and each job holds a worker and writes a file, so one user must not be able
# to fill the queue.
MAX_ACTIVE_EXPORT_JOBS = 3


class TooManyJobs(CurationError):
    status_code = 429
    code = "too_many_jobs"


# ------------------------------------------------------------------------------ helpers


def _save_unique(
    instance: models.Model, *, constraint: str, field: str, what: str, exclude: Sequence[str] = ()
) -> None:
    """Validate and save `instance`; a clash on `constraint` is a 409 naming `field`."""
    # The unique constraint is left to the database, which is race-free; full_clean would
    # only report it as a non-field error.
    instance.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
    try:
        with transaction.atomic():
            instance.save()
    except IntegrityError as exc:
        if getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None) != constraint:
            raise
        value = getattr(instance, field)
        message = f"{what} named {value!r} already exists."
        raise Conflict(message, fields=[field_error(field, message)]) from None


def _clean_name(name: str, field: str = "name") -> str:
    name = name.strip()
    if not name:
        raise InvalidInput(
            f"{field}: must not be blank", fields=[field_error(field, "must not be blank")]
        )
    if "\x00" in name:
        # PostgreSQL text cannot hold NUL: refuse it here rather than fail in the INSERT.
        message = "must not contain NUL characters"
        raise InvalidInput(f"{field}: {message}", fields=[field_error(field, message)])
    return name


def _link_items(table: str, owner_column: str, owner_id: int, item_ids: Sequence[int]) -> int:
    """Insert (owner, item) links that are missing; returns how many were added."""
    if not item_ids:
        return 0
    with connection.cursor() as cursor:
        # One set-based statement instead of a row per item; ON CONFLICT makes retries and
        # overlapping appends harmless. `table` and `owner_column` are constants of this module.
        cursor.execute(
            f"INSERT INTO {table} ({owner_column}, item_id, added) "
            "SELECT %s, unnest(%s::bigint[]), now() ON CONFLICT DO NOTHING",
            [owner_id, list(item_ids)],
        )
        return int(cursor.rowcount)


# ------------------------------------------------------------------------------- tokens


@transaction.atomic
def token_create(*, user: Any, name: str) -> tuple[ApiToken, str]:
    """Create an API token; returns it and its secret, which is not stored and shown once."""
    secret = new_token_secret()
    token = ApiToken.objects.create(
        user=user, name=name[:200] or "token", prefix=secret[:12], key_hash=hash_token(secret)
    )
    return token, secret


def token_revoke(*, token: ApiToken) -> None:
    token.delete()


# ----------------------------------------------------------------------------- datasets


@transaction.atomic
def dataset_create(*, owner: Any, name: str, description: str = "") -> Dataset:
    """Create a dataset owned (and administered) by `owner`."""
    dataset = Dataset(owner=owner, name=_clean_name(name), description=description)
    _save_unique(
        dataset, constraint="dataset_unique_name_per_owner", field="name", what="A dataset"
    )
    return dataset


@transaction.atomic
def dataset_update(
    *, dataset: Dataset, name: str | None = None, description: str | None = None
) -> Dataset:
    """Rename a dataset or change its description."""
    if name is not None:
        dataset.name = _clean_name(name)
    if description is not None:
        dataset.description = description
    _save_unique(
        dataset, constraint="dataset_unique_name_per_owner", field="name", what="A dataset"
    )
    return dataset


@transaction.atomic
def dataset_delete(*, dataset: Dataset) -> None:
    """Delete a dataset with everything in it: items, shapes, slices, tags, jobs, vectors."""
    # Every large table is emptied with one set-based DELETE by dataset, children before
    # parents. Django's cascade (Model.delete) would first load the id of every item,
    # annotation, prediction and vector into memory: gigabytes, and minutes, at a million
    # items. Each filter is a subquery, so each DELETE names one table and no join.
    # What hangs off the items (vectors, duplicate groups) goes first, by its own app.
    vectors().dataset_deleting(dataset=dataset)
    signals.dataset_deleting.send(sender=Dataset, dataset=dataset)
    slices = Slice.objects.filter(dataset=dataset).values("pk")
    big_tables: list[models.QuerySet[Any]] = [
        AnnotationChange.objects.filter(dataset=dataset),
        AnnotationEvent.objects.filter(dataset=dataset),
        ShapeCount.objects.filter(dataset=dataset),
        Prediction.objects.filter(model__in=Model.objects.filter(dataset=dataset).values("pk")),
        Annotation.objects.filter(dataset=dataset),
        SliceVersionItem.objects.filter(
            version__in=SliceVersion.objects.filter(slice__in=slices).values("pk")
        ),
        SliceItem.objects.filter(slice__in=slices),
        ItemTag.objects.filter(tag__in=Tag.objects.filter(dataset=dataset).values("pk")),
        Item.objects.filter(dataset=dataset),
        Job.objects.filter(dataset=dataset),
    ]
    # The annotations' history goes with them: recording a million deletions only to
    # delete them the next moment would double the cost of the delete. So do their
    # counts: the triggers would decrement a count per deleted shape, then delete it.
    with history_off(), shape_counts_off():
        for rows in big_tables:
            # _raw_delete: one DELETE ... WHERE, without the cascade's collecting (these
            # tables' children are already gone) and without signals (none are used).
            rows._raw_delete(rows.db)
    # What is left is a few rows per dataset (members, models, slices, versions, tags,
    # embedding models); Django's cascade deletes them, and anything added later.
    dataset.delete()


# ------------------------------------------------------------------------------ members


def _member_user(username: str) -> Any:
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        message = f"no active user {username!r}"
        raise InvalidInput(f"username: {message}", fields=[field_error("username", message)])
    return user


@transaction.atomic
def membership_set(*, dataset: Dataset, username: str, role: str) -> tuple[Membership, bool]:
    """Give a user a role on the dataset (add or change); returns it and whether it is new."""
    user = _member_user(username)
    if user.pk == dataset.owner_id:
        message = "the owner is always admin; their role cannot be changed"
        raise InvalidInput(f"username: {message}", fields=[field_error("username", message)])
    if role not in Role.values:
        message = f"must be one of {', '.join(Role.values)}"
        raise InvalidInput(f"role: {message}", fields=[field_error("role", message)])
    membership = Membership.objects.select_for_update().filter(dataset=dataset, user=user).first()
    if membership is None:
        membership = Membership(dataset=dataset, user=user, role=role)
        _save_unique(
            membership, constraint="membership_unique_user", field="username", what="A member"
        )
        return membership, True
    if membership.role != role:
        membership.role = role
        membership.save(update_fields=["role"])
    return membership, False


@transaction.atomic
def membership_remove(*, dataset: Dataset, user_id: int) -> None:
    """Take away a member's role on the dataset."""
    if user_id == dataset.owner_id:
        raise InvalidInput("The owner cannot be removed from their dataset.")
    deleted, _ = Membership.objects.filter(dataset=dataset, user_id=user_id).delete()
    if not deleted:
        raise NotFound("Member not found.")


# -------------------------------------------------------------------------------- items


@transaction.atomic
def item_delete(*, item: Item) -> None:
    """Delete an item with its annotations, predictions, slice and tag links."""
    item.delete()


@transaction.atomic
def items_delete(*, dataset: Dataset, reference_ids: Sequence[str]) -> tuple[int, list[str]]:
    """Delete the dataset's items with these reference ids; returns (deleted, missing).

    Reference ids that are not (or no longer) items are reported, not refused, so a
    retried delete succeeds.
    """
    refs = set(reference_ids)
    found = set(
        Item.objects.filter(dataset=dataset, reference_id__in=refs).values_list(
            "reference_id", flat=True
        )
    )
    Item.objects.filter(dataset=dataset, reference_id__in=found).delete()
    return len(found), [ref for ref in dict.fromkeys(reference_ids) if ref not in found]


@transaction.atomic
def annotations_delete(*, dataset: Dataset, annotation_ids: Sequence[str]) -> tuple[int, list[str]]:
    """Delete annotations by their client ids; returns (deleted, missing)."""
    ids = set(annotation_ids)
    found = set(
        Annotation.objects.filter(dataset=dataset, annotation_id__in=ids).values_list(
            "annotation_id", flat=True
        )
    )
    Annotation.objects.filter(dataset=dataset, annotation_id__in=found).delete()
    return len(found), [i for i in dict.fromkeys(annotation_ids) if i not in found]


# ------------------------------------------------------------------------------- models


@transaction.atomic
def model_create(
    *, dataset: Dataset, name: str, description: str = "", metadata: dict[str, Any] | None = None
) -> Model:
    """Register a model whose predictions will be stored for the dataset."""
    model = Model(
        dataset=dataset, name=_clean_name(name), description=description, metadata=metadata or {}
    )
    _save_unique(model, constraint="model_unique_name", field="name", what="A model")
    return model


@transaction.atomic
def model_delete(*, model: Model) -> None:
    """Delete a model and all its predictions."""
    Prediction.objects.filter(model=model).delete()
    model.delete()


# ------------------------------------------------------------------------------- slices

# created_by is null for API calls without a user and after the creator's account is gone;
# the model field is not blank=True, so full_clean would refuse those.
_SLICE_UNCHECKED = ("created_by",)


@transaction.atomic
def slice_create(
    *,
    dataset: Dataset,
    user: Any,
    name: str,
    description: str = "",
    reference_ids: Sequence[str] = (),
) -> tuple[Slice, int]:
    """Create a slice, optionally with items; unknown reference ids refuse the whole call."""
    item_ids = item_ids_for(dataset=dataset, reference_ids=reference_ids)
    new = Slice(
        dataset=dataset,
        name=_clean_name(name),
        description=description,
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )
    _save_unique(
        new, constraint="slice_unique_name", field="name", what="A slice", exclude=_SLICE_UNCHECKED
    )
    return new, _link_items("curation_sliceitem", "slice_id", new.pk, item_ids)


@transaction.atomic
def slice_update(*, slice: Slice, name: str | None = None, description: str | None = None) -> Slice:
    """Rename a slice or change its description."""
    if name is not None:
        slice.name = _clean_name(name)
    if description is not None:
        slice.description = description
    _save_unique(
        slice,
        constraint="slice_unique_name",
        field="name",
        what="A slice",
        exclude=_SLICE_UNCHECKED,
    )
    return slice


def _static_only(slice: Slice, action: str) -> None:
    """Refuse to change the members of a dynamic slice, which has none of its own."""
    # Read under a row lock: a concurrent PUT .../query (which locks it too) cannot make the
    # slice dynamic between this check and the change.
    locked = Slice.objects.select_for_update().only("query", "similarity").get(pk=slice.pk)
    if locked.is_dynamic:
        raise InvalidInput(
            f"Slice {slice.name!r} is dynamic: its items are whatever its query matches, so "
            f"items cannot be {action} by hand. Change its query, or make it static first "
            "(PUT .../query with a blank query keeps the items it matches now)."
        )


@transaction.atomic
def slice_append(*, slice: Slice, reference_ids: Sequence[str]) -> int:
    """Add items to a static slice; returns how many were not in it yet."""
    _static_only(slice, "added")
    item_ids = item_ids_for(dataset=slice.dataset, reference_ids=reference_ids)
    added = _link_items("curation_sliceitem", "slice_id", slice.pk, item_ids)
    Slice.objects.filter(pk=slice.pk).update(updated=timezone.now())
    return added


@transaction.atomic
def slice_remove(*, slice: Slice, reference_ids: Sequence[str]) -> int:
    """Take items out of a static slice; returns how many were in it."""
    _static_only(slice, "removed")
    item_ids = item_ids_for(dataset=slice.dataset, reference_ids=reference_ids)
    removed, _ = SliceItem.objects.filter(slice=slice, item_id__in=item_ids).delete()
    Slice.objects.filter(pk=slice.pk).update(updated=timezone.now())
    return removed


@transaction.atomic
def slice_delete(*, slice: Slice) -> None:
    """Delete a slice; its items stay in the dataset."""
    SliceItem.objects.filter(slice=slice).delete()
    slice.delete()


# --------------------------------------------------------------------------------- tags


@transaction.atomic
def tag_add(*, dataset: Dataset, name: str, reference_ids: Sequence[str]) -> tuple[Tag, int]:
    """Tag items (creating the tag if needed); returns the tag and how many items gained it."""
    name = _clean_name(name)
    if len(name) > MAX_NAME_LENGTH:
        message = f"must be at most {MAX_NAME_LENGTH} characters"
        raise InvalidInput(f"name: {message}", fields=[field_error("name", message)])
    item_ids = item_ids_for(dataset=dataset, reference_ids=reference_ids)
    tag, _ = Tag.objects.get_or_create(dataset=dataset, name=name)
    return tag, _link_items("curation_itemtag", "tag_id", tag.pk, item_ids)


@transaction.atomic
def tag_remove(*, dataset: Dataset, name: str, reference_ids: Sequence[str]) -> tuple[Tag, int]:
    """Untag items; returns the tag and how many items lost it."""
    tag = Tag.objects.filter(dataset=dataset, name=name.strip()).first()
    if tag is None:
        message = f"no tag {name!r} in this dataset"
        raise InvalidInput(f"name: {message}", fields=[field_error("name", message)])
    item_ids = item_ids_for(dataset=dataset, reference_ids=reference_ids)
    removed, _ = ItemTag.objects.filter(tag=tag, item_id__in=item_ids).delete()
    return tag, removed


@transaction.atomic
def tag_delete(*, tag: Tag) -> None:
    """Delete a tag from the dataset and from all its items."""
    ItemTag.objects.filter(tag=tag).delete()
    tag.delete()


# ------------------------------------------------------------------------------ exports


def jobs_limit_require(*, user: Any, kinds: Sequence[str], most: int, what: str, hint: str) -> None:
    """A 429 (TooManyJobs) when `user` has `most` jobs of `kinds` queued or running, over
    all datasets; call it in the transaction that creates the next one.

    The user's row lock makes two requests at once take turns, so both cannot pass the
    check with one slot left. Anonymous callers (management commands) are not limited."""
    if not getattr(user, "is_authenticated", False):
        return
    list(get_user_model().objects.select_for_update().filter(pk=user.pk).values_list("pk"))
    active = Job.objects.active().filter(kind__in=list(kinds), created_by=user).count()
    if active >= most:
        raise TooManyJobs(
            f"You have {active} {what} jobs queued or running (at most {most}); "
            f"wait for one to finish, cancel one{hint}."
        )


@transaction.atomic
def export_job_queue(*, dataset: Dataset, user: Any, **options: Any) -> Job:
    """Queue an export job (see curation.export.jobs.export_job_start), at most
    MAX_ACTIVE_EXPORT_JOBS of them queued or running per user."""
    jobs_limit_require(
        user=user,
        kinds=["export"],
        most=MAX_ACTIVE_EXPORT_JOBS,
        what="export",
        hint=", or download the export directly (GET .../export streams it)",
    )
    return export_job_start(dataset=dataset, user=user, **options)
