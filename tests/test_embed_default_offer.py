"""Two embedding jobs that finish together both offer their model as the dataset's
default: the first one wins and the second one neither fails nor overrides it."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from curation.models import Dataset
from embeddings.models import DatasetSearchDefault, EmbeddingModel, ModelKind
from embeddings.services import dataset_default_offer


def waiting_on_a_lock() -> bool:
    """Whether another session of this database waits for a lock on the defaults table."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query LIKE %s",
            ["%embeddings_datasetsearchdefault%"],
        )
        return bool(cursor.fetchone()[0])


@pytest.mark.django_db(transaction=True)
def test_two_jobs_offering_a_default_at_once_both_succeed(dataset: Dataset) -> None:
    first, second = (
        EmbeddingModel.objects.create(
            name=name, dataset=dataset, kind=ModelKind.CUSTOM, dimension=4
        )
        for name in ("first", "second")
    )
    inserted, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def offer_and_hold() -> None:
        try:
            with transaction.atomic():
                dataset_default_offer(dataset=dataset, model=first)
                inserted.set()
                release.wait(timeout=60)
        finally:
            inserted.set()
            connection.close()

    def offer() -> None:
        try:
            dataset_default_offer(dataset=dataset, model=second)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    holder = threading.Thread(target=offer_and_hold)
    holder.start()
    inserted.wait(timeout=60)
    racer = threading.Thread(target=offer)
    racer.start()
    # The racer must reach the row the holder has inserted but not committed yet, and wait
    # for it: that is the race this test is about. (It cannot finish before the holder
    # commits, so there is no timing to win or lose; the bound only stops a hung test.)
    raced = False
    for _ in range(3600):
        raced = waiting_on_a_lock()
        if raced or not racer.is_alive():
            break
        time.sleep(0.05)
    release.set()
    holder.join()
    racer.join()

    assert raced, "the second offer never waited on the first one's uncommitted row"
    assert errors == []
    assert DatasetSearchDefault.objects.get(dataset=dataset).model_id == first.pk
