"""The sections of a dataset's Insights page.

A section is a title, a template and a function that reads what the template shows (a
selector: it may query, the view never does). Each signal registers its section in
`InsightsConfig.ready()`, in the order the page shows them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from curation.models import Dataset

Context = Callable[[Dataset, "AbstractBaseUser | AnonymousUser"], dict[str, Any]]


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    template: str
    context: Context


@dataclass(frozen=True)
class Rendered:
    """A section ready for its template: what it is and what its function read."""

    key: str
    title: str
    template: str
    data: dict[str, Any]


_sections: list[Section] = []


def section_register(section: Section) -> None:
    """Add a section to the Insights page (from an AppConfig.ready()); once per key."""
    if all(s.key != section.key for s in _sections):
        _sections.append(section)


def sections() -> list[Section]:
    return list(_sections)


def rendered(dataset: Dataset, user: AbstractBaseUser | AnonymousUser) -> list[Rendered]:
    return [Rendered(s.key, s.title, s.template, s.context(dataset, user)) for s in _sections]
