"""The query language's eval[<run>] field: items by their outcomes in an evaluation run.

Expected item sets are worked out by hand from tests.ui_factories.outcome_world.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from curation.models import Dataset
from curation.query import QueryError, validate_query
from tests.query_dataset import matching
from tests.ui_factories import evaluated, outcome_world

CASES = [
    ("eval[base].fp >= 1", ["b", "c"]),
    ("eval[base].fp > 1", ["c"]),
    ("eval[base].fp >= 2", ["c"]),
    ("eval[base].fp = 2", ["c"]),
    ("eval[base].fp = 0", ["a", "d"]),
    ("eval[base].fp != 1", ["a", "c", "d"]),
    ("eval[base].fp < 2", ["a", "b", "d"]),
    ("eval[base].fp <= 0.5", ["a", "d"]),
    ("eval[base].fp >= 0", ["a", "b", "c", "d"]),
    ("1 <= eval[base].fp", ["b", "c"]),
    ("eval[base].tp >= 1", ["a", "b"]),
    ("eval[base].fn >= 1", ["a", "c"]),
    ("eval[base].fn.person >= 2", ["c"]),
    ("eval[base].fn.person = 1", []),
    ("eval[base].fn.bus >= 1", ["a"]),
    ("eval[base].fp.car >= 1", ["b", "c"]),
    ("eval[base].fp.person >= 1", []),
    ("eval[base].tp.person = 1", ["b"]),
    ('eval[base].fn."bus" >= 1', ["a"]),
    ("eval[base].fn.nothing_like_this >= 1", []),
    ("eval[base].tp > 0 AND eval[base].fn >= 1", ["a"]),
    ("NOT eval[base].fn >= 1", ["b", "d"]),
    ("eval[base].fp >= 1 OR eval[base].fn.bus = 1", ["a", "b", "c"]),
    ('eval["base"].fp >= 1', ["b", "c"]),
    # object-level conditions: a match whose confidence or IoU compares so
    ("eval[base].fp.confidence > 0.85", ["c"]),
    ("eval[base].fp.confidence >= 0.8", ["b", "c"]),
    ("eval[base].fp.car.confidence < 0.7", ["c"]),
    ("eval[base].tp.confidence <= 0.7", ["b"]),
    ("eval[base].tp.iou < 0.99", ["a"]),  # a's car: 50x48 in 50x50, IoU 0.96
    ("eval[base].tp.person.iou >= 0.99", ["b"]),
    ("eval[base].fn.iou > 0", []),  # a missed object has no IoU
    # the strict run's threshold (0.85) keeps only the 0.9 predictions
    ('eval["strict run"].fp >= 1', ["c"]),
    ('eval["strict run"].fn >= 1', ["a", "b", "c"]),
    ('eval["strict run"].tp.car = 1 AND eval[base].fp.car = 0', ["a"]),
    # TIDE's error types: a's bus and c's persons are missed, b's and c's cars are on
    # nothing (background)
    ("eval[base].error >= 1", ["a", "b", "c"]),
    ("eval[base].error = 0", ["d"]),
    ("eval[base].error >= 3", ["c"]),
    ("eval[base].error.background >= 1", ["b", "c"]),
    ("eval[base].error.background.car = 2", ["c"]),
    ("eval[base].error.missed >= 1", ["a", "c"]),
    ("eval[base].error.missed.person >= 2", ["c"]),
    ("eval[base].error.localization >= 1", []),
    ("eval[base].error >= 1 AND eval[base].fn = 0", ["b"]),
    # the strict run misses b's person (its prediction is below 0.85)
    ('eval[base].error.missed = 0 AND eval["strict run"].error.missed >= 1', ["b"]),
]


@pytest.fixture
def world(dataset: Dataset, alice: User) -> Dataset:
    outcome_world(dataset)
    evaluated(dataset, alice, "base")
    evaluated(dataset, alice, "strict run", confidence_threshold=0.85)
    return dataset


def test_it_finds_items_by_their_outcomes(world: Dataset) -> None:
    for text, expected in CASES:
        assert matching(world, text) == expected, text


def test_it_sees_only_the_runs_of_the_dataset(world: Dataset, charlie: User) -> None:
    other = Dataset.objects.create(name="other", owner=charlie)
    outcome_world(other)
    evaluated(other, charlie, "elsewhere")
    assert matching(world, "eval[base].fp >= 1") == ["b", "c"]
    assert matching(other, "eval[elsewhere].fp >= 1") == ["b", "c"]
    with pytest.raises(QueryError, match="No evaluation run named 'elsewhere'"):
        validate_query("eval[elsewhere].fp >= 1", dataset=world)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            "eval[bsae].fp >= 1",
            "No evaluation run named 'bsae' in this dataset; runs: base, strict run. "
            "Did you mean 'base'?",
        ),
        ("eval.fp >= 1", "Name what 'eval' is about at column 1: eval[...]."),
        ("eval[base].fq >= 1", "Expected eval[base].tp, .fp or .fn"),
        ("eval[base] >= 1", "Expected eval[base].tp, .fp or .fn"),
        ("eval[base].fp.car.x >= 1", "Expected eval[base].tp, .fp or .fn"),
        ('eval[base].fp = "many"', "is a count: compare it with a number"),
        ("eval[base].error.oops >= 1", "Unknown error type 'oops'"),
        ("eval[base].error.missed.car.x >= 1", "Expected eval[base].error.<type>.<label>"),
        ("eval[base].fp = true", "is a count: compare it with a number"),
        ("eval[base].fp[car] >= 1", "only name a model or a run"),
        ("metadata[x] = 1", "predictions[<model>], autotag[...], eval[...]"),
    ],
)
def test_its_errors_say_what_is_wrong(world: Dataset, text: str, fragment: str) -> None:
    with pytest.raises(QueryError) as caught:
        validate_query(text, dataset=world)
    assert fragment in str(caught.value), str(caught.value)


def test_an_unknown_run_in_a_dataset_without_runs_says_so(dataset: Dataset) -> None:
    with pytest.raises(QueryError, match="it has no evaluation runs yet"):
        validate_query("eval[base].fp >= 1", dataset=dataset)


@pytest.mark.django_db
def test_match_measures_sort_and_refuse_non_numbers(dataset: Dataset, alice: User) -> None:
    from curation.models import Item
    from curation.paging import SortOrder, items_sorted_page
    from curation.query import sort_expression

    outcome_world(dataset)
    evaluated(dataset, alice, "base")
    items = Item.objects.filter(dataset=dataset)

    def order(text: str, descending: bool) -> list[tuple[str, float | None]]:
        sort = SortOrder(sort_expression(text, dataset=dataset), descending)
        page = items_sorted_page(items, order=sort, after=None, before=None, limit=10)
        return [(i.reference_id, getattr(i, "sort_value", None)) for i in page.items]

    # The lowest IoU of an item's TPs, worst placed first; items without a TP last.
    worst = order("eval[base].tp.iou", False)
    assert [r for r, _ in worst] == ["a", "b", "c", "d"]
    assert worst[0][1] == pytest.approx(0.96) and worst[2][1] is None
    # The highest confidence of an item's FPs, most confident first.
    assert [r for r, _ in order("eval[base].fp.confidence", True)][:2] == ["c", "b"]
    with pytest.raises(QueryError, match="is a number from 0 to 1"):
        validate_query('eval[base].fp.confidence > "high"', dataset=dataset)
