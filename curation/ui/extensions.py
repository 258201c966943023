"""Parts of the UI's pages that another app fills: similarity search in the grid, an
item's neighbours and duplicate group, embedding coverage, the random-weights banner
(VectorPanels); the header's tabs; boxes coloured by their outcome in an evaluation run
and the grid's orders by a run's matches (RunOutcomes, from the evaluation app); the
grid's selection bar's buttons (SelectionAction: autotag, review); the job page's links
to what a job of another app made (job_links_register: the selection job's slice).

Curation never imports the embeddings app (see curation.extensions): the embeddings app
registers its panels here in EmbeddingsConfig.ready(). Without it the pages render with
no similarity search: no search model, no results, no neighbours, no coverage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.db.models import QuerySet

from curation.access import has_role
from curation.models import Dataset, Item, Job, Role
from curation.ui.state import GridState

NO_SIMILARITY = "Similarity search is not available in this installation."


@dataclass
class Results:
    """One page of a similarity search in the grid."""

    model: Any  # the search model (the template shows its name), None without one
    hits: list[tuple[Item, float]] = field(default_factory=list)
    has_more: bool = False
    problem: str = ""  # why there are no results (no embeddings, no vector, bad image)
    query_item: Item | None = None


@dataclass(frozen=True)
class Coverage:
    """How many of a dataset's items have a vector under a model."""

    model: Any  # the embedding model (the templates show its name, dimension, weights)
    vectors: int
    percent: float


@dataclass(frozen=True)
class DuplicateTile:
    """A member of an item's duplicate group, as the item page shows it."""

    item: Item
    representative: bool
    same_hash: bool
    similarity: float | None
    signal: str = ""  # what found the group, in words
    group_url: str = ""  # the whole group, where the strip shows only part of it
    group_size: int = 0


class VectorPanels(Protocol):
    """What the UI asks of a vector capability."""

    def search_model(self, dataset: Dataset) -> Any:
        """The model the dataset's searches use, or None (no similarity search)."""
        ...

    def random_weight_models(self, datasets: Iterable[Dataset]) -> list[Any]:
        """The random-weights models that these datasets search with (for the banner)."""
        ...

    def grid_results(self, state: GridState) -> Results:
        """Run the view's similarity search within its filtered items (one page)."""
        ...

    def neighbours(self, item: Item, limit: int) -> tuple[list[tuple[Item, float]], str]:
        """The item's nearest items with their scores, or why there are none."""
        ...

    def duplicate_group(self, item: Item) -> tuple[list[DuplicateTile], str]:
        """The item's duplicate group, or why there is none."""
        ...

    def dataset_coverage(self, dataset: Dataset, item_count: int) -> Coverage | None:
        """Vectors under the dataset's search model (the datasets page), None without one."""
        ...

    def models_coverage(self, dataset: Dataset, item_count: int) -> list[Coverage]:
        """Vectors under each model the dataset can use (its stats page)."""
        ...


class NoVectorPanels:
    """The panels when no app provides them: no similarity search."""

    def search_model(self, dataset: Dataset) -> Any:
        return None

    def random_weight_models(self, datasets: Iterable[Dataset]) -> list[Any]:
        return []

    def grid_results(self, state: GridState) -> Results:
        return Results(None, problem=NO_SIMILARITY)

    def neighbours(self, item: Item, limit: int) -> tuple[list[tuple[Item, float]], str]:
        return [], NO_SIMILARITY

    def duplicate_group(self, item: Item) -> tuple[list[DuplicateTile], str]:
        return [], NO_SIMILARITY

    def dataset_coverage(self, dataset: Dataset, item_count: int) -> Coverage | None:
        return None

    def models_coverage(self, dataset: Dataset, item_count: int) -> list[Coverage]:
        return []


_panels: VectorPanels = NoVectorPanels()


def vector_panels_register(provider: VectorPanels) -> None:
    """Make `provider` fill the UI's vector panels (from an AppConfig.ready())."""
    global _panels
    _panels = provider


def vector_panels() -> VectorPanels:
    """The registered vector panels (NoVectorPanels when none are)."""
    return _panels


@dataclass(frozen=True)
class DatasetTab:
    """A tab another app adds to the dataset header (the evaluation app's runs): its
    label, the URL name it reverses with the dataset's id, and the `tab` value its pages
    set to mark it current."""

    label: str
    url_name: str
    tab: str


_tabs: list[DatasetTab] = []


def dataset_tab_register(tab: DatasetTab) -> None:
    """Add a tab to the dataset header (from an AppConfig.ready()); once per url_name."""
    if all(t.url_name != tab.url_name for t in _tabs):
        _tabs.append(tab)


def dataset_tabs() -> list[DatasetTab]:
    return list(_tabs)


# ------------------------------------------------------------ the grid's selection bar


