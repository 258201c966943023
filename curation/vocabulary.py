"""The names a dataset uses (labels, metadata keys, models, tags, slices), read with bounded
queries, and the query bar's help built on them: warnings and completions.

Annotation labels are exact: a skip scan of the (dataset, label) index reads one entry
per distinct label, however many annotations there are. Metadata keys and prediction
labels have no such index; they come from the same sample that the facets count
(curation.facets.sample_basis: every item up to 20,000, a block sample past that), and
warnings about them say so. The sampled part is cached like the facets.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from django.core.cache import cache
from django.db import connection

from curation import facets
from curation.models import Annotation, Dataset, Model, Slice, Tag
from curation.query import QueryError
from curation.query.compiler import query_names
from curation.query.hints import Completion, QueryWarning, Vocabulary, complete, warnings_for

MAX_NAMES = 1000  # of each kind
CACHE_SECONDS = facets.CACHE_SECONDS

# One index probe per distinct label: each step finds the next label after the last.
_LABELS_SQL = """
WITH RECURSIVE l(label) AS (
  (SELECT label FROM curation_annotation WHERE dataset_id = %s ORDER BY label LIMIT 1)
  UNION ALL
  SELECT (SELECT a.label FROM curation_annotation a
          WHERE a.dataset_id = %s AND a.label > l.label ORDER BY a.label LIMIT 1)
  FROM l WHERE l.label IS NOT NULL
)
SELECT label FROM l WHERE label IS NOT NULL LIMIT %s
"""


def annotation_labels(dataset: Dataset) -> list[str]:
    """The dataset's annotation labels in order (at most MAX_NAMES), exactly."""
    with connection.cursor() as cursor:
        cursor.execute(_LABELS_SQL, [dataset.pk, dataset.pk, MAX_NAMES])
        return [row[0] for row in cursor.fetchall()]


def _sampled(dataset: Dataset) -> tuple[list[str], dict[str, list[str]], int | None]:
    """Metadata keys and prediction labels by model in the facets' sample (cached)."""
    key = f"query:names:{dataset.pk}"
    cached = cache.get(key)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    basis, sample_sql, params = facets.sample_basis(dataset, None)
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


def dataset_vocabulary(dataset: Dataset) -> Vocabulary:
    """The names `dataset` uses, for warnings and completion."""
    keys, prediction_labels, sampled = _sampled(dataset)
    return Vocabulary(
        labels=annotation_labels(dataset),
        prediction_labels=prediction_labels,
        metadata_keys=keys,
        models=_names(Model.objects.filter(dataset=dataset)),
        tags=_names(Tag.objects.filter(dataset=dataset)),
        slices=_names(Slice.objects.filter(dataset=dataset)),
        sampled_items=sampled,
    )


def _names(rows: Any) -> list[str]:
    return list(rows.order_by("name").values_list("name", flat=True)[:MAX_NAMES])


def query_warnings(text: str, *, dataset: Dataset) -> list[QueryWarning]:
    """Warnings about names in `text` that `dataset` does not have; none when the query
    is wrong (its error says more)."""
    try:
        return query_check(text, dataset=dataset)
    except QueryError:
        return []


def query_check(text: str, *, dataset: Dataset) -> list[QueryWarning]:
    """QueryError if `text` is not a valid query for `dataset`, else its warnings."""
    uses = query_names(text, dataset=dataset)
    if not uses:
        return []
    vocabulary = dataset_vocabulary(dataset)
    # Past MAX_NAMES the lists are cut short: look up the names used themselves.
    labels = {u.parts[0] for u in uses if u.kind == "label"} - set(vocabulary.labels)
    tags = {u.parts[0] for u in uses if u.kind == "tag"} - set(vocabulary.tags)
    if labels or tags:
        present = Annotation.objects.filter(dataset=dataset, label__in=labels)
        found_tags = Tag.objects.filter(dataset=dataset, name__in=tags)
        vocabulary = replace(
            vocabulary,
            labels=[*vocabulary.labels, *present.values_list("label", flat=True).distinct()],
            tags=[*vocabulary.tags, *found_tags.values_list("name", flat=True)],
        )
    return warnings_for(uses, vocabulary)


def query_completion(text: str, position: int, *, dataset: Dataset) -> Completion:
    """Suggestions for the name at `position` in `text`, from `dataset`'s names only."""
    return complete(text, position, dataset_vocabulary(dataset))
