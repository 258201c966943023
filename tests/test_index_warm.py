"""A worker warms the vector indexes after it starts: the index files read in order, then
probe searches until the graph's pages are in shared buffers (embeddings/warm.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
import pytest
from django.db import connection

from embeddings import vectors as vec
from embeddings.warm import QUIET_PROBES, indexes_warm
from tests.embedding_factories import clustered, custom_model, items_with_vectors
from tests.worker_support import Workers, wait_for, workers_fixture  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

DIM = 64


def _indexed(dataset: Any, n: int = 400, name: str = "constructed") -> str:
    model = custom_model(dataset, DIM, name=name)
    items_with_vectors(dataset, model, clustered(n, DIM, 8), prefix=name)
    return vec.index_name(model.pk, dataset.pk)


def _checkpoint() -> None:
    # What a server start finds: every page on disk (the build left some only in buffers).
    with connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")


def _scans(index: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(idx_scan, 0) FROM pg_stat_user_indexes WHERE indexrelname = %s",
            [index],
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def test_warming_reads_every_index_file_and_probes_until_nothing_is_read(dataset: Any) -> None:
    name = _indexed(dataset)
    _checkpoint()
    reports = indexes_warm(seconds=60, budget_bytes=2**30)
    assert reports is not None
    [report] = [r for r in reports if r.index == name]
    assert report.size_bytes > 0
    assert report.file_bytes_read == report.size_bytes
    assert report.warm
    assert report.probes >= QUIET_PROBES
    # Warm now: the next round's probes find every page in shared buffers.
    [again] = [r for r in indexes_warm(seconds=60, budget_bytes=0) or [] if r.index == name]
    assert (again.probes, again.blocks_read, again.file_bytes_read) == (QUIET_PROBES, 0, 0)


def test_file_reads_stay_within_the_byte_budget(dataset: Any) -> None:
    name = _indexed(dataset, n=1500)
    _checkpoint()
    budget = 3 * 8192
    reports = indexes_warm(seconds=60, budget_bytes=budget)
    assert reports is not None
    [report] = [r for r in reports if r.index == name]
    assert report.size_bytes > budget
    assert report.file_bytes_read == budget
    assert report.probes >= QUIET_PROBES


def test_no_time_left_warms_nothing(dataset: Any) -> None:
    _indexed(dataset)
    assert indexes_warm(seconds=0, budget_bytes=2**30) == []


def test_most_searched_index_is_warmed_first(dataset: Any, alice: Any) -> None:
    from curation.models import Dataset

    other = Dataset.objects.create(name="other", owner=alice)
    first = _indexed(dataset, name="first")
    second = _indexed(other, name="second")
    probe = vec.vector_literal(np.ones(DIM, dtype=np.float32))
    dataset_id, model_id = other.pk, int(second.split("_")[2][1:])
    with connection.cursor() as cursor:
        for _ in range(3):
            cursor.execute(
                f"SELECT item_id FROM {vec.TABLE} WHERE model_id = {model_id} "
                f"AND dataset_id = {dataset_id} "
                f"ORDER BY {vec.distance_sql(DIM, index_type=_type(second))} LIMIT 5",
                [probe],
            )
        cursor.execute("SELECT pg_stat_force_next_flush()")
    assert _scans(second) > _scans(first)
    reports = indexes_warm(seconds=60, budget_bytes=0) or []
    order = [r.index for r in reports if r.index in (first, second)]
    assert order == [second, first]


def _type(index: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT o.opcname FROM pg_index x JOIN pg_opclass o ON o.oid = x.indclass[0]"
            " WHERE x.indexrelid = to_regclass(%s)",
            [index],
        )
        row = cursor.fetchone()
    assert row is not None
    return "halfvec" if row[0].startswith("halfvec") else "vector"


def test_only_one_process_warms_at_a_time(dataset: Any) -> None:
    _indexed(dataset)
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(hashtext('nucleus:index-warm'))")
        assert indexes_warm(seconds=60) is None
        # Released here, not by closing: a closed session's backend lets go of its locks
        # only when it has exited, a moment after the client has gone.
        other.execute("SELECT pg_advisory_unlock(hashtext('nucleus:index-warm'))")
        assert indexes_warm(seconds=60) is not None


@pytest.mark.slow
def test_a_started_worker_warms_the_indexes(dataset: Any, workers: Workers) -> None:
    name = _indexed(dataset)
    before = _scans(name)
    workers.start()
    # The probes are searches through the index: its scan count rises without any user.
    wait_for(lambda: _scans(name) >= before + QUIET_PROBES, "the worker to warm the index")
