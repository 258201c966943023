"""The names a dataset uses (labels, metadata keys, models, tags, slices), read with bounded
queries, and the query bar's help built on them: warnings and completions.

Annotation labels are exact: selectors.dataset_labels reads one entry of the (dataset,
label) index per distinct label, however many annotations there are, and a label used in
a query is looked up by itself, so one past the listed ones is still found. Metadata keys
and prediction labels have no such index; they come from the same sample that the facets
count (curation.sampling.sample_basis: every item up to 5,000, a block sample past that),
and warnings about them say so. The sampled part is cached like the facets.
"""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.db import connection

from curation import facets, sampling, selectors
from curation.models import Annotation, Dataset, Model, Slice, Tag
from curation.query import QueryError
from curation.query.compiler import field_help, query_names
from curation.query.hints import Completion, QueryWarning, complete, warnings_for

MAX_NAMES = 1000  # of each kind
CACHE_SECONDS = facets.CACHE_SECONDS


class NotCounted(Exception):
    """The sampled names are not in the cache, and the caller would rather not wait."""


def _sample_key(dataset: Dataset) -> str:
    return f"query:names:{dataset.pk}"


def _sampled(dataset: Dataset) -> tuple[list[str], dict[str, list[str]], int | None]:
    """Metadata keys and prediction labels by model in the facets' sample (cached)."""
    key = _sample_key(dataset)
    cached = cache.get(key)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    basis, sample_sql, params = sampling.sample_basis(dataset, None)
    with connection.cursor() as cursor:
        # Top-level keys whose value is an object are listed with their nested keys.
        cursor.execute(
            f"WITH s AS ({sample_sql}) SELECT DISTINCT e.key FROM s, {facets.METADATA_PAIRS} "
            "ORDER BY e.key LIMIT %s",
            [*params, MAX_NAMES],
        )
        keys = [row[0] for row in cursor.fetchall()]
        # The (item, model, label) index answers this per sampled item.
        cursor.execute(
            f"WITH s AS ({sample_sql}) SELECT DISTINCT m.name, p.label FROM s "
            "JOIN curation_prediction p ON p.item_id = s.id "
            "JOIN curation_model m ON m.id = p.model_id "
            "ORDER BY m.name, p.label LIMIT %s",
            [*params, MAX_NAMES],
        )
        labels: dict[str, list[str]] = {}
        for model, label in cursor.fetchall():
            labels.setdefault(model, []).append(label)
    found = (keys, labels, None if basis.exact else basis.sampled)
    cache.set(key, found, CACHE_SECONDS)
    return found


class DatasetNames:
    """The names of one dataset (hints.Names), each kind read once and only when asked for:
    checking `annotations.car >= 1` reads one index entry, not the metadata sample."""

    def __init__(self, dataset: Dataset, *, cached_only: bool = False) -> None:
        self.dataset = dataset
        self.cached_only = cached_only  # NotCounted instead of reading the sample
        self._labels: list[str] | None = None
        self._sample: tuple[list[str], dict[str, list[str]], int | None] | None = None

    def labels(self) -> list[str]:
        if self._labels is None:
            self._labels = selectors.dataset_labels(dataset=self.dataset)
        return self._labels

    def present_labels(self, names: set[str]) -> set[str]:
        if not names:
            return set()
        # One EXISTS per name, each a probe of the (dataset, label) index. (A DISTINCT over
        # the rows read every annotation of the label: Annotation's default ordering joins
        # the DISTINCT, 0.4 s per grid page for `annotations.car` at 1M items.)
        found = Annotation.objects.filter(dataset=self.dataset)
        return {name for name in names if found.filter(label=name).exists()}

    def _sampled(self) -> tuple[list[str], dict[str, list[str]], int | None]:
        if self._sample is None:
            if self.cached_only:
                self._sample = cache.get(_sample_key(self.dataset))
                if self._sample is None:
                    raise NotCounted
            else:
                self._sample = _sampled(self.dataset)
        return self._sample

    def prediction_labels(self, model: str) -> list[str]:
        return self._sampled()[1].get(model, [])

    def metadata_keys(self) -> list[str]:
        return self._sampled()[0]

    def sampled_items(self) -> int | None:
        return self._sampled()[2]

    def models(self) -> list[str]:
        return _names(Model.objects.filter(dataset=self.dataset))

    def tags(self) -> list[str]:
        return _names(Tag.objects.filter(dataset=self.dataset))

    def present_tags(self, names: set[str]) -> set[str]:
        if not names:
            return set()
        rows = Tag.objects.filter(dataset=self.dataset, name__in=names)
        return set(rows.values_list("name", flat=True))

    def slices(self) -> list[str]:
        return _names(Slice.objects.filter(dataset=self.dataset))

    def field_keys(self, field: str) -> list[str]:
        """Through the field's own FieldHelp (the app that registered it reads them)."""
        found = field_help(field)
        if found is None or found.keys is None:
            return []
        return list(found.keys(self.dataset))[:MAX_NAMES]


def _names(rows: Any) -> list[str]:
    return list(rows.order_by("name").values_list("name", flat=True)[:MAX_NAMES])


def query_warnings(
    text: str, *, dataset: Dataset, cached_only: bool = False
) -> list[QueryWarning] | None:
    """Warnings about names in `text` that `dataset` does not have; none when the query
    is wrong (its error says more). With `cached_only`, None when they would need the
    sampled names and those are not cached: the grid asks for them after the page
    (at 1M items the sample costs about half a second, off the page's critical path)."""
    try:
        return query_check(text, dataset=dataset, cached_only=cached_only)
    except QueryError:
        return []
    except NotCounted:
        return None


def query_check(text: str, *, dataset: Dataset, cached_only: bool = False) -> list[QueryWarning]:
    """QueryError if `text` is not a valid query for `dataset`, else its warnings
    (NotCounted when `cached_only` and the sampled names are not cached)."""
    uses = query_names(text, dataset=dataset)
    return warnings_for(uses, DatasetNames(dataset, cached_only=cached_only)) if uses else []


def query_completion(text: str, position: int, *, dataset: Dataset) -> Completion:
    """Suggestions for the name at `position` in `text`, from `dataset`'s names only."""
    return complete(text, position, DatasetNames(dataset))
