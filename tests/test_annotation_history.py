"""Annotation history: every write path records who, through what, before and after;
unchanged rows record nothing; reverts undo each kind of change and are recorded."""

from __future__ import annotations

import json

import pytest
from django.db import connection, transaction

from curation import services
from curation.bulk.write import items_upsert, shapes_upsert
from curation.errors import Conflict, NotFound
from curation.history import change_context
from curation.history import selectors as history
from curation.history.models import AnnotationChange, AnnotationEvent
from curation.history.services import annotation_change_revert
from curation.ingest.services import ingest_enqueue
from curation.jobs import job_run
from curation.models import Annotation, Dataset, Item, JobStatus
from tests.api_helpers import add_items, box


def changes(dataset: Dataset) -> list[tuple[str, str, str, str | None]]:
    """(action, annotation id, source, username) of every change, oldest first."""
    return [
        (c.action, c.annotation_id, c.event.source, c.event.user.username if c.event.user else None)
        for c in AnnotationChange.objects.filter(dataset=dataset).select_related("event__user")
    ]


@pytest.fixture
def items(dataset: Dataset) -> dict[str, int]:
    return add_items(dataset, {"reference_id": "a"}, {"reference_id": "b"})


def test_a_bulk_upsert_records_created_and_changed_rows_but_not_unchanged_ones(dataset, items, bob):
    rows = [
        {"reference_id": "a", "id": "a-1", **box()},
        {"reference_id": "a", "id": "a-2", **box(label="bus")},
    ]
    with change_context(user=bob, source="api"):
        shapes_upsert(dataset=dataset, rows=rows)
    assert changes(dataset) == [("created", "a-1", "api", "bob"), ("created", "a-2", "api", "bob")]
    # One write is one event, however many rows.
    assert AnnotationEvent.objects.filter(dataset=dataset).count() == 1

    rows[1]["label"] = "truck"
    with change_context(user=bob, source="api"):
        shapes_upsert(dataset=dataset, rows=rows)  # a-1 unchanged, a-2 changed
        shapes_upsert(dataset=dataset, rows=rows)  # a retry: nothing changes
    assert changes(dataset)[2:] == [("changed", "a-2", "api", "bob")]
    changed = AnnotationChange.objects.get(action="changed")
    assert changed.before is not None and changed.before["label"] == "bus"
    found = history.annotation_history(dataset=dataset, annotation_pk=changed.annotation_pk)
    assert [(c.action, (history.after_of(c) or {}).get("label")) for c in found] == [
        ("created", "bus"),
        ("changed", "truck"),
    ]


def test_items_bulk_records_its_annotations_and_a_write_outside_a_context_is_admin(dataset):
    items_upsert(dataset=dataset, rows=[{"reference_id": "c", "annotations": [box(id="c-1")]}])
    assert changes(dataset) == [("created", "c-1", "admin", None)]


def test_an_ingest_job_records_its_job_id_and_its_user(dataset, bob, import_root):
    import_root.mkdir(parents=True, exist_ok=True)
    (import_root / "m.jsonl").write_text(
        json.dumps({"reference_id": "x", "annotations": [box(id="x-1")]})
    )
    job = ingest_enqueue(
        dataset=dataset,
        user=bob,
        source={"type": "manifest", "path": "m.jsonl"},
        enqueue=False,
    )
    assert job_run(job_id=job.pk).status == JobStatus.SUCCEEDED
    assert changes(dataset) == [("created", "x-1", "ingest", "bob")]
    assert AnnotationEvent.objects.get(dataset=dataset).job_id == job.pk


def test_deleting_annotations_and_items_records_the_deletions_with_before(dataset, items, bob):
    add_items(
        dataset,
        {"reference_id": "a", "annotations": [box(id="a-1"), box(id="a-2", label="bus")]},
    )
    with change_context(user=bob, source="api"):
        services.annotations_delete(dataset=dataset, annotation_ids=["a-1"])
        services.item_delete(item=Item.objects.get(pk=items["a"]))  # cascades to a-2
    deleted = [c for c in changes(dataset) if c[0] == "deleted"]
    assert deleted == [("deleted", "a-1", "api", "bob"), ("deleted", "a-2", "api", "bob")]
    assert AnnotationChange.objects.get(annotation_id="a-2", action="deleted").before == {
        "annotation_id": "a-2",
        "item_id": items["a"],
        "kind": "box",
        "label": "bus",
        "geometry": {"x": 10, "y": 10, "width": 20, "height": 20},
        "metadata": {},
    }


