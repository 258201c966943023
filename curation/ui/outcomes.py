"""Boxes coloured by their outcome in an evaluation run, and the grid's orders by a run's
matches: the `run`, `sort` and `at` parameters of a grid or item view (curation.ui.state).

The runs, the outcomes and the orders come from the RunOutcomes hook
(curation.ui.extensions), which the evaluation app registers; without it no run can be
picked and these parameters are a 400.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from curation.errors import invalid_field
from curation.ui.extensions import ObjectOutcomes, RunChoice, SortKey, run_outcomes
from curation.ui.overlays import Shape
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
    sort: str = ""

    @property
    def legend(self) -> list[tuple[str, str, str]]:
        """(outcome, words, colour) of each colour drawn."""
        return [(o, OUTCOME_TITLES[o], c) for o, c in OUTCOME_COLOURS.items()] + [
            ("", OUTCOME_TITLES[""], UNCOUNTED_COLOUR)
        ]

    @property
    def sort_title(self) -> str:
        return next((k.title for k in self.sort_keys if k.key == self.sort), "")


def run_view(state: GridState) -> RunView:
    """The view's run and order, checked: an unknown run, or an order without a run or
    not offered, is a 400 naming the parameter."""
    provider = run_outcomes()
    view = RunView(choices=provider.runs(state.dataset))
    if state.run_id is not None:
        view.run = next((r for r in view.choices if r.id == state.run_id), None)
        if view.run is None:
            raise invalid_field("run", f"no finished evaluation run {state.run_id} here")
        view.sort_keys = provider.sort_keys()
    if state.sort:
        if view.run is None:
            raise invalid_field("sort", "sorting by matches needs a run (the run parameter)")
        if state.sort not in {k.key for k in view.sort_keys}:
            keys = ", ".join(k.key for k in view.sort_keys)
            raise invalid_field("sort", f"unknown order {state.sort!r}; one of {keys}")
        view.sort = state.sort
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
