"""Boxes coloured by their outcome in a run (grid and item page), the grid's orders by a
run's matches, and the query bar's completion of run names: on outcome_world, whose
outcomes are worked out by hand (tests/ui_factories.py)."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from curation.models import Annotation, Dataset, Item, Prediction
from curation.ui.extensions import RunChoice, run_outcomes
from curation.ui.outcomes import OUTCOME_COLOURS
from curation.vocabulary import query_completion
from evaluation.models import EvaluationRun
from tests.ui_factories import evaluated, outcome_world


@pytest.fixture
def world(dataset: Dataset, alice: User) -> dict[str, Any]:
    ids = outcome_world(dataset)
    Item.objects.filter(dataset=dataset).update(width=400, height=400)
    return {"ids": ids, "run": evaluated(dataset, alice, "base run")}


@pytest.fixture
def viewer(victor: User) -> Client:
    client = Client()
    client.force_login(victor)
    return client


def choice(run: EvaluationRun) -> RunChoice:
    return next(r for r in run_outcomes().runs(run.dataset) if r.id == run.pk)


def test_the_hook_answers_each_objects_outcome(world: dict[str, Any]) -> None:
    run, ids = world["run"], world["ids"]
    found = run_outcomes().outcomes(choice(run), [ids["b"], ids["c"]])
    by_conf = {float(p.confidence): p.pk for p in Prediction.objects.filter(item_id=ids["b"])}
    assert found.predictions[by_conf[0.8]] == "fp"
    assert found.predictions[by_conf[0.7]] == "tp"
    assert by_conf[0.2] not in found.predictions  # below the threshold: no row
    person_b = Annotation.objects.get(item_id=ids["b"]).pk
    assert found.annotations[person_b] == "tp"
    missed = Annotation.objects.filter(item_id=ids["c"]).values_list("pk", flat=True)
    assert {found.annotations[pk] for pk in missed} == {"fn"}
    # item a was not asked for
    assert not Annotation.objects.filter(item_id=ids["a"], pk__in=found.annotations).exists()


def test_only_finished_runs_can_be_picked(dataset: Dataset, world: dict[str, Any]) -> None:
    run = world["run"]
    EvaluationRun.objects.filter(pk=run.pk).update(finished=None)
    assert run_outcomes().runs(dataset) == []


def shapes(body: str, ref: str) -> list[tuple[str, str, str]]:
    """(source, outcome, colour) of every shape drawn on the tile of `ref`."""
    tile = re.search(rf'data-ref="{ref}">(.*?)<div class="tile-foot">', body, re.S)
    assert tile is not None, ref
    return sorted(
        (source, outcome or "", colour)
        for source, outcome, colour in re.findall(
            r'data-source="(gt|pred)"(?: data-outcome="(\w+)")?[^>]*style="--c: ([^"]+)"',
            tile.group(1),
        )
    )


def test_the_grid_colours_boxes_by_outcome(
    viewer: Client, dataset: Dataset, world: dict[str, Any]
) -> None:
    run = world["run"]
    body = viewer.get(f"/datasets/{dataset.pk}/", {"run": run.pk}).content.decode()
    tp, fp, fn = (OUTCOME_COLOURS[o] for o in ("tp", "fp", "fn"))
    assert shapes(body, "a") == sorted([("gt", "tp", tp), ("gt", "fn", fn), ("pred", "tp", tp)])
    # b's third prediction (0.2) is below the run's threshold: not drawn
    assert shapes(body, "b") == sorted([("gt", "tp", tp), ("pred", "fp", fp), ("pred", "tp", tp)])
    assert shapes(body, "c") == sorted(
        [("gt", "fn", fn), ("gt", "fn", fn), ("pred", "fp", fp), ("pred", "fp", fp)]
    )
    assert 'data-testid="outcome-legend"' in body
    assert f'<option value="{run.pk}" selected>base run</option>' in body
    # Without a run, no outcomes and the label legend.
    plain = viewer.get(f"/datasets/{dataset.pk}/").content.decode()
    assert "data-outcome=" not in plain and 'data-testid="run-picker"' in plain


def test_the_item_page_colours_boxes_by_outcome(
    viewer: Client, dataset: Dataset, world: dict[str, Any]
) -> None:
    run, ids = world["run"], world["ids"]
    Item.objects.filter(pk=ids["c"]).update(media_key="c.jpg")  # the page draws on an image
    body = viewer.get(f"/datasets/{dataset.pk}/items/{ids['c']}", {"run": run.pk}).content
    text = body.decode()
    found = sorted(re.findall(r'data-source="(gt|pred)" data-outcome="(\w+)"', text))
    assert found == [("gt", "fn"), ("gt", "fn"), ("pred", "fp"), ("pred", "fp")]
    assert f'style="--c: {OUTCOME_COLOURS["fp"]}"' in text


def test_a_bad_run_or_order_is_a_400_naming_it(
    viewer: Client, dataset: Dataset, world: dict[str, Any]
) -> None:
    grid = f"/datasets/{dataset.pk}/"
    for params, name in [
        ({"run": 999999}, "run"),
        ({"run": "x"}, "run"),
        ({"match_order": "fp-confidence"}, "match_order"),
        ({"run": world["run"].pk, "match_order": "nope"}, "match_order"),
        (
            {"run": world["run"].pk, "match_order": "tp-iou", "sort": "annotations.count"},
            "match_order",
        ),
        ({"run": world["run"].pk, "match_order": "tp-iou", "at": "x,1"}, "at"),
    ]:
        response = viewer.get(grid, params)
        assert response.status_code == 400, params
        assert name in response.content.decode()


def refs(body: str) -> list[str]:
    return re.findall(r'data-ref="([^"]+)"', body)


def test_orders_by_matches(viewer: Client, dataset: Dataset, world: dict[str, Any]) -> None:
    run = world["run"]
    grid = f"/datasets/{dataset.pk}/"

    def listed(sort: str, **extra: Any) -> tuple[list[str], list[str]]:
        params = {"run": run.pk, "match_order": sort, **extra}
        body = viewer.get(grid, params).content.decode()
        return refs(body), re.findall(r'data-testid="sort-value"[^>]*>([^<]+)<', body)

    # the most confident FP of c is 0.9, b's is 0.8; a and d have none
    assert listed("fp-confidence") == (["c", "b"], ["0.900", "0.800"])
    # a's car is 50x48 on 50x50 (IoU 0.96), b's person exact
    assert listed("tp-iou") == (["a", "b"], ["0.960", "1.000"])
    assert listed("tp-confidence") == (["b", "a"], ["0.700", "0.900"])
    # within the view's filters
    assert listed("fp-confidence", query='reference_id = "b"')[0] == ["b"]


def test_an_order_pages_with_its_cursor(
    viewer: Client, dataset: Dataset, world: dict[str, Any]
) -> None:
    run = world["run"]
    body = viewer.get(
        f"/datasets/{dataset.pk}/",
        {"run": run.pk, "match_order": "fp-confidence", "limit": 1},
    ).content.decode()
    assert refs(body) == ["c"]
    after = re.search(r'href="([^"]+)" rel="next"', body)
    assert after is not None
    second = viewer.get(html.unescape(after.group(1))).content.decode()
    assert refs(second) == ["b"]
    assert 'rel="next"' not in second


def test_the_run_pages_links_pick_the_run(
    viewer: Client, dataset: Dataset, world: dict[str, Any]
) -> None:
    run = world["run"]
    body = viewer.get(f"/datasets/{dataset.pk}/evaluations/{run.pk}/").content.decode()
    assert f"run={run.pk}" in html.unescape(body)


def test_run_names_complete_after_eval_bracket(
    viewer: Client, dataset: Dataset, alice: User, world: dict[str, Any]
) -> None:
    evaluated(dataset, alice, "baseline")
    found = query_completion("eval[", 5, dataset=dataset)
    assert [(s.label, s.kind, s.text) for s in found.suggestions] == [
        ("base run", "run", '"base run"]'),
        ("baseline", "run", "baseline]"),
    ]
    assert [s.label for s in query_completion("eval[basel", 10, dataset=dataset).suggestions] == [
        "baseline"
    ]
    response = viewer.get(f"/datasets/{dataset.pk}/query/complete", {"query": 'eval["base run"].f'})
    assert [s["label"] for s in response.json()["suggestions"]] == ["fn", "fp"]
    labels = query_completion("eval[baseline].fn.pe", 20, dataset=dataset).suggestions
    assert [s.label for s in labels] == ["person"]
    # another dataset's runs are not suggested
    other = Dataset.objects.create(name="other", owner=alice)
    assert query_completion("eval[", 5, dataset=other).suggestions == []


def test_an_order_pages_through_equal_values_seeing_each_item_once(
    viewer: Client, dataset: Dataset, alice: User, world: dict[str, Any]
) -> None:
    from tests.api_helpers import add_items, box

    # Three more items whose only false positive is as confident as c's (0.9).
    add_items(
        dataset,
        *(
            {
                "reference_id": f"x{n}",
                "predictions": [box(5, 5, 10, 10, model="yolo", confidence=0.9)],
            }
            for n in range(3)
        ),
    )
    run = evaluated(dataset, alice, "ties")
    url: str | None = f"/datasets/{dataset.pk}/?run={run.pk}&match_order=fp-confidence&limit=1"
    seen = []
    while url:
        body = viewer.get(url).content.decode()
        seen += refs(body)
        found = re.search(r'href="([^"]+)" rel="next"', body)
        url = html.unescape(found.group(1)) if found else None
    # equal values in decreasing item id, then the next value
    assert seen == ["x2", "x1", "x0", "c", "b"]