def test_a_rolled_back_write_leaves_no_history_and_the_context_ends_with_its_block(
    dataset, items, bob
):
    with pytest.raises(RuntimeError), transaction.atomic(), change_context(user=bob, source="api"):
        add_items(dataset, {"reference_id": "a", "annotations": [box(id="a-1")]})
        raise RuntimeError
    assert not AnnotationChange.objects.exists()
    with change_context(user=bob, source="editor"):
        pass
    add_items(dataset, {"reference_id": "a", "annotations": [box(id="a-1")]})
    assert changes(dataset) == [("created", "a-1", "admin", None)]


def _one(dataset: Dataset, annotation_id: str, action: str) -> AnnotationChange:
    found = AnnotationChange.objects.get(
        dataset=dataset, annotation_id=annotation_id, action=action
    )
    return history.change_of(dataset=dataset, change_id=found.pk)


def test_reverting_each_kind_of_change(dataset, items, bob):
    add_items(dataset, {"reference_id": "a", "annotations": [box(id="a-1"), box(id="a-2")]})
    add_items(dataset, {"reference_id": "a", "annotations": [box(id="a-1", label="bus")]})
    services.annotations_delete(dataset=dataset, annotation_ids=["a-2"])

    # A change: the label comes back.
    changed = _one(dataset, "a-1", "changed")
    made = annotation_change_revert(change=changed, user=bob)
    assert Annotation.objects.get(annotation_id="a-1").label == "car"
    assert (made.action, made.event.source, made.event.user_id) == ("changed", "revert", bob.pk)
    assert made.event.reverts_id == changed.pk

    # A deletion: the annotation comes back with its id.
    deleted = _one(dataset, "a-2", "deleted")
    annotation_change_revert(change=deleted, user=bob)
    assert Annotation.objects.get(annotation_id="a-2").pk == deleted.annotation_pk

    # A creation: the annotation goes (its latest change is now the revert's re-creation).
    latest = history.annotation_history(dataset=dataset, annotation_pk=deleted.annotation_pk)[-1]
    assert latest.action == "created" and latest.event.source == "revert"
    annotation_change_revert(change=latest, user=bob)
    assert not Annotation.objects.filter(annotation_id="a-2").exists()


def test_only_the_latest_change_of_an_annotation_can_be_reverted(dataset, items, bob):
    add_items(dataset, {"reference_id": "a", "annotations": [box(id="a-1")]})
    add_items(dataset, {"reference_id": "a", "annotations": [box(id="a-1", label="bus")]})
    with pytest.raises(Conflict, match="changed since"):
        annotation_change_revert(change=_one(dataset, "a-1", "created"), user=bob)
    assert Annotation.objects.get(annotation_id="a-1").label == "bus"


def test_a_deletion_cannot_be_reverted_once_its_item_or_its_id_is_gone(dataset, items, bob):
    add_items(dataset, {"reference_id": "a", "annotations": [box(id="a-1")]})
    add_items(dataset, {"reference_id": "b", "annotations": [box(id="b-1")]})
    services.annotations_delete(dataset=dataset, annotation_ids=["a-1"])
    add_items(dataset, {"reference_id": "b", "annotations": [box(id="a-1")]})  # id taken
    with pytest.raises(Conflict, match="now has the id"):
        annotation_change_revert(change=_one(dataset, "a-1", "deleted"), user=bob)
    services.item_delete(item=Item.objects.get(pk=items["b"]))
    with pytest.raises(Conflict, match="no longer exists"):
        annotation_change_revert(change=_one(dataset, "b-1", "deleted"), user=bob)


def test_latest_changes_say_who_made_each_annotation(dataset, items, bob, victor):
    with change_context(user=bob, source="api"):
        add_items(dataset, {"reference_id": "a", "annotations": [box(id="a-1"), box(id="a-2")]})
    with change_context(user=victor, source="editor"):
        add_items(dataset, {"reference_id": "a", "annotations": [box(id="a-2", label="bus")]})
    pks = dict(Annotation.objects.values_list("annotation_id", "pk"))
    latest = history.latest_changes(dataset=dataset, annotation_pks=list(pks.values()))
    assert {aid: (latest[pk].username, latest[pk].source) for aid, pk in pks.items()} == {
        "a-1": ("bob", "api"),
        "a-2": ("victor", "editor"),
    }


def test_deleting_a_dataset_deletes_its_history_and_records_nothing(dataset, items):
    add_items(dataset, {"reference_id": "a", "annotations": [box(id="a-1")]})
    services.dataset_delete(dataset=dataset)
    assert not AnnotationChange.objects.exists()
    assert not AnnotationEvent.objects.exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('nucleus.history_off', true)")
        assert cursor.fetchone()[0] in ("", None)


def _bulk(dataset: Dataset, bob, items: int = 200, per_item: int = 5) -> dict[str, int]:
    """`items` new items with `per_item` boxes each, in one write by bob through the API;
    annotation ids interleave across items (x-<j>-<i>), so only the writer's item order
    makes an item's annotations consecutive."""
    rows = [
        {
            "reference_id": f"r{i:03d}",
            "annotations": [box(id=f"x-{j}-{i:03d}") for j in range(per_item)],
        }
        for i in range(items)
    ]
    with change_context(user=bob, source="api"):
        return add_items(dataset, *rows)


