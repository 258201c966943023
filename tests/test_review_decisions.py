"""Deciding review entries: per entry and per object, a reason required to reject, the
same decision re-sent is a no-op, a different one a conflict, undo of the reviewer's last
decision (and of the annotation an accepted prediction added), and the queue's stats."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from curation.annotations import annotation_update
from curation.errors import Conflict, InvalidInput
from curation.history.models import AnnotationChange
from curation.models import Annotation, Dataset, Prediction
from curation.services import dataset_delete
from review.claims import entry_claim_next
from review.decisions import entry_decide, entry_undo
from review.models import ObjectDecision, RejectReason, ReviewEntry, ReviewQueue
from review.selectors import annotation_authors, queue_stats
from review.services import queue_create, reason_add
from tests.ui_factories import evaluated, outcome_world


def fields_of(exc: pytest.ExceptionInfo[InvalidInput]) -> list[str]:
    return [f["path"] for f in exc.value.fields]


def slice_queue(dataset: Dataset, user: User) -> ReviewQueue:
    """Items a, b, c, d with their annotations to check."""
    outcome_world(dataset)
    return queue_create(
        dataset=dataset,
        user=user,
        name="q",
        source={"kind": "items", "reference_ids": ["a", "b", "c", "d"], "with_annotations": True},
    )


def at(queue: ReviewQueue, position: int) -> ReviewEntry:
    return ReviewEntry.objects.select_related("queue__dataset", "item").get(
        queue=queue, position=position
    )


@pytest.mark.django_db
def test_a_rejection_needs_a_known_reason_and_objects_take_the_entrys_decision(
    dataset: Dataset, bob: User
) -> None:
    queue = slice_queue(dataset, bob)
    entry = at(queue, 0)  # a: a car and a bus
    with pytest.raises(InvalidInput) as exc:
        entry_decide(entry=entry, user=bob, decision="rejected")
    assert fields_of(exc) == ["reason"]
    with pytest.raises(InvalidInput) as exc:
        entry_decide(entry=entry, user=bob, decision="rejected", reason="typo")
    assert fields_of(exc) == ["reason"]
    with pytest.raises(InvalidInput) as exc:
        entry_decide(entry=entry, user=bob, decision="accepted", reason="other")
    assert fields_of(exc) == ["reason"]
    with pytest.raises(InvalidInput) as exc:
        entry_decide(entry=entry, user=bob, decision="maybe")
    assert fields_of(exc) == ["decision"]
    car, bus = entry.annotations
    decided, changed = entry_decide(
        entry=entry,
        user=bob,
        decision="rejected",
        reason="wrong_label",
        note="the bus is a truck",
        objects=[{"annotation": car, "decision": "accepted"}],
    )
    assert changed and decided.status == "rejected" and decided.decided_by_id == bob.pk
    assert decided.reason is not None and decided.reason.key == "wrong_label"
    rows = {
        o.annotation_id: (o.decision, o.reason.key if o.reason else None, o.note)
        for o in ObjectDecision.objects.filter(entry=entry)
    }
    assert rows == {
        car: ("accepted", None, ""),
        bus: ("rejected", "wrong_label", "the bus is a truck"),
    }


@pytest.mark.django_db
def test_objects_must_be_on_the_entrys_item(dataset: Dataset, bob: User) -> None:
    queue = slice_queue(dataset, bob)
    other = Annotation.objects.get(item__reference_id="b")
    with pytest.raises(InvalidInput) as exc:
        entry_decide(
            entry=at(queue, 0),
            user=bob,
            decision="accepted",
            objects=[
                {"annotation": other.pk},
                {"prediction": 1, "annotation": 2},
                {"prediction": other.pk, "decision": "rejected"},
            ],
        )
    assert fields_of(exc) == ["objects[1]"]
    with pytest.raises(InvalidInput) as exc:
        entry_decide(
            entry=at(queue, 0),
            user=bob,
            decision="accepted",
            objects=[{"annotation": other.pk}],
        )
    assert fields_of(exc) == ["objects[0].annotation"]
    with pytest.raises(InvalidInput) as exc:
        entry_decide(
            entry=at(queue, 0),
            user=bob,
            decision="accepted",
            objects=[{"annotation": at(queue, 0).annotations[0], "decision": "rejected"}],
        )
    assert fields_of(exc) == ["objects[0].reason"]
    assert at(queue, 0).status == "pending"


@pytest.mark.django_db
def test_the_same_decision_again_is_a_no_op_and_another_a_conflict(
    dataset: Dataset, alice: User, bob: User
) -> None:
    queue = slice_queue(dataset, bob)
    entry = at(queue, 1)
    first, changed = entry_decide(entry=entry, user=bob, decision="rejected", reason="bad_box")
    again, changed_again = entry_decide(
        entry=entry, user=bob, decision="rejected", reason="bad_box"
    )
    assert (changed, changed_again) == (True, False)
    assert again.decided_seq == first.decided_seq
    assert ObjectDecision.objects.filter(entry=entry).count() == len(entry.annotations)
    with pytest.raises(Conflict):
        entry_decide(entry=entry, user=bob, decision="accepted")
    # An entry someone else holds (an active claim) cannot be decided by another.
    held = entry_claim_next(queue=queue, user=alice)[0]
    with pytest.raises(Conflict):
        entry_decide(entry=held, user=bob, decision="accepted")


@pytest.mark.django_db
def test_undo_takes_back_the_reviewers_last_decision_only(
    dataset: Dataset, alice: User, bob: User
) -> None:
    queue = slice_queue(dataset, bob)
    entry_decide(entry=at(queue, 2), user=bob, decision="accepted")
    entry_decide(entry=at(queue, 0), user=bob, decision="skipped")
    entry_decide(entry=at(queue, 1), user=alice, decision="accepted")
    undone = entry_undo(queue=queue, user=bob)
    # The last by bob (position 0, decided after position 2), not alice's later one.
    assert undone.position == 0
    assert (undone.status, undone.claimed_by_id, undone.decided_by_id) == ("claimed", bob.pk, None)
    assert not ObjectDecision.objects.filter(entry=undone).exists()
    assert entry_undo(queue=queue, user=bob).position == 2
    with pytest.raises(Conflict):
        entry_undo(queue=queue, user=bob)
    assert at(queue, 1).status == "accepted"
    # Undone, the entry can be decided again, differently.
    redone, changed = entry_decide(entry=at(queue, 0), user=bob, decision="corrected")
    assert changed and redone.status == "corrected"


@pytest.mark.django_db
def test_an_accepted_prediction_becomes_an_annotation_and_undo_removes_it(
    dataset: Dataset, bob: User
) -> None:
    outcome_world(dataset)
    run = evaluated(dataset, bob, "base")
    queue = queue_create(
        dataset=dataset,
        user=bob,
        name="fp",
        source={"kind": "evaluation", "run": run.pk, "outcome": "fp"},
    )
    entry = at(queue, 0)
    prediction = Prediction.objects.get(pk=entry.predictions[0])
    before = Annotation.objects.filter(item=prediction.item).count()
    objects = [{"prediction": prediction.pk, "add_annotation": True}]
    entry_decide(entry=entry, user=bob, decision="accepted", objects=objects)
    added = Annotation.objects.get(annotation_id=f"review-{entry.pk}-p{prediction.pk}")
    assert (added.item_id, added.label, added.geometry) == (
        prediction.item_id,
        prediction.label,
        prediction.geometry,
    )
    # A retry writes nothing twice.
    entry_decide(entry=at(queue, 0), user=bob, decision="accepted", objects=objects)
    assert Annotation.objects.filter(item=prediction.item).count() == before + 1
    entry_undo(queue=queue, user=bob)
    assert Annotation.objects.filter(item=prediction.item).count() == before
    with pytest.raises(InvalidInput) as exc:
        entry_decide(
            entry=at(queue, 0),
            user=bob,
            decision="rejected",
            reason="not_an_object",
            objects=[{"prediction": prediction.pk, "decision": "rejected", "add_annotation": True}],
        )
    assert fields_of(exc) == ["objects[0].add_annotation"]


@pytest.mark.django_db
def test_stats_count_progress_reviewers_acceptance_and_reasons(
    dataset: Dataset, alice: User, bob: User
) -> None:
    queue = slice_queue(dataset, bob)
    reason_add(dataset=dataset, label="Blurry image")
    entry_decide(entry=at(queue, 0), user=bob, decision="accepted")
    entry_decide(entry=at(queue, 1), user=bob, decision="rejected", reason="blurry_image")
    entry_decide(entry=at(queue, 2), user=alice, decision="accepted")
    entry_decide(entry=at(queue, 3), user=alice, decision="skipped")
    stats = queue_stats(queue=queue).as_json()
    assert (stats["total"], stats["done"], stats["progress"]) == (4, 4, 1.0)
    assert stats["acceptance_rate"] == round(2 / 3, 4)  # skips are no judgement
    by_user = {r["username"]: r for r in stats["reviewers"]}
    assert (by_user["bob"]["accepted"], by_user["bob"]["rejected"]) == (1, 1)
    assert by_user["bob"]["acceptance_rate"] == 0.5
    assert (by_user["alice"]["accepted"], by_user["alice"]["skipped"]) == (1, 1)
    assert by_user["alice"]["acceptance_rate"] == 1.0
    blurry = next(r for r in stats["reasons"] if r["key"] == "blurry_image")
    b_annotations = len(at(queue, 1).annotations)
    assert (blurry["entries"], blurry["objects"]) == (1, b_annotations)
    entry_undo(queue=queue, user=bob)
    after = queue_stats(queue=queue).as_json()
    assert after["done"] == 3 and after["by_status"]["claimed"] == 1
    assert {r["username"]: r["claimed"] for r in after["reviewers"]}["bob"] == 1


@pytest.mark.django_db
def test_annotation_authors_says_who_last_changed_each_annotation(
    dataset: Dataset, bob: User
) -> None:
    queue = slice_queue(dataset, bob)
    pks = at(queue, 0).annotations
    edited = Annotation.objects.get(pk=pks[0])
    annotation_update(
        annotation=edited, expected_version=edited.version, label="zebra", user=bob, source="editor"
    )
    found = annotation_authors(dataset, [*pks, 999999])
    assert set(found) == set(pks)
    assert (found[pks[0]].user, found[pks[0]].source) == ("bob", "editor")
    # Written outside any change context (a shell, a fixture): the history says "admin".
    assert all((found[pk].user, found[pk].source) == (None, "admin") for pk in pks[1:])
    assert len(pks) > 1


@pytest.mark.django_db
def test_a_review_decision_that_adds_an_annotation_is_in_its_history(
    dataset: Dataset, bob: User
) -> None:
    outcome_world(dataset)
    run = evaluated(dataset, bob, "base")
    queue = queue_create(
        dataset=dataset,
        user=bob,
        name="fp",
        source={"kind": "evaluation", "run": run.pk, "outcome": "fp"},
    )
    entry = at(queue, 0)
    objects = [{"prediction": entry.predictions[0], "add_annotation": True}]
    entry_decide(entry=entry, user=bob, decision="accepted", objects=objects)
    entry_undo(queue=queue, user=bob)
    made = AnnotationChange.objects.filter(
        dataset=dataset, annotation_id=f"review-{entry.pk}-p{entry.predictions[0]}"
    ).select_related("event__user")
    assert [(c.action, c.event.source, c.event.user, c.event.entry_id) for c in made] == [
        ("created", "review", bob, entry.pk),
        ("deleted", "review", bob, entry.pk),
    ]


@pytest.mark.django_db
def test_a_dataset_with_decisions_can_be_deleted(dataset: Dataset, bob: User) -> None:
    """Deleting the dataset takes the queues, entries, decisions and reasons (a reason in
    use restricts, it does not protect), the entries with one DELETE, not the cascade."""
    queue = slice_queue(dataset, bob)
    entry_decide(entry=at(queue, 0), user=bob, decision="rejected", reason="wrong_label")
    item_ids = list(dataset.items.values_list("pk", flat=True))
    with CaptureQueriesContext(connection) as queries:
        dataset_delete(dataset=dataset)
    # Emptied set-based first (curation.signals.dataset_deleting): the cascade's own
    # SELECT of entries comes after, and finds none to load.
    sql = [q["sql"] for q in queries]
    emptied = next(
        i for i, q in enumerate(sql) if q.startswith('DELETE FROM "review_reviewentry" WHERE')
    )
    selected = next(i for i, q in enumerate(sql) if q.startswith('SELECT "review_reviewentry"'))
    assert "IN (SELECT" in sql[emptied] and emptied < selected
    assert not ReviewQueue.objects.exists() and not ReviewEntry.objects.exists()
    assert not ObjectDecision.objects.exists() and not RejectReason.objects.exists()
    assert not Annotation.objects.filter(item_id__in=item_ids).exists()
