"""The query language's results: every operator and field, precedence, arithmetic.

Expected results are worked out by hand from tests/query_dataset.py (five items).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db.models import Q

from curation.models import Dataset, Item, Slice
from curation.query import (
    FieldCondition,
    QueryError,
    compile_query,
    filter_items,
    validate_query,
)
from curation.query import compiler as query_compiler
from tests.query_dataset import build_query_dataset, matching, module_dataset

ALL = ["img-1", "img-2", "img-3", "img-4", "img-5"]

CASES = [
    # metadata: equality (JSON containment), typed
    ('metadata.weather = "rain"', ["img-1", "img-3"]),
    ("metadata.weather = 'rain'", ["img-1", "img-3"]),
    ('metadata.weather == "rain"', ["img-1", "img-3"]),
    ('metadata.weather != "rain"', ["img-2", "img-4", "img-5"]),
    ('metadata.weather <> "rain"', ["img-2", "img-4", "img-5"]),
    ("metadata.speed = 88.5", ["img-2"]),
    ("metadata.speed = 42", ["img-1"]),
    ("metadata.speed = 42.0", ["img-1"]),
    ('metadata.speed = "42"', []),
    ('metadata.speed = "fast"', ["img-3"]),
    ("metadata.night = true", ["img-2", "img-4"]),
    ("metadata.night = FALSE", ["img-1"]),
    ("metadata.night != true", ["img-1", "img-3", "img-5"]),
    ("metadata.speed = null", ["img-5"]),
    ("metadata.rating = null", ["img-1", "img-2", "img-3", "img-4"]),
    ("metadata.speed != null", ["img-1", "img-2", "img-3", "img-4"]),
    ("metadata.nothing_here = 1", []),
    # metadata: nested keys and quoted names
    ('metadata.camera.model = "x100"', ["img-1"]),
    ('metadata.location.city = "paris"', ["img-3"]),
    ('metadata."camera model" = "X 100"', ["img-1"]),
    ("metadata.`camera model` = 'Z 7'", ["img-2"]),
    ("metadata.'camera model' != \"X 100\"", ["img-2", "img-3", "img-4", "img-5"]),
    # metadata: order comparisons hold for values of the literal's JSON type only
    ("metadata.speed > 40", ["img-1", "img-2"]),
    ("metadata.speed >= 42", ["img-1", "img-2"]),
    ("metadata.speed < 42", ["img-4"]),
    ("metadata.speed <= 42", ["img-1", "img-4"]),
    ("NOT metadata.speed > 40", ["img-3", "img-4", "img-5"]),
    ("metadata.rating < 0", ["img-5"]),
    ("metadata.rating < -0.5", ["img-5"]),
    ('metadata.weather > "r"', ["img-1", "img-2", "img-3"]),
    ('metadata.weather <= "fog"', ["img-4"]),
    ("metadata.camera.lens > 'a'", ["img-1"]),
    ("40 < metadata.speed", ["img-1", "img-2"]),
    # strings with escapes
    ('metadata.weather = "it\'s \\"quoted\\""', ["img-5"]),
    ("metadata.weather = 'it\\'s \"quoted\"'", ["img-5"]),
    ('metadata.weather = "\\u0072ain"', ["img-1", "img-3"]),
    # IN lists
    ('metadata.weather IN ("rain", "fog")', ["img-1", "img-3", "img-4"]),
    ('metadata.weather NOT IN ("rain", "fog")', ["img-2", "img-5"]),
    ("metadata.speed in (5, 42)", ["img-1", "img-4"]),
    # item columns
    ("width = 640", ["img-1"]),
    ("width > 700", ["img-2", "img-3"]),
    ("width >= 800", ["img-2", "img-3"]),
    ("height < 500", ["img-1", "img-5"]),
    ("height <= 480", ["img-1", "img-5"]),
    ("width != 640", ["img-2", "img-3", "img-4", "img-5"]),
    ("width = null", ["img-4"]),
    ("width != null", ["img-1", "img-2", "img-3", "img-5"]),
    ("width > 639.5", ["img-1", "img-2", "img-3"]),
    ("width IN (100, 800)", ["img-3", "img-5"]),
    ('reference_id = "img-3"', ["img-3"]),
    ('reference_id != "img-3"', ["img-1", "img-2", "img-4", "img-5"]),
    ('reference_id IN ("img-1", "img-5", "nope")', ["img-1", "img-5"]),
    ('reference_id > "img-3"', ["img-4", "img-5"]),
    ('created > "2000-01-01"', ALL),
    ('created < "2000-01-01T00:00:00Z"', []),
    ('created >= "1999-12-31T23:00:00+01:00"', ALL),
    # annotation counts
    ("annotations.count = 0", ["img-4"]),
    ("annotations.count = 3", ["img-1"]),
    ("annotations.count >= 5", ["img-3"]),
    ("annotations.car >= 1", ["img-1", "img-2"]),
    ("annotations.car > 0", ["img-1", "img-2"]),
    ("annotations.car >= 2", ["img-1"]),
    ("annotations.car.count >= 2", ["img-1"]),
    ("annotations.car = 1", ["img-2"]),
    ("annotations.car = 0", ["img-3", "img-4", "img-5"]),
    ("annotations.car != 0", ["img-1", "img-2"]),
    ("annotations.car != 1", ["img-1", "img-3", "img-4", "img-5"]),
    ("annotations.car < 2", ["img-2", "img-3", "img-4", "img-5"]),
    ("annotations.car <= 1", ["img-2", "img-3", "img-4", "img-5"]),
    ("annotations.car < 1", ["img-3", "img-4", "img-5"]),
    ("annotations.car > 0.5", ["img-1", "img-2"]),
    ("annotations.car = 1.5", []),
    ("annotations.car != 1.5", ALL),
    ("annotations.car >= 0", ALL),
    ("annotations.car < 0", []),
    ("annotations.car > 1000000000000000000000", []),
    ("annotations.car < 1000000000000000000000", ALL),
    ("annotations.bus IN (0, 3)", ALL),
    ("annotations.bus IN (1, 3)", ["img-3"]),
    ('annotations."car" = 2', ["img-1"]),
    ("annotations.zebra = 0", ALL),
    ("annotations.kind.polygon.count = 1", ["img-2"]),
    ("annotations.kind.category >= 1", ["img-5"]),
    ("annotations.kind.box.count >= 3", ["img-1", "img-3"]),
    # annotation attributes: "some annotation of that label has ..."
    ("annotations.car.occluded = true", ["img-1"]),
    ("annotations.car.occluded = false", ["img-1"]),
    ("annotations.truck.occluded = true", ["img-3"]),
    ("annotations.car.occluded != true", ["img-1", "img-2"]),
    ("NOT annotations.car.occluded = true", ["img-2", "img-3", "img-4", "img-5"]),
    ("annotations.car.occluded = null", ["img-2"]),
    ('annotations.car."count" = null', ["img-1", "img-2"]),
    # arithmetic on counts
    ("annotations.truck + annotations.bus >= 3", ["img-3"]),
    ("annotations.truck + annotations.bus >= 1", ["img-1", "img-3"]),
    ("annotations.bus - annotations.truck > 0", ["img-3"]),
    ("annotations.car * 2 = 4", ["img-1"]),
    ("annotations.car > annotations.truck", ["img-1", "img-2"]),
    ("-annotations.car < -1", ["img-1"]),
    ("(annotations.bus + annotations.truck) * 2 - 1 >= 9", ["img-3"]),
    ("annotations.count - annotations.car * 2 = 5", ["img-3"]),
    ("width * height > 500000", ["img-2"]),
    ("NOT width * height > 500000", ["img-1", "img-3", "img-4", "img-5"]),
    ("width > height", ["img-1", "img-2", "img-3"]),
    ("width - height = 160", ["img-1"]),
    # arithmetic is exact past bigint and float8 (it runs on numeric)
    ("width * 9223372036854775807 > 1", ["img-1", "img-2", "img-3", "img-5"]),
    ("annotations.car * 9223372036854775807 >= 9223372036854775807", ["img-1", "img-2"]),
    ("width * 1e300 * 1e300 > 1e308", ["img-1", "img-2", "img-3", "img-5"]),
    ("width * 0.1 * 10 = width", ["img-1", "img-2", "img-3", "img-5"]),
    # predictions of a named model
    ("predictions[detector].count >= 1", ["img-1", "img-2", "img-3", "img-5"]),
    ("predictions[detector].count = 2", ["img-1"]),
    ("predictions[detector].car >= 1", ["img-1", "img-2"]),
    ('predictions["detector"].car.count = 1', ["img-1", "img-2"]),
    ("predictions[detector].car.confidence > 0.8", ["img-1"]),
    ("predictions[detector].confidence > 0.8", ["img-1", "img-3", "img-5"]),
    ("predictions[detector].bus.confidence < 0.5", ["img-1"]),
    ("predictions[detector].bus.confidence != 0.3", ["img-5"]),
    ("predictions[detector].kind.box.count = 1", ["img-2", "img-3", "img-5"]),
    ("predictions[segmenter].pedestrian = 1", ["img-5"]),
    ("predictions[segmenter].count = 0", ["img-1", "img-2", "img-3", "img-4"]),
    ("predictions[detector].car - annotations.car < 0", ["img-1"]),
    # tags, slices, duplicates
    ("tag = reviewed", ["img-1", "img-2"]),
    ('tag = "flagged"', ["img-5"]),
    ("tag != reviewed", ["img-3", "img-4", "img-5"]),
    ("tag IN (reviewed, 'flagged')", ["img-1", "img-2", "img-5"]),
    ("tag NOT IN (reviewed, flagged)", ["img-3", "img-4"]),
    ("tag = unused", []),
    ('tag = "never created"', []),
    ('tag != "never created"', ALL),
    ("slice = train", ["img-1", "img-3"]),
    ('slice = "val"', ["img-5"]),
    ("slice = empty", []),
    ("slice != train", ["img-2", "img-4", "img-5"]),
    ("slice IN (train, val)", ["img-1", "img-3", "img-5"]),
    ("duplicate = true", ["img-1", "img-2"]),
    ("duplicate = false", ["img-3", "img-4", "img-5"]),
    ("duplicate != true", ["img-3", "img-4", "img-5"]),
    ("duplicate != false", ["img-1", "img-2"]),
    # boolean structure: NOT binds tighter than AND, AND tighter than OR
    (
        'metadata.weather = "rain" OR metadata.weather = "sun" AND metadata.night = false',
        ["img-1", "img-3"],
    ),
    (
        '(metadata.weather = "rain" OR metadata.weather = "sun") AND metadata.night = false',
        ["img-1"],
    ),
    ('NOT metadata.weather = "rain" AND annotations.car >= 1', ["img-2"]),
    (
        'NOT (metadata.weather = "rain" AND annotations.car >= 1)',
        ["img-2", "img-3", "img-4", "img-5"],
    ),
    ("NOT NOT tag = reviewed", ["img-1", "img-2"]),
    ('metadata.weather = "rain" and not tag = reviewed', ["img-3"]),
    ("tag = reviewed Or tag = flagged AnD width > 1000", ["img-1", "img-2"]),
    ("(tag = reviewed or tag = flagged) and width < 1000", ["img-1", "img-5"]),
    ("((((width > 700))))", ["img-2", "img-3"]),
    ("width > 700\n  AND\n  annotations.bus >= 1", ["img-3"]),
    # a blank query filters nothing
    ("", ALL),
    ("   \n ", ALL),
]


@pytest.fixture(scope="module")
def shared_dataset(django_db_blocker: Any) -> Iterator[Dataset]:
    with module_dataset(django_db_blocker) as dataset:
        yield dataset


@pytest.fixture
def dataset(db: None, shared_dataset: Dataset) -> Dataset:
    return shared_dataset


@pytest.fixture
def items(dataset: Dataset) -> dict[str, int]:
    return dict(Item.objects.filter(dataset=dataset).values_list("reference_id", "pk"))


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0] or "blank" for c in CASES])
def test_it_matches_hand_computed_results(
    dataset: Dataset, items: dict[str, int], text: str, expected: list[str]
) -> None:
    assert matching(dataset, text) == expected


def test_it_keeps_to_the_dataset(dataset: Dataset, items: dict[str, int]) -> None:
    other = Dataset.objects.create(name="other", owner=dataset.owner)
    build_query_dataset(other)
    assert Item.objects.filter(compile_query("width > 0", dataset=dataset)).count() == 4
    assert set(
        filter_items(Item.objects.all(), "", dataset=other).values_list("dataset_id", flat=True)
    ) == {other.pk}


def test_it_reads_the_only_model_without_brackets(dataset: Dataset, items: dict[str, int]) -> None:
    dataset.models.get(name="segmenter").delete()
    assert matching(dataset, "predictions.car >= 1") == ["img-1", "img-2"]
    assert matching(dataset, "predictions.count = 0") == ["img-4"]


def test_it_accepts_keywords_as_key_names(dataset: Dataset, items: dict[str, int]) -> None:
    Item.objects.filter(pk=items["img-4"]).update(metadata={"and": 1, "null": True, "in": "x"})
    assert matching(dataset, "metadata.and = 1 AND metadata.null = true AND metadata.in = 'x'") == [
        "img-4"
    ]


def test_it_filters_an_existing_queryset(dataset: Dataset, items: dict[str, int]) -> None:
    queryset = Item.objects.filter(reference_id__in=["img-1", "img-2", "img-3"])
    result = filter_items(queryset, "metadata.weather = 'rain'", dataset=dataset)
    assert sorted(result.values_list("reference_id", flat=True)) == ["img-1", "img-3"]


def test_it_compiles_to_a_q_object(dataset: Dataset, items: dict[str, int]) -> None:
    condition = compile_query("tag = reviewed", dataset=dataset)
    assert isinstance(condition, Q)
    assert Item.objects.filter(condition).count() == 2


def test_it_validates_without_returning_anything(dataset: Dataset, items: dict[str, int]) -> None:
    assert validate_query("annotations.car >= 1", dataset=dataset) is None


def test_it_follows_slice_membership_changes(dataset: Dataset, items: dict[str, int]) -> None:
    Slice.objects.get(dataset=dataset, name="empty").items.add(items["img-4"])
    assert matching(dataset, "slice = empty") == ["img-4"]


def test_it_takes_fields_registered_by_other_apps(
    dataset: Dataset, items: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[FieldCondition] = []

    def near_duplicate(condition: FieldCondition) -> Q:
        seen.append(condition)
        return Q(reference_id__in=["img-3", "img-4"])

    monkeypatch.setattr(query_compiler, "_REGISTERED", {})
    query_compiler.register_field("near_duplicate", near_duplicate)
    assert matching(dataset, "near_duplicate = true AND width > 0") == ["img-3"]
    assert seen[0].name == "near_duplicate"
    assert seen[0].op == "="
    assert seen[0].value is True
    assert seen[0].dataset == dataset


def test_a_field_registered_with_brackets_gets_what_they_name(
    dataset: Dataset, items: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[FieldCondition] = []

    def scored(condition: FieldCondition) -> Q:
        seen.append(condition)
        return Q(reference_id="img-2")

    monkeypatch.setattr(query_compiler, "_REGISTERED", {})
    monkeypatch.setattr(query_compiler, "_BRACKETED", set())
    query_compiler.register_field("scored", scored, bracket=True)
    assert matching(dataset, 'scored["run 1"].fp.car >= 2') == ["img-2"]
    assert (seen[0].key, seen[0].path, seen[0].op, seen[0].value) == (
        "run 1",
        ("fp", "car"),
        ">=",
        2,
    )
    with pytest.raises(QueryError, match=r"scored\[\.\.\.\]"):
        validate_query("scored.fp >= 1", dataset=dataset)
    with pytest.raises(QueryError, match="only name a model or a run"):
        validate_query("scored[a][b] >= 1", dataset=dataset)


def test_it_refuses_to_shadow_a_builtin_field() -> None:
    with pytest.raises(ValueError, match="built-in"):
        query_compiler.register_field("tag", lambda condition: Q())
