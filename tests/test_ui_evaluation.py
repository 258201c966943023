"""The evaluation pages: a run's numbers as its metrics hold them, links from every count
to exactly the items with that outcome, the confusion matrix, the runs list and the
links to a run from the header and from its job."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from curation.models import Dataset
from evaluation.models import EvaluationMatch, EvaluationRun
from evaluation.pages import STAT_TITLES, number
from tests.api_helpers import add_items, box
from tests.ui_factories import evaluated, outcome_world


@pytest.fixture
def world(dataset: Dataset, alice: User) -> dict[str, EvaluationRun]:
    """outcome_world, and e: a truck predicted as a car (fn truck, fp car; in the
    confusion matrix a (truck, car) cell)."""
    outcome_world(dataset)
    add_items(
        dataset,
        {
            "reference_id": "e",
            "annotations": [box(0, 0, 40, 40, label="truck")],
            "predictions": [box(0, 0, 40, 40, model="yolo", confidence=0.9)],
        },
    )
    return {
        "base": evaluated(dataset, alice, "base run"),
        "agnostic": evaluated(dataset, alice, "agnostic", class_agnostic=True),
    }


@pytest.fixture
def viewer(victor: User) -> Client:
    client = Client()
    client.force_login(victor)
    return client


def page_of(client: Client, run: EvaluationRun) -> str:
    response = client.get(f"/datasets/{run.dataset_id}/evaluations/{run.pk}/")
    assert response.status_code == 200
    return str(response.content.decode())


def cell(body: str, label: str, outcome: str) -> str:
    row = re.search(rf'<tr data-label="{re.escape(label)}">(.*?)</tr>', body, re.S)
    assert row is not None, label
    found = re.search(rf'data-outcome="{outcome}">(.*?)</td>', row.group(1), re.S)
    assert found is not None
    return found.group(1)


def href(fragment: str) -> str | None:
    found = re.search(r'href="([^"]+)"', fragment)
    return html.unescape(found.group(1)) if found else None


def grid_refs(client: Client, url: str) -> list[str]:
    response = client.get(url)
    assert response.status_code == 200
    return sorted(re.findall(r'data-ref="([^"]+)"', response.content.decode()))


def outcome_refs(run: EvaluationRun, outcome: str, label: str) -> list[str]:
    """The items with at least one such match, read from the run's rows directly."""
    from curation.models import Item

    ids = EvaluationMatch.objects.filter(run=run, outcome=outcome, label=label).values("item_id")
    return sorted(Item.objects.filter(pk__in=ids).values_list("reference_id", flat=True))


def test_the_page_shows_the_runs_numbers(viewer: Client, world: dict[str, Any]) -> None:
    run = world["base"]
    body = page_of(viewer, run)
    for key, title in STAT_TITLES.items():
        shown = re.search(rf'data-stat="{key}"><div class="value">([^<]*)</div>', body)
        assert shown is not None and shown.group(1) == number(run.metrics[key]), key
        assert title in body
    op = run.metrics["operating_point"]
    for name in ("precision", "recall", "f1"):
        assert f'data-metric="{name}">{number(op[name])}<' in body
    assert f'data-metric="best-f1">{number(run.metrics["best_f1"]["f1"])}<' in body
    # by hand: car found on a, predicted on nothing on b, c (twice) and e
    expected = {
        "car": (1, 4, 0),
        "bus": (0, 0, 1),
        "person": (1, 0, 2),
        "truck": (0, 0, 1),
    }
    for row in run.metrics["per_class"]:
        counts = tuple(row[o] for o in ("tp", "fp", "fn"))
        assert counts == expected[row["label"]]
        for outcome, value in zip(("tp", "fp", "fn"), counts, strict=True):
            assert re.sub(r"<[^>]+>", "", cell(body, row["label"], outcome)) == str(value)


