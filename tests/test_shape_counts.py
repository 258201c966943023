"""Per-item shape counts (ShapeCount): kept true by every write path, and the query
language's count conditions on them mean what the correlated counts meant."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import pytest
from django.db import connection, transaction

from curation import services, shape_counts
from curation.annotations import annotation_create, annotation_delete, annotation_update
from curation.bulk.write import items_upsert, shapes_upsert
from curation.history import selectors as history
from curation.history.models import AnnotationChange
from curation.history.services import annotation_change_revert
from curation.models import Annotation, Dataset, Item, Model, Prediction, ShapeCount
from curation.query import compile_query

pytestmark = pytest.mark.django_db

LABELS = ["car", "truck", "bus", "person"]
KINDS = ["box", "polygon"]


def _shape(sid: str, label: str, kind: str = "box", **extra: Any) -> dict[str, Any]:
    geometry: dict[str, Any] = (
        {"x": 1, "y": 1, "width": 5, "height": 5}
        if kind == "box"
        else {"vertices": [[0, 0], [4, 0], [4, 4]]}
    )
    return {"id": sid, "label": label, "kind": kind, "geometry": geometry, **extra}


def stored(dataset: Dataset) -> dict[tuple[int, int, int, str], int]:
    return {
        (c.item_id, c.source, c.dim, c.key): c.n for c in ShapeCount.objects.filter(dataset=dataset)
    }


def expected(dataset: Dataset) -> dict[tuple[int, int, int, str], int]:
    """The counts worked out in Python from the shapes themselves."""
    counts: Counter[tuple[int, int, int, str]] = Counter()
    shapes: list[tuple[int, int, str, str]] = [
        (item, 0, kind, label)
        for item, kind, label in Annotation.objects.filter(dataset=dataset).values_list(
            "item_id", "kind", "label"
        )
    ]
    shapes += list(
        Prediction.objects.filter(model__dataset=dataset).values_list(
            "item_id", "model_id", "kind", "label"
        )
    )
    for item, source, kind, label in shapes:
        counts[(item, source, 0, "")] += 1
        counts[(item, source, 1, label)] += 1
        counts[(item, source, 2, kind)] += 1
    return dict(counts)


def check(dataset: Dataset) -> dict[tuple[int, int, int, str], int]:
    found = stored(dataset)
    assert found == expected(dataset)
    return found


def test_every_write_path_keeps_the_counts(dataset: Dataset) -> None:
    rows: list[dict[str, Any]] = [
        {
            "reference_id": f"img-{i}",
            "annotations": [_shape(f"a{i}-{j}", LABELS[(i + j) % 3]) for j in range(i % 4)],
            "predictions": [
                {**_shape(f"p{i}", "car"), "model": "det", "confidence": 0.5},
            ],
        }
        for i in range(6)
    ]
    # bulk COPY of new items
    items_upsert(dataset=dataset, rows=rows)
    first = check(dataset)
    item0 = Item.objects.get(dataset=dataset, reference_id="img-0")
    assert (item0.pk, 0, 0, "") not in first  # no annotations: no row, count 0
    # the same bulk upsert again changes nothing
    items_upsert(dataset=dataset, rows=rows)
    assert check(dataset) == first
    # a bulk upsert that relabels one shape, changes its kind and moves another
    rows[3]["annotations"][0] = _shape("a3-0", "bus", "polygon")
    rows[2]["annotations"].append(_shape("a1-0", "person"))  # a1-0 moves to img-2
    rows[1]["annotations"] = []
    items_upsert(dataset=dataset, rows=rows)
    assert check(dataset) != first
    # annotation rows upserted on their own (the staging-table path), twice
    extra = [{**_shape("x1", "truck"), "reference_id": "img-5"}]
    shapes_upsert(dataset=dataset, rows=extra)
    after_extra = check(dataset)
    shapes_upsert(dataset=dataset, rows=extra)
    assert check(dataset) == after_extra
    model = Model.objects.get(dataset=dataset, name="det")
    shapes_upsert(
        dataset=dataset,
        rows=[{**_shape("p9", "bus"), "reference_id": "img-1", "confidence": 0.2}],
        model=model,
    )
    check(dataset)
    # single ORM writes: create, relabel, delete
    item = Item.objects.get(dataset=dataset, reference_id="img-4")
    single = Annotation.objects.create(
        dataset=dataset, item=item, annotation_id="s1", kind="box", label="car"
    )
    check(dataset)
    single.label = "person"
    single.save()
    check(dataset)
    single.delete()
    check(dataset)
    # annotation delete through the service; the last car of img-3 goes
    services.annotations_delete(dataset=dataset, annotation_ids=["a3-1", "a3-2"])
    check(dataset)
    # item deletes (the ORM's cascade)
    services.item_delete(item=Item.objects.get(dataset=dataset, reference_id="img-2"))
    services.items_delete(dataset=dataset, reference_ids=["img-5"])
    remaining = check(dataset)
    assert {key[0] for key in remaining} <= set(
        Item.objects.filter(dataset=dataset).values_list("pk", flat=True)
    )
    # a model's predictions go with it
    services.model_delete(model=model)
    assert not any(key[1] == model.pk for key in check(dataset))
    assert remaining  # the annotations' counts are still there


def test_the_editor_and_reverts_keep_the_counts(dataset: Dataset, bob: Any) -> None:
    items_upsert(dataset=dataset, rows=[{"reference_id": "a", "annotations": [_shape("s", "car")]}])
    item = Item.objects.get(dataset=dataset, reference_id="a")
    made, _ = annotation_create(
        item=item, label="bus", geometry=_shape("x", "bus")["geometry"], user=bob, source="editor"
    )
    check(dataset)
    made = annotation_update(
        annotation=made, expected_version=made.version, label="truck", user=bob, source="editor"
    )
    check(dataset)
    annotation_delete(annotation=made, expected_version=made.version, user=bob, source="editor")
    check(dataset)
    deleted = AnnotationChange.objects.get(dataset=dataset, action="deleted")
    annotation_change_revert(
        change=history.change_of(dataset=dataset, change_id=deleted.pk), user=bob
    )
    assert check(dataset)[(item.pk, 0, 1, "truck")] == 1


def test_dataset_delete_drops_its_counts_and_leaves_others(dataset: Dataset, bob: Any) -> None:
    other = services.dataset_create(owner=bob, name="other")
    for target in (dataset, other):
        items_upsert(
            dataset=target,
            rows=[{"reference_id": "a", "annotations": [_shape("s", "car")]}],
        )
    services.dataset_delete(dataset=dataset)
    assert not ShapeCount.objects.filter(dataset_id=dataset.pk).exists()
    assert len(check(other)) == 3
    # the triggers are on again after the delete, in the same transaction
    items_upsert(dataset=other, rows=[{"reference_id": "b", "annotations": [_shape("t", "bus")]}])
    assert len(check(other)) == 6


def test_the_migration_counts_existing_shapes(dataset: Dataset) -> None:
    items_upsert(
        dataset=dataset,
        rows=[
            {"reference_id": "a", "annotations": [_shape("s1", "car"), _shape("s2", "car")]},
            {"reference_id": "b", "annotations": [_shape("s3", "bus", "polygon")]},
        ],
    )
    before = check(dataset)
    # The migration's backfill statement, run again over an emptied table.
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM curation_shapecount WHERE dataset_id = %s", [dataset.pk])
        cursor.execute(shape_counts.BACKFILL)
    assert stored(dataset) == before


def _random_dataset(dataset: Dataset, seed: int) -> None:
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for i in range(60):
        shapes = [
            _shape(f"a{i}-{j}", rng.choice(LABELS), rng.choice(KINDS))
            for j in range(rng.choice([0, 0, 1, 2, 3, 5]))
        ]
        predictions = [
            {**_shape(f"p{i}-{j}", rng.choice(LABELS)), "model": model, "confidence": 0.5}
            for model in ("det", "seg")
            for j in range(rng.choice([0, 1, 2]))
        ]
        rows.append({"reference_id": f"r{i}", "annotations": shapes, "predictions": predictions})
    # ensure both models exist even if the dice left one without predictions
    rows[0]["predictions"] += [
        {**_shape("p-det", "car"), "model": "det", "confidence": 0.5},
        {**_shape("p-seg", "bus"), "model": "seg", "confidence": 0.5},
    ]
    items_upsert(dataset=dataset, rows=rows)


# The counts a query may name, each as the key of its ShapeCount row without the item
# (source "det" / "seg": the model of that name).
TERMS: dict[str, tuple[str | int, int, str]] = {
    **{f"annotations.{label}": (0, 1, label) for label in [*LABELS, "nothing"]},
    "annotations.count": (0, 0, ""),
    "annotations.kind.box.count": (0, 2, "box"),
    "annotations.kind.polygon.count": (0, 2, "polygon"),
    "predictions[det].car": ("det", 1, "car"),
    "predictions[seg].count": ("seg", 0, ""),
    "predictions[det].kind.box.count": ("det", 2, "box"),
}
Counts = Callable[[tuple[str | int, int, str]], int]
OPS: dict[str, Callable[[Fraction, Fraction], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
ARITH: dict[str, Callable[[Fraction, Fraction], Fraction]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
}
# A query as a tree of tuples: ("cmp", op, expr, expr), ("not", q), ("and" | "or", q, q);
# an expr is a term's name, a number as text, or ("arith", op, expr, expr).
Tree = Any


def value(expr: Tree, count: Counts) -> Fraction:
    if isinstance(expr, tuple):
        return ARITH[expr[1]](value(expr[2], count), value(expr[3], count))
    return Fraction(count(TERMS[expr])) if expr in TERMS else Fraction(expr)


def holds(query: Tree, count: Counts) -> bool:
    """What the query means, worked out in Python from an item's counts."""
    if query[0] == "not":
        return not holds(query[1], count)
    if query[0] in ("and", "or"):
        both = holds(query[1], count), holds(query[2], count)
        return all(both) if query[0] == "and" else any(both)
    return OPS[query[1]](value(query[2], count), value(query[3], count))


