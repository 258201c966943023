"""The basis of the facet figures (curation.facets): which items of a view they are
counted over.

A view of at most SAMPLE_TARGET items is counted exactly. A larger one is read through a
block sample of the dataset (``TABLESAMPLE SYSTEM``) of about SAMPLE_TARGET rows, taking
more blocks for a narrow view (up to VIEW_BOOST times), and its figures are scaled up and
marked approximate. In a large dataset a view that its first sample shows to be far
larger than the target is not read for an exact count first (sample_basis). The basis is
handed on as its ids: every figure looks its rows up by primary key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from curation import selectors
from curation.models import Dataset, Item

# 5,000 items: each figure reads every item of the basis (the metadata figures every key
# of every item), and at 20,000 items the metadata alone took about 0.3 s, too much for a
# cold sidebar at 1M (<= 300 ms).
SAMPLE_TARGET = 5_000
VIEW_BOOST = 5  # a narrow view samples up to this many times more blocks
# In a dataset of LARGE_DATASET items or more, a view that its first block sample puts at
# SKIP_EXACT_FACTOR x SAMPLE_TARGET items or more, found in SKIP_EXACT_BLOCKS table blocks
# or more, is not read for an exact count first (sample_basis).
LARGE_DATASET = 100_000
SKIP_EXACT_FACTOR = 4
SKIP_EXACT_BLOCKS = 20


@dataclass
class Basis:
    """What the figures were computed over."""

    exact: bool
    item_count: int  # exact, or estimated from the sample when sampled
    sampled: int  # items actually read
    computed_at: datetime
    view: bool = False  # the items of a filtered view, not the whole dataset

    @property
    def scale(self) -> float:
        return 1.0 if self.exact or not self.sampled else self.item_count / self.sampled


def _ids(sql: str, params: list[Any], most: int | None = None) -> list[int]:
    """The ids `sql` selects (at most `most`)."""
    limit = "" if most is None else f" LIMIT {int(most)}"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT s.id FROM ({sql}) s{limit}", params)
        return [row[0] for row in cursor.fetchall()]


# Every figure reads the basis through its ids: the view's filter (or the sample) runs
# once, and each aggregate then looks its rows up by primary key, which keeps the plans
# simple (a sampled view inlined into the metadata aggregate once took seconds).
_BY_IDS = "SELECT id, metadata FROM curation_item WHERE id = ANY(%s::bigint[])"


def _view_sample(items: QuerySet[Item], dataset: Dataset, percent: float) -> tuple[str, list[Any]]:
    """SQL (with params) selecting the view's items among a block sample of the dataset."""
    blocks = RawSQL(
        "SELECT id FROM curation_item TABLESAMPLE SYSTEM (%s) REPEATABLE (7) WHERE dataset_id = %s",
        [percent, dataset.pk],
    )
    compiled, params = (
        items.filter(pk__in=blocks).order_by().values("id", "metadata").query.sql_with_params()
    )
    return str(compiled), list(params)


def sample_basis(dataset: Dataset, items: QuerySet[Item] | None) -> tuple[Basis, str, list[Any]]:
    """The basis, and SQL (with params) selecting the id and metadata of its items."""
    if items is None:
        sql = "SELECT id, metadata FROM curation_item WHERE dataset_id = %s"
        params: list[Any] = [dataset.pk]
    else:
        compiled, view_params = items.order_by().values("id", "metadata").query.sql_with_params()
        sql, params = str(compiled), list(view_params)
    now = timezone.now()
    view = items is not None
    # The planner's size of the dataset (EXPLAIN, nothing read); the whole dataset needs it
    # only once it is known to be past the target.
    planned = selectors.planner_rows(Item.objects.filter(dataset=dataset)) if view else None
    first: list[int] | None = None  # the view's ids in the first block sample
    counted = True
    if items is not None and planned is not None and planned >= LARGE_DATASET:
        percent = min(100.0, 100.0 * SAMPLE_TARGET / planned)
        # Reading a view until SAMPLE_TARGET + 1 of its items turn up (below) walks far
        # when the view is a few percent of a large dataset: 77 ms of a 400 ms sidebar at
        # 1M. The block sample such a view needs anyway comes first, and where it puts the
        # view at SKIP_EXACT_FACTOR times the target or more, from SKIP_EXACT_BLOCKS
        # blocks or more, that read is not made. Both are needed: the sample takes whole
        # blocks (and the same ones every time), so a view of at most the target whose
        # items lie together (one import batch) can turn up as many rows from one or two
        # blocks; at the sample's rate (SAMPLE_TARGET / dataset) such a view of ~330
        # blocks yields 20 of them about never (expected: 1.7 at 1M items, 0.17 at 10M).
        sample, sample_params = _view_sample(items, dataset, percent)
        first = _ids(sample, sample_params)
        counted = (
            len(first) * 100.0 / percent < SKIP_EXACT_FACTOR * SAMPLE_TARGET
            or _blocks(first) < SKIP_EXACT_BLOCKS
        )
    capped = 0
    if counted:
        # Reading stops past the target: a view of any size costs at most SAMPLE_TARGET rows.
        ids = _ids(sql, params, most=SAMPLE_TARGET + 1)
        capped = len(ids)
        if capped <= SAMPLE_TARGET:
            basis = Basis(exact=True, item_count=capped, sampled=capped, computed_at=now, view=view)
            return basis, _BY_IDS, [ids]
    if planned is None:
        planned = selectors.planner_rows(Item.objects.filter(dataset=dataset))
    everything = max(planned, capped)
    if items is None:
        percent = 100.0 * SAMPLE_TARGET / everything
        sample = (
            "SELECT id, metadata FROM curation_item TABLESAMPLE SYSTEM (%s) REPEATABLE (7) "
            "WHERE dataset_id = %s"
        )
        ids = _ids(sample, [min(100.0, percent), dataset.pk])
    else:
        # A view narrower than the dataset keeps fewer of the sampled rows: when the first
        # sample leaves it less than half the target, read more blocks, up to VIEW_BOOST
        # times as many, so its figures rest on enough items.
        percent = min(100.0, 100.0 * SAMPLE_TARGET / everything)
        if first is not None and everything == planned:
            ids = first  # the same blocks again
        else:
            sample, sample_params = _view_sample(items, dataset, percent)
            ids = _ids(sample, sample_params)
        if len(ids) < SAMPLE_TARGET / 2 and percent < 100.0:
            boost = min(float(VIEW_BOOST), SAMPLE_TARGET / max(len(ids), 1))
            percent = min(100.0, percent * boost)
            sample, sample_params = _view_sample(items, dataset, percent)
            ids = _ids(sample, sample_params)
    sampled = len(ids)
    # A view's size is scaled from the share of the blocks read, never below what was
    # counted exactly before the count stopped.
    estimate = everything if items is None else max(round(sampled * 100.0 / percent), capped)
    basis = Basis(exact=False, item_count=estimate, sampled=sampled, computed_at=now, view=view)
    return basis, _BY_IDS, [ids]


def _blocks(ids: list[int]) -> int:
    """How many table blocks hold these items (the unit a block sample draws)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(DISTINCT (ctid::text::point)[0]) FROM curation_item "
            "WHERE id = ANY(%s::bigint[])",
            [ids],
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0