def test_each_count_links_to_exactly_its_items(viewer: Client, world: dict[str, Any]) -> None:
    run = world["base"]
    body = page_of(viewer, run)
    fp_car = href(cell(body, "car", "fp"))
    assert fp_car is not None
    # the run is picked in the grid: its boxes are coloured by outcome there
    assert fp_car == (
        f"/datasets/{run.dataset_id}/?query=eval%5B%22base+run%22%5D.fp.car+%3E%3D+1&run={run.pk}"
    )
    assert grid_refs(viewer, fp_car) == ["b", "c", "e"]
    for label, outcome, expected in [
        ("car", "tp", ["a"]),
        ("person", "fn", ["c"]),
        ("person", "tp", ["b"]),
        ("bus", "fn", ["a"]),
        ("truck", "fn", ["e"]),
    ]:
        url = href(cell(body, label, outcome))
        assert url is not None, (label, outcome)
        assert grid_refs(viewer, url) == expected == outcome_refs(run, outcome, label)
    # a zero has no link
    assert href(cell(body, "car", "fn")) is None
    assert href(cell(body, "bus", "tp")) is None


def test_the_confusion_matrix_pairs_labels_matched_whatever_they_are(
    viewer: Client, world: dict[str, Any]
) -> None:
    run = world["base"]
    assert run.metrics["confusion"]["labels"] == ["bus", "car", "person", "truck"]
    assert run.metrics["confusion"]["matrix"] == [
        [0, 0, 0, 0, 1],
        [0, 1, 0, 0, 0],
        [0, 0, 1, 0, 2],
        [0, 1, 0, 0, 0],
        [0, 3, 0, 0, 0],
    ]
    body = page_of(viewer, run)
    table = re.search(r'data-testid="confusion">(.*?)</table>', body, re.S)
    assert table is not None
    # per-class run: no cell is one of its queries, so none links
    assert "href" not in table.group(1)
    truck = re.search(r'<tr data-truth="truck">(.*?)</tr>', table.group(1), re.S)
    assert truck is not None
    assert re.findall(r"<td[^>]*>(?:<span[^>]*>)?(\d+)", truck.group(1)) == [
        "0",
        "1",
        "0",
        "0",
        "0",
    ]


def test_a_class_agnostic_runs_background_cells_link_to_their_items(
    viewer: Client, world: dict[str, Any]
) -> None:
    run = world["agnostic"]
    body = page_of(viewer, run)
    table = re.search(r'data-testid="confusion">(.*?)</table>', body, re.S)
    assert table is not None
    links = [html.unescape(u) for u in re.findall(r'href="([^"]+)"', table.group(1))]
    background = re.search(r'<tr data-truth="background">(.*?)</tr>', table.group(1), re.S)
    assert background is not None
    fp_car = href(background.group(1))
    assert fp_car is not None and "fp.car" in fp_car
    assert grid_refs(viewer, fp_car) == ["b", "c"] == outcome_refs(run, "fp", "car")
    person = re.search(r'<tr data-truth="person">(.*?)</tr>', table.group(1), re.S)
    assert person is not None
    fn_person = href(person.group(1))
    assert fn_person is not None and grid_refs(viewer, fn_person) == ["c"]
    # the background cells with a count (bus, person, car FP): nothing else links
    assert len(links) == 3


def test_warnings_are_shown(viewer: Client, dataset: Dataset, alice: User) -> None:
    add_items(dataset, {"reference_id": "x", "predictions": [box(model="yolo", confidence=0.9)]})
    run = evaluated(dataset, alice, "no truth")
    assert run.warnings
    body = page_of(viewer, run)
    assert 'data-testid="run-warnings"' in body
    assert html.escape(run.warnings[0], quote=True) in body or run.warnings[0] in body


def test_the_runs_list_the_header_and_the_job_link_to_a_run(
    viewer: Client, world: dict[str, Any], dataset: Dataset
) -> None:
    run = world["base"]
    grid = viewer.get(f"/datasets/{dataset.pk}/").content.decode()
    assert f'href="/datasets/{dataset.pk}/evaluations/" data-testid="tab-evaluations"' in grid
    runs = viewer.get(f"/datasets/{dataset.pk}/evaluations/").content.decode()
    assert f'href="/datasets/{dataset.pk}/evaluations/{run.pk}/"' in runs
    assert "agnostic" in runs
    job = viewer.get(f"/datasets/{dataset.pk}/jobs/{run.job_id}").content.decode()
    assert (
        f'href="/datasets/{dataset.pk}/evaluations/{run.pk}/" data-testid="job-made-evaluation"'
        in job
    )