def test_a_bulk_insert_records_one_creation_row_per_item_and_each_creation_is_found(dataset, bob):
    item_ids = _bulk(dataset, bob)
    assert Annotation.objects.filter(dataset=dataset).count() == 1000
    # 1,000 creations in one statement: one history row per item, not one per annotation.
    assert AnnotationChange.objects.filter(dataset=dataset).count() == 200
    pks = dict(Annotation.objects.filter(dataset=dataset).values_list("annotation_id", "pk"))

    # Each annotation's creation, with who, when and through what.
    found = history.annotation_history(dataset=dataset, annotation_pk=pks["x-3-117"])
    assert [(c.action, c.annotation_id, c.event.source, c.event.user) for c in found] == [
        ("created", "x-3-117", "api", bob)
    ]
    assert history.after_of(found[0])["label"] == "car"
    on_item = history.item_history(item=Item.objects.get(pk=item_ids["r042"]))
    assert sorted(c.annotation_id for c in on_item) == [f"x-{j}-042" for j in range(5)]
    latest = history.latest_changes(dataset=dataset, annotation_pks=list(pks.values()))
    assert {(c.action, c.username, c.source) for c in latest.values()} == {
        ("created", "bob", "api")
    }
    # Every annotation has its own change id, and the dataset's pages list each once.
    assert len({c.change_id for c in latest.values()}) == 1000
    seen, before = [], None
    while True:
        page, more = history.history_page(
            history.dataset_history(dataset=dataset), before=before, limit=70
        )
        seen += page
        if not more:
            break
        before = page[-1].pk
    assert sorted(c.pk for c in seen) == sorted(c.change_id for c in latest.values())
    assert [c.pk for c in seen] == sorted((c.pk for c in seen), reverse=True)
    assert history.history_mark() == max(c.pk for c in seen)


def test_a_bulk_creation_is_changed_reverted_and_listed_like_any_other(dataset, bob):
    _bulk(dataset, bob, items=20)
    pk = Annotation.objects.get(annotation_id="x-2-007").pk
    add_items(dataset, {"reference_id": "r007", "annotations": [box(id="x-2-007", label="bus")]})
    created, changed = history.annotation_history(dataset=dataset, annotation_pk=pk)
    assert (created.action, history.after_of(created)["label"], created.is_latest) == (
        "created",
        "car",
        False,
    )
    assert (changed.action, changed.before["label"]) == ("changed", "car")
    filtered = history.history_page(
        history.dataset_history(dataset=dataset, annotation_id="x-2-007"), before=None, limit=10
    )[0]
    assert [c.action for c in filtered] == ["changed", "created"]
    since = history.history_page(
        history.dataset_history(dataset=dataset, since=created.pk - 1), before=None, limit=200
    )[0]
    assert since[-1].pk == created.pk and since[0].pk == changed.pk

    # Reverting the creation of one annotation of a bulk write deletes that one only.
    annotation_change_revert(
        change=history.change_of(dataset=dataset, change_id=changed.pk), user=bob
    )
    other = Annotation.objects.get(annotation_id="x-3-007").pk
    creation = history.annotation_history(dataset=dataset, annotation_pk=other)[0]
    assert history.change_of(dataset=dataset, change_id=creation.pk).annotation_pk == other
    made = annotation_change_revert(change=creation, user=bob)
    assert (made.action, made.annotation_pk) == ("deleted", other)
    assert not Annotation.objects.filter(pk=other).exists()
    assert Annotation.objects.filter(dataset=dataset).count() == 99
    with pytest.raises(Conflict, match="changed since"):
        annotation_change_revert(change=creation, user=bob)


def test_bulk_creations_between_two_marks_say_who_made_them(dataset, bob):
    mark = history.history_mark()
    item_ids = _bulk(dataset, bob, items=10)
    until = history.history_mark()
    found = history.changes_between(
        dataset_id=dataset.pk,
        annotation_ids=["x-1-005", "x-4-009"],
        item_ids=[item_ids["r005"], item_ids["r009"]],
        after=mark,
        until=until,
    )
    assert {
        key[1]: [(c["action"], c["user"], c["source"]) for c in v] for key, v in found.items()
    } == {
        "x-1-005": [("created", "bob", "api")],
        "x-4-009": [("created", "bob", "api")],
    }
    assert (
        history.changes_between(
            dataset_id=dataset.pk,
            annotation_ids=["x-1-005"],
            item_ids=[item_ids["r005"]],
            after=until,
            until=until,
        )
        == {}
    )
    with pytest.raises(NotFound):
        history.change_of(dataset=dataset, change_id=until + 1)