@dataclass(frozen=True)
class SelectionAction:
    """A button of the grid's selection bar that another app adds (the embeddings app's
    "Autotag from selection"): it posts the bar's fields (`ids`, or `scope=view` and
    `view` for "select all matching", `name`, `next`) to `url_name`, reversed with the
    dataset's id, whose view reads them with curation.ui.selection.selection_reference_ids.
    Shown to members with at least `min_role`; `key` names its test id (`sel-<key>`)."""

    label: str
    url_name: str
    key: str
    min_role: str = Role.CURATOR


_selection_actions: list[SelectionAction] = []


def selection_action_register(action: SelectionAction) -> None:
    """Add a button to the grid's selection bar (from an AppConfig.ready()); once per url_name."""
    if all(a.url_name != action.url_name for a in _selection_actions):
        _selection_actions.append(action)


def selection_actions(role: str | None) -> list[SelectionAction]:
    """The registered actions a member with `role` may use (none without a role)."""
    return [a for a in _selection_actions if has_role(role, a.min_role)]


# ------------------------------------------------------------ what a job made


@dataclass(frozen=True)
class JobLink:
    """A link of the job page to what the job made (the dataset, a download, a slice)."""

    label: str
    url: str
    testid: str


JobLinks = Callable[[Job], list[JobLink]]

_job_links: dict[str, JobLinks] = {}


def job_links_register(kind: str, links: JobLinks) -> None:
    """Make `links` say what a succeeded job of `kind` links to (from an AppConfig.ready()).
    It is given the Job only: it shapes links from the job's result and queries nothing."""
    _job_links[kind] = links


def registered_job_links(kind: str) -> JobLinks | None:
    return _job_links.get(kind)


# ----------------------------------------------------------------- evaluation outcomes


@dataclass(frozen=True)
class RunChoice:
    """A finished evaluation run the grid and the item page can colour boxes by: its
    model's predictions at or above `confidence` are the ones it matched."""

    id: int
    name: str
    model_id: int
    confidence: float


@dataclass
class ObjectOutcomes:
    """Each object's outcome in a run ("tp", "fp", "fn"), by annotation and prediction id.
    An object with none was not counted (a crowd region, a prediction it ignored)."""

    annotations: dict[int, str] = field(default_factory=dict)
    predictions: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SortKey:
    """An order of the grid's items by their matches in a run (items without such a
    match are not listed under it)."""

    key: str
    title: str


@dataclass
class SortedPage:
    """A page of items in a sort key's order: (item id, the value it is sorted by)."""

    rows: list[tuple[int, float]] = field(default_factory=list)
    has_next: bool = False


class RunOutcomes(Protocol):
    """What the UI asks of an evaluation capability (the evaluation app registers it)."""

    def runs(self, dataset: Dataset) -> list[RunChoice]:
        """The dataset's finished runs, newest first."""
        ...

    def outcomes(self, run: RunChoice, item_ids: Sequence[int]) -> ObjectOutcomes:
        """The outcomes of these items' annotations and predictions in `run`."""
        ...

    def sort_keys(self) -> list[SortKey]: ...

    def sorted_page(
        self,
        run: RunChoice,
        key: str,
        items: QuerySet[Item] | None,
        after: tuple[float, int] | None,
        limit: int,
    ) -> SortedPage:
        """Items of `items` (None: every item of the run) in `key`'s order, after a
        (value, item id) cursor; a bounded read."""
        ...


class NoRunOutcomes:
    """Without an evaluation app: no runs to pick."""

    def runs(self, dataset: Dataset) -> list[RunChoice]:
        return []

    def outcomes(self, run: RunChoice, item_ids: Sequence[int]) -> ObjectOutcomes:
        return ObjectOutcomes()

    def sort_keys(self) -> list[SortKey]:
        return []

    def sorted_page(
        self,
        run: RunChoice,
        key: str,
        items: QuerySet[Item] | None,
        after: tuple[float, int] | None,
        limit: int,
    ) -> SortedPage:
        return SortedPage()


_outcomes: RunOutcomes = NoRunOutcomes()


def run_outcomes_register(provider: RunOutcomes) -> None:
    """Make `provider` answer the UI's questions about evaluation runs (AppConfig.ready())."""
    global _outcomes
    _outcomes = provider


def run_outcomes() -> RunOutcomes:
    """The registered provider (NoRunOutcomes when none is)."""
    return _outcomes


__all__ = [
    "Coverage",
    "DatasetTab",
    "DuplicateTile",
    "JobLink",
    "JobLinks",
    "NoRunOutcomes",
    "NoVectorPanels",
    "ObjectOutcomes",
    "Results",
    "RunChoice",
    "RunOutcomes",
    "SelectionAction",
    "SortKey",
    "SortedPage",
    "VectorPanels",
    "dataset_tab_register",
    "dataset_tabs",
    "job_links_register",
    "registered_job_links",
    "run_outcomes",
    "run_outcomes_register",
    "selection_action_register",
    "selection_actions",
    "vector_panels",
    "vector_panels_register",
]
