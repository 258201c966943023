"""The review pages: the dataset's "Review" tab, the form that makes a queue, the queue's
page with its stats, and the review screen's forms (claim, decide, undo) without
JavaScript; who may see and do what."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from curation.models import Annotation, Dataset, Slice
from review.models import ObjectDecision, RejectReason, ReviewEntry, ReviewQueue
from review.services import queue_create
from tests.ui_factories import evaluated, outcome_world


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_a_curator_makes_a_queue_and_reviews_it_with_forms(dataset: Dataset, bob: User) -> None:
    outcome_world(dataset)
    Slice.objects.create(dataset=dataset, name="all four").items.set(dataset.items.all())
    client = logged_in(bob)
    grid = client.get(f"/datasets/{dataset.pk}/").content.decode()
    assert f'href="/datasets/{dataset.pk}/review/"' in grid  # the header's tab
    page = client.get(f"/datasets/{dataset.pk}/review/").content.decode()
    assert 'data-testid="queue-form"' in page and "all four" in page
    made = client.post(
        f"/datasets/{dataset.pk}/review/create",
        {
            "name": "first pass",
            "kind": "slice",
            "slice": Slice.objects.get().pk,
            "with_annotations": "true",
            "assignment": "claim",
            "claim_minutes": "30",
        },
    )
    queue = ReviewQueue.objects.get()
    assert (
        made.status_code == 302 and made["Location"] == f"/datasets/{dataset.pk}/review/{queue.pk}/"
    )
    assert queue.entry_count == 4 and queue.source_params["with_annotations"] is True
    base = f"/datasets/{dataset.pk}/review/{queue.pk}"
    claimed = client.post(f"{base}/claim")
    first = ReviewEntry.objects.get(queue=queue, position=0)
    assert claimed["Location"] == f"{base}/entries/{first.pk}/"
    screen = client.get(claimed["Location"]).content.decode()
    assert "data-review-screen" in screen and 'data-testid="review-objects"' in screen
    assert len(re.findall(r'class="shape shape-gt shape-focus"', screen)) == len(first.annotations)
    assert "edit=1&amp;next=" in screen  # the editor's link back here
    rejected = client.post(
        f"{base}/entries/{first.pk}/decide",
        {"decision": "rejected", "reason": "bad_box", "note": "too loose"},
    )
    second = ReviewEntry.objects.get(queue=queue, position=1)
    assert rejected["Location"] == f"{base}/entries/{second.pk}/"
    first.refresh_from_db()
    assert (first.status, first.note) == ("rejected", "too loose")
    # A reason missing: back to the entry with the error shown, nothing decided.
    missing = client.post(f"{base}/entries/{second.pk}/decide", {"decision": "rejected"})
    assert missing["Location"] == f"{base}/entries/{second.pk}/"
    assert ReviewEntry.objects.get(pk=second.pk).status == "claimed"
    listed = client.get(f"/datasets/{dataset.pk}/review/").content.decode()
    assert '<td class="num">1 / 4</td>' in listed
    undone = client.post(f"{base}/undo")
    assert undone["Location"] == f"{base}/entries/{first.pk}/"
    queue_page = client.get(f"{base}/").content.decode()
    assert 'data-testid="progress">0 / 4<' in queue_page
    assert 'data-testid="start-review"' in queue_page


@pytest.mark.django_db
def test_a_viewer_sees_the_pages_without_forms_and_a_stranger_gets_404(
    dataset: Dataset, bob: User, victor: User, charlie: User
) -> None:
    outcome_world(dataset)
    client = logged_in(bob)
    client.post(
        f"/datasets/{dataset.pk}/review/create",
        {"name": "q", "kind": "items", "reference_ids": "a\nb"},
    )
    queue = ReviewQueue.objects.get()
    entry = ReviewEntry.objects.get(queue=queue, position=0)
    base = f"/datasets/{dataset.pk}/review/{queue.pk}"
    viewer = logged_in(victor)
    assert (
        'data-testid="queue-form"'
        not in viewer.get(f"/datasets/{dataset.pk}/review/").content.decode()
    )
    screen = viewer.get(f"{base}/entries/{entry.pk}/")
    assert screen.status_code == 200 and "data-review-decide" not in screen.content.decode()
    assert (
        viewer.post(f"{base}/entries/{entry.pk}/decide", {"decision": "accepted"}).status_code
        == 403
    )
    assert viewer.post(f"{base}/claim").status_code == 403
    stranger = logged_in(charlie)
    for path in (f"/datasets/{dataset.pk}/review/", f"{base}/", f"{base}/entries/{entry.pk}/"):
        assert stranger.get(path).status_code == 404
    assert ReviewEntry.objects.get(pk=entry.pk).status == "pending"


@pytest.mark.django_db
def test_the_screen_shows_evidence_and_decides_per_object(dataset: Dataset, bob: User) -> None:
    outcome_world(dataset)
    run = evaluated(dataset, bob, "base")
    client = logged_in(bob)
    fp = queue_create(
        dataset=dataset,
        user=bob,
        name="fp",
        source={"kind": "evaluation", "run": run.pk, "outcome": "fp"},
    )
    base = f"/datasets/{dataset.pk}/review/{fp.pk}"
    entry = ReviewEntry.objects.get(queue=fp, position=0)
    screen = client.get(f"{base}/entries/{entry.pk}/").content.decode()
    assert 'data-testid="evidence"' in screen and "<dt>outcome</dt><dd>fp</dd>" in screen
    assert re.search(r'class="shape shape-pred shape-focus"', screen)
    assert "data-add-annotations" in screen
    client.post(
        f"{base}/entries/{entry.pk}/decide", {"decision": "accepted", "add_annotations": "1"}
    )
    prediction = entry.predictions[0]
    assert Annotation.objects.filter(annotation_id=f"review-{entry.pk}-p{prediction}").exists()

    # Rejecting an item's entry with one of its two objects unticked accepts that one.
    whole = queue_create(
        dataset=dataset,
        user=bob,
        name="a",
        source={"kind": "items", "reference_ids": ["a"], "with_annotations": True},
    )
    first = ReviewEntry.objects.get(queue=whole)
    car, bus = first.annotations
    page = client.get(f"/datasets/{dataset.pk}/review/{whole.pk}/entries/{first.pk}/")
    assert 'data-testid="reject-objects"' in page.content.decode()
    client.post(
        f"/datasets/{dataset.pk}/review/{whole.pk}/entries/{first.pk}/decide",
        {"decision": "rejected", "reason": "wrong_label", "reject_objects": [f"a{bus}"]},
    )
    decided = dict(
        ObjectDecision.objects.filter(entry=first).values_list("annotation_id", "decision")
    )
    assert decided == {car: "accepted", bus: "rejected"}


def _prefilled(body: str) -> tuple[str, list[str], str]:
    """The new-queue form as the selection filled it: its name, reference ids, kind."""
    name = re.search(r'<input name="name" required maxlength="200" value="([^"]*)"', body)
    refs = re.search(r'data-testid="queue-reference-ids">([^<]*)</textarea>', body)
    kind = re.search(r'<option value="([a-z_]+)" selected>', body)
    assert name and refs and kind, "the form is not filled"
    return name.group(1), refs.group(1).split("\n"), kind.group(1)


@pytest.mark.django_db
def test_review_selection_fills_the_form_with_the_selected_items_and_makes_their_queue(
    dataset: Dataset, bob: User
) -> None:
    ids = outcome_world(dataset)
    client = logged_in(bob)
    grid = client.get(f"/datasets/{dataset.pk}/").content.decode()
    action = f"/datasets/{dataset.pk}/review/from-selection"
    assert f'formaction="{action}" data-testid="sel-review">Review selection<' in grid
    # Selected in the grid in this order: c, a, d.
    picked = client.post(action, {"ids": f"{ids['c']},{ids['a']},{ids['d']}", "name": "odd ones"})
    body = picked.content.decode()
    assert picked.status_code == 200 and 'data-testid="queue-prefill"' in body
    name, refs, kind = _prefilled(body)
    assert (name, refs, kind) == ("odd ones", ["c", "a", "d"], "items")
    made = client.post(
        f"/datasets/{dataset.pk}/review/create",
        {"name": name, "kind": kind, "reference_ids": "\n".join(refs), "with_annotations": "true"},
    )
    queue = ReviewQueue.objects.get()
    assert made["Location"] == f"/datasets/{dataset.pk}/review/{queue.pk}/"
    entries = ReviewEntry.objects.filter(queue=queue).order_by("position")
    assert [e.item.reference_id for e in entries] == ["c", "a", "d"]
    assert [len(e.annotations) for e in entries] == [2, 2, 0]
    # "Select all matching": every item the view matches (here, those labelled person).
    every = client.post(action, {"scope": "view", "view": "label=person"})
    assert _prefilled(every.content.decode())[1] == ["b", "c"]


@pytest.mark.django_db
def test_review_selection_is_for_curators_and_names_the_field_it_refuses(
    dataset: Dataset, bob: User, victor: User, charlie: User
) -> None:
    ids = outcome_world(dataset)
    action = f"/datasets/{dataset.pk}/review/from-selection"
    viewer = logged_in(victor)
    assert 'data-testid="sel-review"' not in viewer.get(f"/datasets/{dataset.pk}/").content.decode()
    assert viewer.post(action, {"ids": str(ids["a"])}).status_code == 403
    assert logged_in(charlie).post(action, {"ids": str(ids["a"])}).status_code == 404
    other = Dataset.objects.create(name="other", owner=charlie)
    foreign = outcome_world(other)["a"]
    client = logged_in(bob)
    for data, field in (
        ({}, "ids"),
        ({"ids": "a,b"}, "ids"),
        ({"ids": f"{ids['a']},{foreign}"}, "ids"),
        ({"scope": "everything", "ids": str(ids["a"])}, "scope"),
    ):
        refused = client.post(action, data)
        assert refused.status_code == 400, data
        assert f"<li><code>{field}</code>: " in refused.content.decode(), data
    assert not ReviewQueue.objects.exists()


@pytest.mark.django_db
def test_a_curator_adds_a_reject_reason_that_the_review_screen_then_offers(
    dataset: Dataset, bob: User, victor: User, charlie: User
) -> None:
    outcome_world(dataset)
    client = logged_in(bob)
    page = f"/datasets/{dataset.pk}/review/"
    client.post(f"{page}create", {"name": "q", "kind": "items", "reference_ids": "a\nb"})
    added = client.post(f"{page}reasons", {"label": "Occluded, should be ignored"})
    assert added.status_code == 302 and added["Location"] == f"{page}#reasons"
    shown = client.get(page).content.decode()
    assert 'data-reason="occluded_should_be_ignored"' in shown
    keys = [r.key for r in RejectReason.objects.filter(dataset=dataset).order_by("position")]
    assert keys[-1] == "occluded_should_be_ignored" and len(keys) > 1  # after the defaults
    queue = ReviewQueue.objects.get()
    entry = ReviewEntry.objects.get(queue=queue, position=0)
    screen = client.get(f"{page}{queue.pk}/entries/{entry.pk}/").content.decode()
    assert "Occluded, should be ignored" in screen
    again = client.post(f"{page}reasons", {"label": "occluded should be ignored"}, follow=True)
    assert "already exists" in again.content.decode()  # the same key: refused, said why
    assert (
        "label: is required"
        in client.post(f"{page}reasons", {"label": "  "}, follow=True).content.decode()
    )
    assert RejectReason.objects.filter(dataset=dataset).count() == len(keys)
    assert logged_in(victor).post(f"{page}reasons", {"label": "x"}).status_code == 403
    assert logged_in(charlie).post(f"{page}reasons", {"label": "x"}).status_code == 404
    assert 'data-testid="reason-form"' not in logged_in(victor).get(page).content.decode()
    assert RejectReason.objects.filter(dataset=dataset).count() == len(keys)


@pytest.mark.django_db
def test_the_queue_page_pages_through_every_entry(
    dataset: Dataset, bob: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    from review import ui

    outcome_world(dataset)
    monkeypatch.setattr(ui, "ENTRIES_SHOWN", 3)
    client = logged_in(bob)
    page = f"/datasets/{dataset.pk}/review/"
    client.post(f"{page}create", {"name": "q", "kind": "items", "reference_ids": "a\nb\nc\nd"})
    queue = ReviewQueue.objects.get()
    url = f"{page}{queue.pk}/"
    seen, next_url = [], url
    while next_url:
        html = client.get(next_url).content.decode()
        seen += re.findall(r'<tr data-entry="(\d+)"', html)
        found = re.search(r'href="\?(after=\d+)" rel="next"', html)
        next_url = f"{url}?{found.group(1)}" if found else ""
    entries = ReviewEntry.objects.filter(queue=queue).order_by("position")
    assert seen == [str(e.pk) for e in entries] and len(seen) == 4
    assert client.get(f"{url}?after=x").status_code == 400
