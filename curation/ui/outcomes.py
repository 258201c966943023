"""Boxes coloured by their outcome in an evaluation run, and the grid's orders by a run's
matches: the `run`, `match_order` and `at` parameters of a grid or item view
(curation.ui.state).

The runs, the outcomes and the orders come from the RunOutcomes hook
(curation.ui.extensions), which the evaluation app registers; without it no run can be
picked and these parameters are a 400.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from curation import selectors
from curation.errors import invalid_field
from curation.models import Item
from curation.ui.extensions import ObjectOutcomes, RunChoice, SortKey, run_outcomes
from curation.ui.overlays import Shape, shapes_of
from curation.ui.state import GridState

# Colours of the outcomes (docs/ui.md): they replace the labels' colours while a run is
# picked; an object the run did not count (a crowd region, an ignored prediction) is grey.
OUTCOME_COLOURS = {"tp": "#2f9e44", "fp": "#e03131", "fn": "#f08c00"}
UNCOUNTED_COLOUR = "#868e96"
OUTCOME_TITLES = {
    "tp": "true positive",
    "fp": "false positive",
    "fn": "missed (false negative)",
    "": "not counted",
}


@dataclass
class RunView:
    """The run picked in a view (if any), the runs to pick from and the orders it offers."""

    choices: list[RunChoice] = field(default_factory=list)
    run: RunChoice | None = None
    sort_keys: list[SortKey] = field(default_factory=list)
    order: str = ""  # the match_order in force

    @property
    def legend(self) -> list[tuple[str, str, str]]:
        """(outcome, words, colour) of each colour drawn."""
        return [(o, OUTCOME_TITLES[o], c) for o, c in OUTCOME_COLOURS.items()] + [
            ("", OUTCOME_TITLES[""], UNCOUNTED_COLOUR)
        ]

    @property
    def order_title(self) -> str:
        return next((k.title for k in self.sort_keys if k.key == self.order), "")


def run_view(state: GridState) -> RunView:
    """The view's run and order by matches, checked: an unknown run, or an order without
    a run, not offered or given with `sort`, is a 400 naming the parameter."""
    provider = run_outcomes()
    view = RunView(choices=provider.runs(state.dataset))
    if state.run_id is not None:
        view.run = next((r for r in view.choices if r.id == state.run_id), None)
        if view.run is None:
            raise invalid_field("run", f"no finished evaluation run {state.run_id} here")
        view.sort_keys = provider.sort_keys()
    if state.match_order:
        if view.run is None:
            raise invalid_field(
                "match_order", "ordering by matches needs a run (the run parameter)"
            )
        if state.sort:
            raise invalid_field("match_order", "give sort or match_order, not both")
        if state.match_order not in {k.key for k in view.sort_keys}:
            keys = ", ".join(k.key for k in view.sort_keys)
            raise invalid_field(
                "match_order", f"unknown order {state.match_order!r}; one of {keys}"
            )
        view.order = state.match_order
    return view


def outcomes_of(run: RunChoice, item_ids: Iterable[int]) -> ObjectOutcomes:
    return run_outcomes().outcomes(run, list(item_ids))


def colour_by_outcome(shapes: Iterable[Shape], outcomes: ObjectOutcomes) -> None:
    """Give each shape its outcome's colour (grey when the run did not count it)."""
    for shape in shapes:
        if shape.object_id is None:
            continue
        found = outcomes.annotations if shape.source == "gt" else outcomes.predictions
        shape.outcome = found.get(shape.object_id, "")
        shape.colour = OUTCOME_COLOURS.get(shape.outcome, UNCOUNTED_COLOUR)


def page_shapes(
    state: GridState, run: RunChoice | None, item_ids: list[int]
) -> dict[int, list[Shape]]:
    """What a page of tiles draws, by item: the ground truth, and one model's predictions
    at or above a confidence (the view's `model` and `conf`; with a run, the run's model at
    its threshold, every shape in its outcome's colour). Two reads, three with a run."""
    model_id, conf = (state.model_id, state.conf) if run is None else (run.model_id, run.confidence)
    rows: dict[int, list[Mapping[str, Any]]] = {i: [] for i in item_ids}
    for row in selectors.annotations_drawn(item_ids=item_ids):
        rows[row["item_id"]].append(row)
    by_item = {i: shapes_of(r, source="gt", colours=state.colours) for i, r in rows.items()}
    if model_id is not None:
        for row in selectors.predictions_drawn(
            item_ids=item_ids, model_id=model_id, min_confidence=conf
        ):
            by_item[row["item_id"]].extend(shapes_of([row], source="pred", colours=state.colours))
    if run is not None:
        found = outcomes_of(run, item_ids)
        for drawn in by_item.values():
            colour_by_outcome(drawn, found)
    return by_item


def match_order_page(
    state: GridState, view: RunView, base: str
) -> tuple[list[tuple[Item, str]], dict[str, str]]:
    """One page of the view's items in its order by matches, forward from the `at` cursor:
    each item with the value it is sorted by (as text), and the pager's links."""
    assert view.run is not None
    page = run_outcomes().sorted_page(
        view.run,
        view.order,
        state.items() if state.is_filtered else None,
        state.at,
        state.limit,
    )
    values = dict(page.rows)
    items = selectors.items_in_order(dataset=state.dataset, item_ids=[i for i, _ in page.rows])
    pager: dict[str, str] = {}
    if page.has_next and page.rows:
        item_id, value = page.rows[-1]
        pager["next"] = state.url(base, {"at": f"{value!r},{item_id}"})
    if state.at is not None:
        pager["first"] = state.url(base, {"at": None})
    return [(item, f"{values[item.pk]:.3f}") for item in items], pager