def text_of(tree: Tree) -> str:
    if not isinstance(tree, tuple):
        return str(tree)
    if tree[0] == "not":
        return f"NOT ({text_of(tree[1])})"
    if tree[0] in ("and", "or"):
        return f"({text_of(tree[1])}) {tree[0].upper()} ({text_of(tree[2])})"
    return f"{text_of(tree[2])} {tree[1]} {text_of(tree[3])}"


def random_queries(seed: int, n: int) -> list[Tree]:
    rng = random.Random(seed)
    values = ["0", "1", "2", "3", "1.5", "-1", "0.5"]
    queries: list[Tree] = []
    for _ in range(n):
        a, b, op, shape = (
            rng.choice(list(TERMS)),
            rng.choice(list(TERMS)),
            rng.choice(list(OPS)),
            rng.random(),
        )
        if shape < 0.5:
            query: Tree = ("cmp", op, a, rng.choice(values))
        elif shape < 0.8:
            query = ("cmp", op, ("arith", rng.choice(list(ARITH)), a, b), rng.choice(values))
        else:
            query = ("cmp", op, a, ("arith", "+", b, rng.choice(["0", "1", "-2"])))
        if rng.random() < 0.3:
            query = ("not", query)
        if rng.random() < 0.3:
            car = ("cmp", rng.choice(list(OPS)), "annotations.car", "1")
            query = (rng.choice(["and", "or"]), query, car)
        queries.append(query)
    return queries


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_count_conditions_match_the_counts_of_the_shapes(dataset: Dataset, seed: int) -> None:
    _random_dataset(dataset, seed)
    # some items lose shapes afterwards, so counts also went down to 0
    services.annotations_delete(
        dataset=dataset, annotation_ids=[f"a{i}-0" for i in range(0, 60, 4)]
    )
    counts = check(dataset)
    models = dict(Model.objects.filter(dataset=dataset).values_list("name", "pk"))
    items = Item.objects.filter(dataset=dataset)
    pks = list(items.values_list("pk", flat=True))

    def of(pk: int) -> Counts:
        def count(key: tuple[str | int, int, str]) -> int:
            source = models[key[0]] if isinstance(key[0], str) else key[0]
            return counts.get((pk, source, key[1], key[2]), 0)

        return count

    for query in random_queries(seed, 80):
        text = text_of(query)
        found = set(items.filter(compile_query(text, dataset=dataset)).values_list("pk", flat=True))
        assert found == {pk for pk in pks if holds(query, of(pk))}, text


