"""Review queues made from each source: a slice, a query, reference ids (a selection),
label-error candidates and an evaluation run's false positives / negatives. Each queue's
entries are checked against what the source holds, and bad parameters are 400s naming
the field."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from curation.errors import Conflict, InvalidInput
from curation.models import Annotation, Dataset, Item, Job, JobStatus, Prediction
from curation.services import slice_create
from evaluation.models import EvaluationMatch
from insights.models import LabelErrorCandidate, LabelErrorScan
from review.models import RejectReason, ReviewEntry, ReviewQueue
from review.services import queue_create
from tests.ui_factories import evaluated, outcome_world


def entries(queue: ReviewQueue) -> list[tuple[str, list[int], list[int]]]:
    return [
        (e.item.reference_id, e.annotations, e.predictions)
        for e in ReviewEntry.objects.filter(queue=queue).select_related("item").order_by("position")
    ]


def make(dataset: Dataset, user: User, source: dict[str, Any], name: str = "q") -> ReviewQueue:
    return queue_create(dataset=dataset, user=user, name=name, source=source)


def fields_of(exc: pytest.ExceptionInfo[InvalidInput]) -> list[str]:
    return [f["path"] for f in exc.value.fields]


def annotation_ids(ref: str) -> list[int]:
    return list(
        Annotation.objects.filter(item__reference_id=ref)
        .order_by("id")
        .values_list("id", flat=True)
    )


@pytest.mark.django_db
def test_a_slice_gives_one_entry_per_item_with_its_annotations(
    dataset: Dataset, alice: User
) -> None:
    ids = outcome_world(dataset)
    s, _ = slice_create(dataset=dataset, user=alice, name="abc", reference_ids=["c", "a", "b"])
    queue = make(dataset, alice, {"kind": "slice", "slice": s.pk, "with_annotations": True})
    assert queue.entry_count == 3
    assert queue.source_kind == "slice"
    assert queue.source_params["slice_name"] == "abc"
    # By item id, each with every annotation of its item, none for predictions.
    assert entries(queue) == [
        (ref, annotation_ids(ref), []) for ref in sorted(["a", "b", "c"], key=lambda r: ids[r])
    ]
    assert [e.position for e in ReviewEntry.objects.filter(queue=queue)] == [0, 1, 2]
    # The dataset got its default reasons on first use.
    assert [r.key for r in RejectReason.objects.filter(dataset=dataset)] == [
        "wrong_label",
        "bad_box",
        "missing_object",
        "not_an_object",
        "duplicate",
        "other",
    ]


@pytest.mark.django_db
def test_a_query_gives_its_matches_and_labels_narrow_the_objects(
    dataset: Dataset, alice: User
) -> None:
    outcome_world(dataset)
    queue = make(
        dataset,
        alice,
        {
            "kind": "query",
            "query": "annotations.person >= 1",
            "with_annotations": True,
            "labels": ["person"],
        },
    )
    people = {
        ref: list(
            Annotation.objects.filter(item__reference_id=ref, label="person")
            .order_by("id")
            .values_list("id", flat=True)
        )
        for ref in ("b", "c")
    }
    assert [(ref, a) for ref, a, _ in entries(queue)] == [("b", people["b"]), ("c", people["c"])]
    assert queue.source_params["query"] == "annotations.person >= 1"
    # Without with_annotations an entry is the item as a whole.
    whole = make(dataset, alice, {"kind": "query", "query": "annotations.person >= 1"}, "whole")
    assert [a for _, a, _ in entries(whole)] == [[], []]


@pytest.mark.django_db
def test_reference_ids_keep_the_selections_order(dataset: Dataset, alice: User) -> None:
    outcome_world(dataset)
    queue = make(dataset, alice, {"kind": "items", "reference_ids": ["d", "a", "c", "a"]})
    assert [ref for ref, _, _ in entries(queue)] == ["d", "a", "c"]
    with pytest.raises(InvalidInput) as exc:
        make(dataset, alice, {"kind": "items", "reference_ids": ["a", "nope"]}, "bad")
    assert fields_of(exc) == ["source.reference_ids[1]"]


def scan_with(dataset: Dataset, user: User) -> LabelErrorScan:
    """A finished scan of the dataset's run with three hand-made candidates."""
    run = evaluated(dataset, user, "base")
    job = Job.objects.create(kind="label_errors", dataset=dataset, status=JobStatus.SUCCEEDED)
    scan = LabelErrorScan.objects.create(dataset=dataset, run=run, job=job)
    a = Item.objects.get(dataset=dataset, reference_id="a")
    b = Item.objects.get(dataset=dataset, reference_id="b")
    bus = Annotation.objects.get(item=a, label="bus")
    stray = Prediction.objects.get(item=b, confidence=0.8)
    LabelErrorCandidate.objects.bulk_create(
        [
            LabelErrorCandidate(
                scan=scan, item=a, annotation=bus, type="spurious", score=0.4, evidence={"r": 1}
            ),
            LabelErrorCandidate(
                scan=scan,
                item=b,
                prediction=stray,
                type="missing",
                score=0.9,
                evidence={"confidence": 0.8},
            ),
            LabelErrorCandidate(scan=scan, item=b, type="neighbour", score=0.1, evidence={}),
        ]
    )
    return scan


