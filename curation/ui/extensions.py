"""Parts of the UI's pages that another app fills: similarity search in the grid, an
item's neighbours and duplicate group, embedding coverage, the random-weights banner,
the dataset header's tabs and the grid's sort keys.

Curation never imports the embeddings app (see curation.extensions): the embeddings app
registers its panels here in EmbeddingsConfig.ready(). Without it the pages render with
no similarity search: no search model, no results, no neighbours, no coverage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.db.models import QuerySet

from curation.models import Dataset, Item
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


# A page of a sorted grid: (item id, the value it is sorted by) in order. Given the view's
# dataset, its items (a queryset of everything its filters keep), whether highest first,
# and the offset and number of rows wanted.
SortPage = Callable[[Dataset, "QuerySet[Item]", bool, int, int], list[tuple[int, float]]]


@dataclass(frozen=True)
class SortKey:
    """An order of the grid another app provides (the insights app's `uniqueness`): the
    URL's `sort` value is `name` (lowest first) or `-name` (highest first). Items the key
    has no value for are left out of the sorted view (the grid says so)."""

    name: str
    label: str
    page: SortPage


_sort_keys: dict[str, SortKey] = {}


def sort_key_register(key: SortKey) -> None:
    """Add an order to the grid's sort menu (from an AppConfig.ready()); once per name."""
    _sort_keys.setdefault(key.name, key)


def sort_keys() -> list[SortKey]:
    return list(_sort_keys.values())


def sort_key_for(sort: str) -> SortKey | None:
    """The key that a `sort` value (`name` or `-name`) names; None for an unknown one."""
    return _sort_keys.get(sort.removeprefix("-"))


__all__ = [
    "Coverage",
    "DatasetTab",
    "DuplicateTile",
    "NoVectorPanels",
    "Results",
    "SortKey",
    "VectorPanels",
    "dataset_tab_register",
    "dataset_tabs",
    "sort_key_for",
    "sort_key_register",
    "sort_keys",
    "vector_panels",
    "vector_panels_register",
]
