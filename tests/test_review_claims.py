"""Claiming review entries: the next open entries in order, the claims a reviewer holds
first, round robin by position, stale claims taken over (claimed_at set in the past, not
a wait), and two concurrent transactions that never get the same entry."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.utils import timezone

from curation.errors import Forbidden
from curation.models import Dataset, Membership, Role
from review.claims import entry_claim_next
from review.models import ReviewEntry, ReviewQueue
from review.services import queue_create
from tests.slice_factories import numbered_items


def queue_of(dataset: Dataset, user: User, n: int = 10, **options: object) -> ReviewQueue:
    refs = sorted(numbered_items(dataset, n))
    return queue_create(
        dataset=dataset,
        user=user,
        name="q",
        source={"kind": "items", "reference_ids": refs},
        **options,  # type: ignore[arg-type]
    )


def positions(found: list[ReviewEntry]) -> list[int]:
    return [e.position for e in found]


@pytest.mark.django_db
def test_claims_go_in_order_and_a_held_claim_comes_back_first(
    dataset: Dataset, alice: User, bob: User
) -> None:
    queue = queue_of(dataset, alice)
    assert positions(entry_claim_next(queue=queue, user=bob)) == [0]
    # Asking again while holding it gives the same entry (a reload, a retry).
    assert positions(entry_claim_next(queue=queue, user=bob)) == [0]
    assert positions(entry_claim_next(queue=queue, user=alice, count=3)) == [1, 2, 3]
    assert positions(entry_claim_next(queue=queue, user=bob, count=2)) == [0, 4]
    held = ReviewEntry.objects.get(queue=queue, position=4)
    assert (held.status, held.claimed_by_id) == ("claimed", bob.pk)


@pytest.mark.django_db
def test_a_stale_claim_can_be_taken_over(dataset: Dataset, alice: User, bob: User) -> None:
    queue = queue_of(dataset, alice, n=2, claim_minutes=30)
    assert positions(entry_claim_next(queue=queue, user=bob)) == [0]
    assert positions(entry_claim_next(queue=queue, user=alice)) == [1]
    # Bob's claim is 31 minutes old (set, not waited for): alice may take it.
    ReviewEntry.objects.filter(queue=queue, position=0).update(
        claimed_at=timezone.now() - timedelta(minutes=31)
    )
    assert positions(entry_claim_next(queue=queue, user=alice, count=2)) == [1, 0]
    # A 29-minute-old claim is still held.
    ReviewEntry.objects.filter(queue=queue, position=1).update(
        claimed_at=timezone.now() - timedelta(minutes=29)
    )
    assert entry_claim_next(queue=queue, user=bob) == []


@pytest.mark.django_db
def test_round_robin_gives_each_assignee_its_share(
    dataset: Dataset, alice: User, bob: User, victor: User
) -> None:
    Membership.objects.filter(dataset=dataset, user=victor).update(role=Role.CURATOR)
    queue = queue_of(dataset, alice, n=7, assignment="round_robin", assignees=["bob", "victor"])
    assert positions(entry_claim_next(queue=queue, user=bob, count=10)) == [0, 2, 4, 6]
    assert positions(entry_claim_next(queue=queue, user=victor, count=10)) == [1, 3, 5]
    with pytest.raises(Forbidden):
        entry_claim_next(queue=queue, user=alice)


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_reviewers_never_get_the_same_entry(
    dataset: Dataset, alice: User, bob: User
) -> None:
    """Alice's transaction claims and holds its locks until Bob's claim has run; Bob's
    must skip her rows (not wait for them, not take them). The order is forced with
    events, so nothing depends on scheduling; lock_timeout turns a wait into an error."""
    queue = queue_of(dataset, alice, n=6)
    alice_claimed = threading.Event()
    bob_done = threading.Event()
    found: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def alice_claims() -> None:
        try:
            with transaction.atomic():
                found["alice"] = positions(entry_claim_next(queue=queue, user=alice, count=3))
                alice_claimed.set()
                bob_done.wait()
        except BaseException as exc:
            errors.append(exc)
        finally:
            alice_claimed.set()
            connection.close()

    def bob_claims() -> None:
        try:
            alice_claimed.wait()
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL lock_timeout = '5s'")
                found["bob"] = positions(entry_claim_next(queue=queue, user=bob, count=3))
        except BaseException as exc:
            errors.append(exc)
        finally:
            bob_done.set()
            connection.close()

    threads = [threading.Thread(target=alice_claims), threading.Thread(target=bob_claims)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert found == {"alice": [0, 1, 2], "bob": [3, 4, 5]}
    owners = dict(ReviewEntry.objects.filter(queue=queue).values_list("position", "claimed_by"))
    assert owners == {0: alice.pk, 1: alice.pk, 2: alice.pk, 3: bob.pk, 4: bob.pk, 5: bob.pk}


@pytest.mark.django_db
def test_next_after_a_position_passes_the_entry_held_there(
    dataset: Dataset, alice: User, bob: User
) -> None:
    queue = queue_of(dataset, alice, n=4)
    assert positions(entry_claim_next(queue=queue, user=bob)) == [0]
    assert positions(entry_claim_next(queue=queue, user=bob, after=0)) == [1]
    assert positions(entry_claim_next(queue=queue, user=bob, after=0)) == [1]  # held
    assert positions(entry_claim_next(queue=queue, user=bob, after=3)) == []
