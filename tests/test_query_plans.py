"""Compiled queries take shapes that PostgreSQL can answer from the indexes.

A few thousand items with selective values, analysed, and sequential scans turned off
(SET LOCAL, undone with the test's transaction): if a condition compiled to something no
index serves, the plan would still show a Seq Scan instead of the index named here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from curation import selectors
from curation.bulk.validate import Media, clean_item_record
from curation.bulk.write import records_write
from curation.models import Dataset, Item
from curation.query import filter_items
from curation.vocabulary import DatasetNames

N = 3000


def row(i: int) -> dict[str, Any]:
    box = {"x": 1, "y": 1, "width": 5, "height": 5}
    return {
        "reference_id": f"r{i}",
        "metadata": {
            "weather": f"w{i % 50}",
            "night": i % 50 == 0,
            "speed": i % 100,
            "camera": {"model": f"m{i % 40}"},
        },
        "annotations": [
            {
                "id": f"a{i}-{j}",
                "label": f"l{(i + j) % 60}",
                "geometry": box,
                "metadata": {"occluded": j == 0},
            }
            for j in range(2)
        ],
        "predictions": [
            {
                "id": f"p{i}",
                "model": "detector",
                "label": f"l{i % 60}",
                "confidence": (i % 100) / 100,
                "geometry": box,
            }
        ],
    }


@pytest.fixture(scope="module")
def shared_dataset(django_db_blocker: Any) -> Iterator[Dataset]:
    with django_db_blocker.unblock(), transaction.atomic():
        owner = User.objects.create(username="plans")
        dataset = Dataset.objects.create(name="plans", owner=owner)
        records = [
            clean_item_record(
                row(i),
                media=Media(
                    media_key=f"m/{i}",
                    thumbnail_key="",
                    source_uri="",
                    width=64,
                    height=64,
                    sha256=f"{i - i % 2 if i % 500 < 2 else i:064x}",
                    byte_size=1,
                ),
            )
            for i in range(N)
        ]
        records_write(dataset=dataset, records=records)
        with connection.cursor() as cursor:
            cursor.execute(
                "ANALYZE curation_item, curation_annotation, curation_prediction,"
                " curation_shapecount"
            )
        yield dataset
        transaction.set_rollback(True)


@pytest.fixture
def dataset(db: None, shared_dataset: Dataset) -> Dataset:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    return shared_dataset


def plan(dataset: Dataset, text: str) -> str:
    return filter_items(Item.objects.all(), text, dataset=dataset).values("id").explain()


@pytest.mark.parametrize(
    "text",
    ['metadata.weather = "w7"', "metadata.camera.model = 'm3'", "metadata.night = true"],
)
def test_it_answers_metadata_equality_from_the_gin_index(dataset: Dataset, text: str) -> None:
    assert "item_metadata_gin" in plan(dataset, text)


@pytest.mark.parametrize(
    ("text", "table"),
    [
        # counts: the per-item ShapeCount rows
        ("annotations.l7 >= 1", "curation_shapecount"),
        ("annotations.l7 = 0", "curation_shapecount"),
        ("annotations.l7 >= 2", "curation_shapecount"),
        ("annotations.l7 + annotations.l8 >= 3", "curation_shapecount"),
        ("annotations.kind.box.count >= 2", "curation_shapecount"),
        ("annotations.count < 2", "curation_shapecount"),
        ("predictions[detector].l7 >= 2", "curation_shapecount"),
        # attributes and confidences: the shapes themselves
        ("annotations.l7.occluded = true", "curation_annotation"),
        ("predictions[detector].l7.confidence > 0.8", "curation_prediction"),
        ("duplicate = true", "curation_item"),
    ],
)
def test_it_reaches_shapes_through_an_index(dataset: Dataset, text: str, table: str) -> None:
    # With sequential scans off, a Seq Scan in the plan means no index could serve it.
    found = plan(dataset, text)
    assert table in found
    assert "Seq Scan" not in found


def test_it_compiles_metadata_equality_to_containment(dataset: Dataset) -> None:
    queryset = filter_items(Item.objects.all(), 'metadata.weather = "w7"', dataset=dataset)
    sql, _ = queryset.query.sql_with_params()
    assert '"curation_item"."metadata" @>' in sql


def test_it_runs_at_least_one_as_a_semi_join(dataset: Dataset) -> None:
    # EXISTS, not COUNT(*) >= 1: the planner may turn it into a join.
    queryset = filter_items(Item.objects.all(), "annotations.l7 >= 1", dataset=dataset)
    sql, _ = queryset.query.sql_with_params()
    assert "EXISTS" in sql
    assert "COUNT" not in sql


def estimated_rows(dataset: Dataset, text: str) -> float:
    queryset = filter_items(Item.objects.all(), text, dataset=dataset).values("id")
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        found = cursor.fetchone()[0]
    return float((json.loads(found) if isinstance(found, str) else found)[0]["Plan"]["Plan Rows"])


@pytest.mark.parametrize(
    "text", ["metadata.speed > 50", "metadata.speed <= 20 AND metadata.night = false"]
)
def test_order_comparisons_are_not_guessed_as_rare(dataset: Dataset, text: str) -> None:
    """A range on a metadata number must not look like a needle to the planner.

    Half the items match `speed > 50`. When the type test compiled to an equality on an
    expression, the planner guessed 0.5% of that, a handful of rows, and at 1M items
    sorted tens of thousands of matches instead of walking the id index for a page.
    """
    assert estimated_rows(dataset, text) >= N * 0.05


def annotation_rows_read(node: dict[str, Any]) -> int:
    """Rows that the plan's nodes on curation_annotation returned, over all their loops."""
    own = (
        node["Actual Rows"] * node["Actual Loops"]
        if node.get("Relation Name") == "curation_annotation"
        else 0
    )
    return own + sum(annotation_rows_read(child) for child in node.get("Plans", []))


def test_a_datasets_labels_cost_one_index_probe_each(dataset: Dataset) -> None:
    with CaptureQueriesContext(connection) as queries:
        labels = selectors.dataset_labels(dataset=dataset)
    assert labels == sorted(f"l{i}" for i in range(60))
    [query] = queries.captured_queries
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + query["sql"])
        found = cursor.fetchone()[0]
    found = json.loads(found) if isinstance(found, str) else found
    assert "annotation_dataset_label" in json.dumps(found)
    # A DISTINCT over the annotations would read all 6,000 of them: this reads ~1 a label.
    assert annotation_rows_read(found[0]["Plan"]) <= 2 * len(labels) + 2


def test_checking_that_a_querys_labels_exist_probes_the_index_once_each(dataset: Dataset) -> None:
    """The query bar's "no such label" warning asks whether each label it names exists:
    one index probe each, never the rows of a common label (a DISTINCT over them once cost
    0.4 s per grid page at 1M items)."""
    names = {"l0", "l1", "no such label"}
    with CaptureQueriesContext(connection) as queries:
        found = DatasetNames(dataset).present_labels(names)
    assert found == {"l0", "l1"}
    assert len(queries.captured_queries) == len(names)
    read = 0
    for query in queries.captured_queries:
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + query["sql"])
            found_plan = cursor.fetchone()[0]
        found_plan = json.loads(found_plan) if isinstance(found_plan, str) else found_plan
        read += annotation_rows_read(found_plan[0]["Plan"])
    assert read <= len(names)