def test_a_zero_count_includes_items_without_any_row(dataset: Dataset) -> None:
    items_upsert(
        dataset=dataset,
        rows=[
            {"reference_id": "none"},
            {"reference_id": "bus", "annotations": [_shape("b", "bus")]},
            {"reference_id": "car", "annotations": [_shape("c", "car")]},
        ],
    )
    items = Item.objects.filter(dataset=dataset)

    def refs(text: str) -> set[str]:
        q = compile_query(text, dataset=dataset)
        return set(items.filter(q).values_list("reference_id", flat=True))

    assert refs("annotations.car = 0") == {"none", "bus"}
    assert refs("annotations.car + annotations.bus = 0") == {"none"}
    assert refs("annotations.car - annotations.bus >= 0") == {"none", "car"}
    assert refs("NOT annotations.count < 1") == {"bus", "car"}


@pytest.mark.django_db(transaction=True)
def test_concurrent_deletes_of_one_items_shapes_both_count(dataset: Dataset) -> None:
    items_upsert(
        dataset=dataset,
        rows=[{"reference_id": "a", "annotations": [_shape("c1", "car"), _shape("c2", "car")]}],
    )
    errors: list[BaseException] = []

    def delete_second() -> None:
        try:
            with transaction.atomic():
                Annotation.objects.filter(dataset=dataset, annotation_id="c2").delete()
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    with transaction.atomic():
        Annotation.objects.filter(dataset=dataset, annotation_id="c1").delete()
        # The other writer's decrement of the same counts waits for this transaction.
        other = threading.Thread(target=delete_second)
        other.start()
        with connection.cursor() as cursor:
            waiting = 0
            while not waiting and other.is_alive():
                # pg_stat_activity is read once per transaction unless cleared.
                cursor.execute("SELECT pg_stat_clear_snapshot()")
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
                waiting = cursor.fetchone()[0]
        assert waiting, errors
    other.join()
    assert errors == []
    assert not Annotation.objects.filter(dataset=dataset).exists()
    assert check(dataset) == {}
