"""Writes of one annotation at a time (the REST API's annotation endpoints and the item
view's editor), with a version per annotation so that concurrent edits are caught.

Every annotation carries `version`, which every change adds one to (here and in the bulk
upsert, curation.bulk.write). A writer sends the version it read; if the stored one has
moved on, someone else changed the annotation meanwhile and the write is refused with
AnnotationConflict (a 409 whose body has the annotation as it is now), instead of
silently overwriting their change. The check and the write happen under the row's lock.

Shapes are validated exactly as the bulk path validates them
(curation.bulk.validate.clean_shape, curation.geometry): clipped to the image, 400s
naming `label`, `geometry.<field>` or `metadata`.

Every service takes `user` and `source` ("api" or "editor"): who made the change and
through what, for the annotation history (curation.history.change_context wraps each write).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from django.db import IntegrityError, transaction

from curation.bulk.validate import ShapeRow, clean_shape
from curation.errors import Conflict, NotFound, field_error, invalid_field
from curation.geometry import GeometryError
from curation.history import change_context
from curation.models import Annotation, GeometryKind, Item

Source = Literal["api", "editor"]
SOURCES: tuple[Source, ...] = ("api", "editor")


class AnnotationConflict(Conflict):
    """The annotation changed since the writer read it: `current` is how it is now."""

    code = "version_conflict"

    def __init__(self, message: str, *, current: Annotation) -> None:
        super().__init__(message, fields=[field_error("version", message)])
        self.current = current


def _cleaned(raw: dict[str, Any], item: Item) -> ShapeRow:
    """`raw` validated as one shape of `item` (the bulk path's checks); 400 naming a field."""
    try:
        return clean_shape(
            raw, reference_id=item.reference_id, width=item.width, height=item.height
        )
    except GeometryError as exc:
        path = exc.path or "body"
        raise invalid_field(path, exc.message) from None


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {source!r}")


def _locked(annotation: Annotation) -> Annotation:
    """The annotation's row, read again under its lock; NotFound once it is deleted."""
    found = (
        Annotation.objects.select_for_update()
        .select_related("item")
        .filter(pk=annotation.pk, dataset_id=annotation.dataset_id)
        .first()
    )
    if found is None:
        raise NotFound("Annotation not found: it was deleted.")
    return found


def _expect(annotation: Annotation, expected_version: int) -> None:
    if annotation.version != expected_version:
        raise AnnotationConflict(
            f"The annotation was changed by someone else: it is at version "
            f"{annotation.version}, you sent {expected_version}. Reload it, or send "
            f"version {annotation.version} to overwrite their change.",
            current=annotation,
        )


@transaction.atomic
def annotation_create(
    *,
    item: Item,
    label: Any,
    kind: Any = GeometryKind.BOX,
    geometry: Any = None,
    metadata: Any = None,
    annotation_id: str | None = None,
    user: Any,
    source: Source,
) -> tuple[Annotation, bool]:
    """Add an annotation to `item`; returns it and whether it is new.

    Idempotent by id, like the bulk upsert: without `annotation_id` the id is derived
    from the content, and sending the same annotation again returns the stored one
    (False). The same id with different content is a 409 naming `id`.
    """
    _check_source(source)
    raw: dict[str, Any] = {"kind": kind, "label": label, "geometry": geometry}
    if metadata is not None:
        raw["metadata"] = metadata
    if annotation_id is not None:
        raw["id"] = annotation_id
    row = _cleaned(raw, item)
    dataset_id = item.dataset_id
    values = {
        "kind": row.kind,
        "label": row.label,
        "geometry": json.loads(row.geometry),
        "metadata": json.loads(row.metadata),
    }
    existing = Annotation.objects.filter(dataset_id=dataset_id, annotation_id=row.client_id)
    found = existing.select_related("item").first()
    if found is None:
        annotation = Annotation(
            dataset_id=dataset_id, item=item, annotation_id=row.client_id, **values
        )
        try:
            # a savepoint: a concurrent create of the same id
            with transaction.atomic(), change_context(user=user, source=source):
                annotation.save(force_insert=True)
            return annotation, True
        except IntegrityError:
            found = existing.select_related("item").first()
            if found is None:
                raise
    if found.item_id == item.pk and all(getattr(found, k) == v for k, v in values.items()):
        return found, False
    message = f"another annotation of this dataset has the id {row.client_id!r}"
    raise Conflict(f"id: {message}", fields=[field_error("id", message)])


@transaction.atomic
def annotation_update(
    *,
    annotation: Annotation,
    expected_version: int,
    label: Any = None,
    geometry: Any = None,
    metadata: Any = None,
    user: Any,
    source: Source,
) -> Annotation:
    """Change an annotation's label, geometry or metadata (None: keep it), if it is still
    at `expected_version`; else AnnotationConflict. A change adds one to its version; the
    same values again change nothing, version included."""
    _check_source(source)
    current = _locked(annotation)
    _expect(current, expected_version)
    raw = {
        "kind": current.kind,
        "label": current.label if label is None else label,
        "geometry": current.geometry if geometry is None else geometry,
        "metadata": current.metadata if metadata is None else metadata,
        "id": current.annotation_id,
    }
    row = _cleaned(raw, current.item)
    changes = {
        "label": row.label,
        "geometry": json.loads(row.geometry),
        "metadata": json.loads(row.metadata),
    }
    changed = [name for name, value in changes.items() if getattr(current, name) != value]
    if not changed:
        return current
    for name in changed:
        setattr(current, name, changes[name])
    current.version += 1
    with change_context(user=user, source=source):
        current.save(update_fields=[*changed, "version", "updated"])
    return current


@transaction.atomic
def annotation_delete(
    *, annotation: Annotation, expected_version: int, user: Any, source: Source
) -> None:
    """Delete an annotation if it is still at `expected_version`; else AnnotationConflict."""
    _check_source(source)
    current = _locked(annotation)
    _expect(current, expected_version)
    with change_context(user=user, source=source):
        current.delete()