def test_strangers_get_404_and_runs_of_other_datasets_are_not_found(
    charlie: User, viewer: Client, world: dict[str, Any], dataset: Dataset
) -> None:
    run = world["base"]
    stranger = Client()
    stranger.force_login(charlie)
    assert stranger.get(f"/datasets/{dataset.pk}/evaluations/{run.pk}/").status_code == 404
    assert stranger.get(f"/datasets/{dataset.pk}/evaluations/").status_code == 404
    other = Dataset.objects.create(name="other", owner=charlie)
    assert stranger.get(f"/datasets/{other.pk}/evaluations/{run.pk}/").status_code == 404


def test_labels_and_run_names_that_need_quotes_link_to_their_items(
    viewer: Client, dataset: Dataset, alice: User
) -> None:
    add_items(
        dataset,
        {"reference_id": "lit", "annotations": [box(label="traffic light")]},
        {"reference_id": "kw", "annotations": [box(label="and")]},
        {"reference_id": "none", "predictions": [box(model="yolo", confidence=0.9)]},
    )
    run = evaluated(dataset, alice, 'say "when"')
    body = page_of(viewer, run)
    light = href(cell(body, "traffic light", "fn"))
    assert light is not None
    assert "query=eval%5B%22say+%5C%22when%5C%22%22%5D.fn.%22traffic+light%22" in light
    assert grid_refs(viewer, light) == ["lit"]
    keyword = href(cell(body, "and", "fn"))
    assert keyword is not None and grid_refs(viewer, keyword) == ["kw"]


def test_a_classification_runs_page_shows_its_metrics_and_cells_open_their_items(
    viewer: Client, dataset: Dataset, alice: User
) -> None:
    def category(label: str, **extra: Any) -> dict[str, Any]:
        return {"kind": "category", "label": label, **extra}

    def predicted(label: str) -> dict[str, Any]:
        return category(label, model="clf", confidence=0.9)

    rows = {  # reference: (truth, prediction)
        "a": ("cat", "cat"),
        "b": ("cat", "dog"),
        "c": ("dog", "dog"),
        "d": ("dog", None),
        "e": ("dog", "cat"),
        "f": (None, "cat"),  # no ground truth: not scored
    }
    add_items(
        dataset,
        *(
            {
                "reference_id": ref,
                "annotations": [category(truth)] if truth else [],
                "predictions": [predicted(guess)] if guess else [],
            }
            for ref, (truth, guess) in rows.items()
        ),
    )
    run = evaluated(dataset, alice, "clf run", model="clf", task="classification")
    runs = viewer.get(f"/datasets/{dataset.pk}/evaluations/").content.decode()
    assert "accuracy 0.400" in runs
    body = page_of(viewer, run)
    assert 'data-stat="accuracy"><div class="value">0.400</div>' in body
    assert "1 of 6 items have no category annotation" in body
    assert cell(body, "cat", "fp") != "0" and href(cell(body, "dog", "fn")) is not None
    assert grid_refs(viewer, href(cell(body, "cat", "fp")) or "") == ["e"]
    assert grid_refs(viewer, href(cell(body, "dog", "fn")) or "") == ["d", "e"]
    expected = {
        ("cat", "cat"): ["a"],
        ("cat", "dog"): ["b"],
        ("dog", "dog"): ["c"],
        ("dog", "no prediction"): ["d"],
        ("dog", "cat"): ["e"],
    }
    axis = ["cat", "dog", "no prediction"]
    for truth in ("cat", "dog"):
        row = re.search(rf'<tr data-truth="{truth}">(.*?)</tr>', body, re.S)
        assert row is not None
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
        assert len(cells) == len(axis)
        for predicted_label, fragment in zip(axis, cells, strict=True):
            items = expected.get((truth, predicted_label), [])
            url = href(fragment)
            assert (url is None) == (not items), (truth, predicted_label)
            if url:
                assert grid_refs(viewer, url) == items, (truth, predicted_label)