@pytest.mark.django_db
def test_label_error_candidates_carry_their_object_and_evidence(
    dataset: Dataset, alice: User
) -> None:
    outcome_world(dataset)
    scan = scan_with(dataset, alice)
    queue = make(dataset, alice, {"kind": "label_errors"})  # the newest finished scan
    rows = list(ReviewEntry.objects.filter(queue=queue).order_by("position"))
    missing, spurious, neighbour = rows
    stray = Prediction.objects.get(item__reference_id="b", confidence=0.8)
    assert (missing.predictions, missing.annotations) == ([stray.pk], [])
    assert missing.evidence["type"] == "missing" and missing.evidence["score"] == 0.9
    assert missing.evidence["evidence"] == {"confidence": 0.8}
    assert missing.evidence["scan"] == scan.pk
    bus = Annotation.objects.get(item__reference_id="a", label="bus")
    assert (spurious.annotations, spurious.predictions) == ([bus.pk], [])
    assert (neighbour.annotations, neighbour.predictions) == ([], [])
    # Narrowed by type and score.
    best = make(dataset, alice, {"kind": "label_errors", "scan": scan.pk, "min_score": 0.3}, "best")
    assert best.entry_count == 2
    typed = make(dataset, alice, {"kind": "label_errors", "type": "spurious"}, "typed")
    assert [ref for ref, _, _ in entries(typed)] == ["a"]
    with pytest.raises(InvalidInput) as exc:
        make(dataset, alice, {"kind": "label_errors", "type": "typo"}, "bad")
    assert fields_of(exc) == ["source.type"]
    with pytest.raises(InvalidInput) as exc:
        make(dataset, alice, {"kind": "label_errors", "scan": 999999}, "bad")
    assert fields_of(exc) == ["source.scan"]


@pytest.mark.django_db
def test_an_evaluation_runs_false_positives_and_negatives(dataset: Dataset, alice: User) -> None:
    outcome_world(dataset)
    run = evaluated(dataset, alice, "base")
    fp = make(dataset, alice, {"kind": "evaluation", "run": run.pk, "outcome": "fp"}, "fp")
    matches = EvaluationMatch.objects.filter(run=run, outcome="fp")
    by_confidence = sorted(matches, key=lambda m: (-(m.confidence or 0), m.pk))
    assert [e[2] for e in entries(fp)] == [[m.prediction_id] for m in by_confidence]
    assert fp.entry_count == 3  # b's stray car, c's two cars
    first = ReviewEntry.objects.get(queue=fp, position=0)
    assert first.evidence["outcome"] == "fp" and first.evidence["confidence"] == 0.9
    fn = make(
        dataset,
        alice,
        {"kind": "evaluation", "run": run.pk, "outcome": "fn", "label": "person"},
        "fn",
    )
    assert [(ref, len(a), p) for ref, a, p in entries(fn)] == [("c", 1, []), ("c", 1, [])]
    limited = make(
        dataset, alice, {"kind": "evaluation", "run": run.pk, "outcome": "fp", "limit": 1}, "one"
    )
    assert limited.entry_count == 1
    for source, field in [
        ({"kind": "evaluation", "run": run.pk, "outcome": "tp"}, "source.outcome"),
        ({"kind": "evaluation", "run": 0, "outcome": "fp"}, "source.run"),
        ({"kind": "evaluation", "run": run.pk, "outcome": "fp", "limit": "x"}, "source.limit"),
        ({"kind": "nope"}, "source.kind"),
        ({"kind": "slice", "slice": 424242}, "source.slice"),
        ({"kind": "query", "query": "annotations.car >"}, "source.query"),
        ({"kind": "query", "query": "annotations.car > 100"}, "source"),
    ]:
        with pytest.raises(InvalidInput) as exc:
            make(dataset, alice, source, "bad")
        assert fields_of(exc) == [field], source
    assert not ReviewQueue.objects.filter(name="bad").exists()


@pytest.mark.django_db
def test_queue_names_are_unique_and_assignees_must_be_curators(
    dataset: Dataset, alice: User, bob: User, victor: User
) -> None:
    outcome_world(dataset)
    make(dataset, alice, {"kind": "query", "query": "annotations.person >= 1"}, "same")
    with pytest.raises(Conflict):
        make(dataset, alice, {"kind": "query", "query": "annotations.car >= 1"}, "same")
    with pytest.raises(InvalidInput) as exc:
        queue_create(
            dataset=dataset,
            user=alice,
            name="rr",
            source={"kind": "items", "reference_ids": ["a"]},
            assignment="round_robin",
            assignees=["bob", "victor", "nobody"],
        )
    assert fields_of(exc) == ["assignees[1]", "assignees[2]"]
    with pytest.raises(InvalidInput) as exc:
        queue_create(
            dataset=dataset,
            user=alice,
            name="rr",
            source={"kind": "items", "reference_ids": ["a"]},
            assignment="round_robin",
        )
    assert fields_of(exc) == ["assignees"]
