"""The query language's `autotag[<name>]` field (registered by EmbeddingsConfig.ready).

    autotag[rain] > 0.8                 items the autotag "rain" scores above 0.8
    autotag["heavy rain"] >= 0.5        a name with a space, quoted
    sort=autotag[rain]&order=desc       the grid and the item list, best first

Each comparison is an EXISTS on the item's score in the autotag's current round
(`scored_round`), served by the (round, item) unique index; an item without a score (no
vector) matches no comparison and sorts last. curation never imports this app.
"""

from __future__ import annotations

import difflib
from typing import Any

from django.db.models import Exists, FloatField, OuterRef, Q, Subquery

from curation.models import Dataset
from curation.query import FieldCondition, FieldHelp, FieldRef
from curation.query.parser import quote_name
from curation.score_facets import ScoreFacet, ScoreVariant, per_dataset
from embeddings.models import Autotag, AutotagScore

AUTOTAG = "autotag"
_LOOKUPS = {"=": "exact", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}
MAX_NAMES = 200


def autotag_names(dataset: Any) -> list[str]:
    """The dataset's autotags, for the query bar's completion in `autotag[...]`."""
    rows = Autotag.objects.filter(dataset=dataset).order_by("name")
    return list(rows.values_list("name", flat=True)[:MAX_NAMES])


def scored_round_of(dataset: Dataset, name: str | None, path: tuple[str, ...]) -> int:
    """The id of the round whose scores `autotag[name]` reads; ValueError says why none."""
    if path:
        raise ValueError(f"'{AUTOTAG}[...]' has no sub-fields: autotag[{name}] > 0.8")
    name = name or ""
    found = Autotag.objects.filter(dataset=dataset, name=name).first()
    if found is None:
        names = autotag_names(dataset)
        close = difflib.get_close_matches(name, names, n=1)
        raise ValueError(
            f"No autotag named '{name}' in this dataset"
            + (f"; autotags: {', '.join(names[:20])}." if names else "; it has none yet.")
            + (f" Did you mean '{close[0]}'?" if close else "")
        )
    if found.scored_round_id is None:
        raise ValueError(f"Autotag '{name}' has no scores yet: its scoring job has not finished.")
    return int(found.scored_round_id)


def autotag_field(condition: FieldCondition) -> Q:
    """`autotag[<name>] <op> <number>`, a score in [0, 1]."""
    round_id = scored_round_of(condition.dataset, condition.key, condition.path)
    value = condition.value
    if (
        condition.op not in (*_LOOKUPS, "!=")
        or not isinstance(value, int | float)
        or isinstance(value, bool)
    ):
        raise ValueError(
            f"autotag[{condition.key}] is a score from 0 to 1: compare it with a number, e.g. > 0.8"
        )
    rows = AutotagScore.objects.filter(round_id=round_id, item_id=OuterRef("pk"))
    if condition.op == "!=":
        return Q(Exists(rows.exclude(score=value)))
    return Q(Exists(rows.filter(**{f"score__{_LOOKUPS[condition.op]}": value})))


def autotag_value(ref: FieldRef) -> Any:
    """`autotag[<name>]` as a value per item (a sort key); null without a score."""
    round_id = scored_round_of(ref.dataset, ref.key, ref.path)
    rows = AutotagScore.objects.filter(round_id=round_id, item_id=OuterRef("pk"))
    return Subquery(rows.values("score")[:1], output_field=FloatField())


COMPLETION = FieldHelp(keys=autotag_names, key_kind="autotag")


@per_dataset
def scored_autotags(dataset: Dataset) -> list[ScoreVariant]:
    """The grid's "Autotag" score facet: one field per autotag with scores (a histogram of
    buckets of 0.1, each narrowing the grid by `autotag[<name>] >= low AND < high`)."""
    rows = Autotag.objects.filter(dataset=dataset, scored_round__isnull=False).order_by("name")
    return [
        ScoreVariant(f"{AUTOTAG}[{quote_name(name)}]", name)
        for name in rows.values_list("name", flat=True)[:MAX_NAMES]
    ]


SCORE_FACET = ScoreFacet(
    key=AUTOTAG,
    title="Autotag",
    variants=scored_autotags,
    meaning="the autotag's classifier score in [0, 1] (its current round)",
)