def test_a_segmentation_runs_page_shows_its_coco_numbers(
    viewer: Client, dataset: Dataset, alice: User
) -> None:
    from curation.models import Item

    square = {"vertices": [[10.0, 10.0], [90.0, 10.0], [90.0, 90.0], [10.0, 90.0]]}
    polygon = {"kind": "polygon", "label": "road", "geometry": square}
    add_items(
        dataset,
        {
            "reference_id": "r",
            "annotations": [polygon],
            "predictions": [{**polygon, "model": "seg", "confidence": 0.9}],
        },
    )
    Item.objects.filter(dataset=dataset).update(width=100, height=100)
    run = evaluated(dataset, alice, "segm run", model="seg", task="segmentation")
    body = page_of(viewer, run)
    assert "1 ground-truth instances (polygons and masks)" in body
    assert 'data-stat="map"><div class="value">1.000</div>' in body
    assert href(cell(body, "road", "tp")) is not None


def error_cell(body: str, error: str) -> str:
    row = re.search(rf'<tr data-error="{error}">(.*?)</tr>', body, re.S)
    assert row is not None, error
    found = re.search(r"data-count=\"\d+\">(.*?)</td>", row.group(1), re.S)
    assert found is not None
    return found.group(1)


def test_the_error_breakdown_counts_link_to_their_items(
    viewer: Client, world: dict[str, Any]
) -> None:
    run = world["base"]
    body = page_of(viewer, run)
    # e's car sits exactly on a truck: a classification error (and the truck, which fixing
    # it would find, is not missed); b's and c's cars are on nothing; a's bus and c's
    # persons are missed.
    for error, count, refs in [
        ("classification", 1, ["e"]),
        ("background", 3, ["b", "c"]),
        ("missed", 3, ["a", "c"]),
    ]:
        fragment = error_cell(body, error)
        assert re.sub(r"<[^>]+>", "", fragment) == str(count), error
        url = href(fragment)
        assert url is not None and f"error.{error}" in url
        assert grid_refs(viewer, url) == refs, error
    assert href(error_cell(body, "localization")) is None
    # By label: the persons missed on c.
    table = re.search(r'data-testid="error-classes">(.*?)</table>', body, re.S)
    assert table is not None
    person = re.search(r'<tr data-label="person">(.*?)</tr>', table.group(1), re.S)
    assert person is not None
    links = [html.unescape(u) for u in re.findall(r'href="([^"]+)"', person.group(1))]
    assert len(links) == 1 and "error.missed.person" in links[0]
    assert grid_refs(viewer, links[0]) == ["c"]
    assert 'data-testid="score-histograms"' in body
    assert 'data-label="all classes"' in body


def test_the_subsets_table_links_each_subset_to_its_failures(
    viewer: Client, dataset: Dataset, alice: User
) -> None:
    from curation.services import tag_add

    outcome_world(dataset)
    tag_add(dataset=dataset, name="night", reference_ids=["a", "b", "d"])
    run = evaluated(dataset, alice, "by tag", subsets={"tags": True})
    body = page_of(viewer, run)
    row = re.search(r'<tr data-subset="tag night">(.*?)</tr>', body, re.S)
    assert row is not None
    failures = re.search(r'data-outcome="failures">(.*?)</td>', row.group(1), re.S)
    assert failures is not None
    url = href(failures.group(1))
    assert url is not None
    # a (bus missed) and b (car on nothing) fail; d has nothing to get wrong.
    assert grid_refs(viewer, url) == ["a", "b"]


def test_the_comparison_page_links_each_item_list_to_its_items(
    viewer: Client, world: dict[str, Any], dataset: Dataset, charlie: User
) -> None:
    base, agnostic = world["base"], world["agnostic"]
    response = viewer.get(
        f"/datasets/{dataset.pk}/evaluations/compare/?a={base.pk}&b={agnostic.pk}"
    )
    assert response.status_code == 200
    body = response.content.decode()
    # Class-agnostic, e's car is a hit on the truck: e is right in b only.
    found = re.search(r'data-list="right_in_b_only">(.*?)</dd>', body, re.S)
    assert found is not None
    url = href(found.group(1))
    assert url is not None and grid_refs(viewer, url) == ["e"]
    assert re.search(r'data-list="right_in_a_only">0</dd>', body)
    assert 'data-testid="compare-summary"' in body
    stranger = Client()
    stranger.force_login(charlie)
    compare = f"/datasets/{dataset.pk}/evaluations/compare/?a={base.pk}&b={agnostic.pk}"
    assert stranger.get(compare).status_code == 404
    bad = viewer.get(f"/datasets/{dataset.pk}/evaluations/compare/?a={base.pk}&b=x")
    assert bad.status_code == 400
