"""Autotag: a curator's examples train a linear classifier on one model's vectors, and a
job scores every item of the dataset in [0, 1] (docs/selection.md, "Autotag").

Rounds. Each round trains scikit-learn's LogisticRegression (class-balanced) on the
vectors of every example so far: the positives, the negatives the curator marked, and
negatives drawn at random from the dataset's vectors (unlabelled background, so a few may
be the tag: the round records which). The weights `w` and bias `b` are kept with the
round; the scoring job then writes score = sigmoid(w·x + b) for every vector in SQL, with
pgvector's inner-product operator (`<#>` is the NEGATIVE inner product), one
INSERT ... SELECT per chunk of item ids under the job's checkpoint, so no vector leaves
the database and an interrupted job resumes where it stopped. When a round's scores are
complete, the autotag's `scored_round` moves to it and the previous round's rows go.

The metrics of a round are its training accuracy over the curator's examples and, with
at most LOO_MAX examples, their leave-one-out accuracy (each example predicted by a model
trained without it, with the same sampled negatives).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone
from sklearn.linear_model import LogisticRegression

from curation.errors import invalid_field, unknown_items
from curation.itemsets import item_ids_check, slice_items
from curation.jobs import JobContext, job_create
from curation.models import Dataset, Item, ItemTag, Job, Slice, Tag
from curation.query.parser import quote_name
from curation.slices import slice_create_from_query, tag_add_matching
from embeddings import vectors as vec
from embeddings.models import (
    Autotag,
    AutotagExample,
    AutotagRound,
    AutotagScore,
    Embedding,
    EmbeddingModel,
)

AUTOTAG_JOB = "autotag_score"
MAX_NAME = 200
MAX_EXAMPLES = 5000  # per side, from a slice or a tag
SAMPLED_MIN = 50  # random negatives drawn each round: at least this many ...
SAMPLED_PER_POSITIVE = 4  # ... or this many per positive, at most SAMPLED_MAX
SAMPLED_MAX = 2000
LOO_MAX = 40
REGULARISATION_C = 10.0  # unit vectors: with sklearn's C=1 every score sat near 0.5
_CHUNK = 20_000


@dataclass(frozen=True)
class ExampleSource:
    """Where one side's examples come from (any combination): reference ids, a slice, a tag."""

    reference_ids: Sequence[str] = ()
    slice_id: int | None = None
    tag: str | None = None
    item_ids: Sequence[int] = ()  # the rounds page marks items by id

    def is_empty(self) -> bool:
        return (
            not self.reference_ids and self.slice_id is None and not self.tag and not self.item_ids
        )


def examples_resolve(*, dataset: Dataset, source: ExampleSource, field: str) -> list[int]:
    """The item ids a source names, deduplicated in order; a 400 naming `field` (or
    `field_slice`, `field_tag`) for an unknown reference id, slice or tag."""
    ids: list[int] = item_ids_check(dataset=dataset, item_ids=source.item_ids, path=field)
    refs = list(dict.fromkeys(str(r) for r in source.reference_ids))
    if refs:
        found = dict(
            Item.objects.filter(dataset=dataset, reference_id__in=refs).values_list(
                "reference_id", "id"
            )
        )
        unknown = [(i, repr(r)) for i, r in enumerate(source.reference_ids) if str(r) not in found]
        if unknown:
            raise unknown_items(unknown, path=field, noun="reference ids")
        ids.extend(found[r] for r in refs)
    if source.slice_id is not None:
        found_slice = Slice.objects.filter(dataset=dataset, pk=source.slice_id).first()
        if found_slice is None:
            raise invalid_field(f"{field}_slice", f"no slice {source.slice_id} in this dataset")
        members = slice_items(found_slice).order_by("id").values_list("id", flat=True)
        ids.extend(members[: MAX_EXAMPLES + 1])
    if source.tag:
        tag = Tag.objects.filter(dataset=dataset, name=source.tag).first()
        if tag is None:
            raise invalid_field(f"{field}_tag", f"no tag {source.tag!r} in this dataset")
        tagged = (
            ItemTag.objects.filter(tag=tag).order_by("item_id").values_list("item_id", flat=True)
        )
        ids.extend(tagged[: MAX_EXAMPLES + 1])
    ids = list(dict.fromkeys(ids))
    if len(ids) > MAX_EXAMPLES:
        raise invalid_field(field, f"at most {MAX_EXAMPLES} examples a side")
    return ids


def _name_clean(dataset: Dataset, name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise invalid_field("name", "must not be blank")
    if len(name) > MAX_NAME:
        raise invalid_field("name", f"must be at most {MAX_NAME} characters")
    if Autotag.objects.filter(dataset=dataset, name=name).exists():
        raise invalid_field("name", f"this dataset already has an autotag named {name!r}")
    return name


def _vectors_of(model: EmbeddingModel, item_ids: Sequence[int]) -> dict[int, np.ndarray]:
    rows = Embedding.objects.filter(model=model, item_id__in=list(item_ids)).values_list(
        "item_id", "vector"
    )
    return {int(i): np.asarray(v, dtype=np.float64) for i, v in rows}


def _require_vectors(
    model: EmbeddingModel, found: dict[int, np.ndarray], ids: Sequence[int], field: str
) -> None:
    missing = [i for i in ids if i not in found]
    if missing:
        refs = dict(Item.objects.filter(pk__in=missing[:20]).values_list("id", "reference_id"))
        shown = ", ".join(repr(refs.get(i, str(i))) for i in missing[:20])
        raise invalid_field(
            field,
            f"{len(missing)} example(s) have no vector of model {model.name!r} "
            f"({shown}{', ...' if len(missing) > 20 else ''}): embed them first",
        )


_SAMPLE_SQL = f"""
    SELECT DISTINCT s.item_id FROM unnest(%s::bigint[]) AS r(id)
    CROSS JOIN LATERAL (
        SELECT e.item_id FROM {vec.TABLE} e
        WHERE e.dataset_id = %s AND e.model_id = %s AND e.item_id >= r.id
        ORDER BY e.item_id LIMIT 1
    ) s
"""


def negatives_sample(
    *, dataset: Dataset, model: EmbeddingModel, count: int, exclude: set[int], seed: Sequence[int]
) -> list[int]:
    """About `count` items with vectors, drawn at random (seeded), none of `exclude`.

    Random ids in the range of the vectors' item ids, each moved up to the next item with
    a vector through the (dataset, model, item) index: one query, a few index probes per
    draw, whatever the dataset's size (ORDER BY random() reads every row). An item after a
    gap in the ids is a little likelier to be drawn."""
    bounds = Embedding.objects.filter(dataset=dataset, model=model).order_by("item_id")
    first = bounds.values_list("item_id", flat=True).first()
    last = bounds.reverse().values_list("item_id", flat=True).first()
    if first is None or last is None or count <= 0:
        return []
    rng = np.random.default_rng(list(seed))
    draws = int(first) + rng.integers(0, int(last) - int(first) + 1, size=2 * count + len(exclude))
    with connection.cursor() as cursor:
        cursor.execute(_SAMPLE_SQL, [[int(d) for d in draws], dataset.pk, model.pk])
        found = sorted(int(r[0]) for r in cursor.fetchall())
    kept = [i for i in found if i not in exclude]
    order = rng.permutation(len(kept))
    return sorted(kept[int(i)] for i in order[:count])


def _fit(x: np.ndarray, y: np.ndarray) -> LogisticRegression:
    classifier = LogisticRegression(C=REGULARISATION_C, class_weight="balanced", max_iter=2000)
    classifier.fit(x, y)
    return classifier


def _metrics(
    x: np.ndarray, y: np.ndarray, labelled: int, clf: LogisticRegression
) -> dict[str, Any]:
    """Training accuracy over the curator's examples (the first `labelled` rows) and over
    all rows; leave-one-out accuracy over the curator's examples when they are few."""
    predicted = clf.predict(x)
    metrics: dict[str, Any] = {
        "train_accuracy_examples": float(np.mean(predicted[:labelled] == y[:labelled])),
        "train_accuracy_all": float(np.mean(predicted == y)),
        "loo_accuracy": None,
    }
    if labelled <= LOO_MAX:
        right = 0
        for i in range(labelled):
            keep = np.arange(len(y)) != i
            if len(set(y[keep].tolist())) < 2:
                continue
            right += int(_fit(x[keep], y[keep]).predict(x[i : i + 1])[0] == y[i])
        metrics["loo_accuracy"] = right / labelled if labelled else None
    return metrics


@transaction.atomic
def round_train(*, autotag: Autotag, user: Any) -> tuple[AutotagRound, Job]:
    """Train the next round on every example so far and queue its scoring job."""
    # Two curators retraining at once would both take the next number: one waits here.
    Autotag.objects.select_for_update().filter(pk=autotag.pk).first()
    examples = list(autotag.examples.order_by("id").values_list("item_id", "positive"))
    positives = [i for i, p in examples if p]
    negatives = [i for i, p in examples if not p]
    if not positives:
        raise invalid_field("positives", "an autotag needs at least one positive example")
    model = autotag.model
    found = _vectors_of(model, positives + negatives)
    _require_vectors(model, found, positives, "positives")
    _require_vectors(model, found, negatives, "negatives")
    number = (autotag.rounds.aggregate(n=Max("number"))["n"] or 0) + 1
    wanted = min(SAMPLED_MAX, max(SAMPLED_MIN, SAMPLED_PER_POSITIVE * len(positives)))
    sampled = negatives_sample(
        dataset=autotag.dataset,
        model=model,
        count=wanted,
        exclude={i for i, _ in examples},
        # Seeded by name and round, not by id: the same examples draw the same negatives.
        seed=(zlib.crc32(autotag.name.encode()), number),
    )
    found.update(_vectors_of(model, sampled))
    rows = positives + negatives + sampled
    x = np.stack([found[i] for i in rows])
    y = np.array([1] * len(positives) + [0] * (len(negatives) + len(sampled)))
    if len(set(y.tolist())) < 2:
        raise invalid_field(
            "negatives", "no negative examples and no other item with a vector to draw them from"
        )
    classifier = _fit(x, y)
    metrics = _metrics(x, y, len(positives) + len(negatives), classifier)
    metrics["sampled_negatives"] = len(sampled)
    metrics["note"] = (
        f"{len(sampled)} negatives drawn at random from the dataset's vectors (unlabelled: "
        "a few may be the tag); training and leave-one-out accuracy over the curator's "
        "examples."
    )
    new = AutotagRound.objects.create(
        autotag=autotag,
        number=number,
        positives=positives,
        negatives=negatives,
        sampled_negatives=sampled,
        weights=[float(v) for v in classifier.coef_[0]],
        bias=float(classifier.intercept_[0]),
        metrics=metrics,
        random_weights=model.random_weights,
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )
    job = job_create(
        kind=AUTOTAG_JOB,
        dataset=autotag.dataset,
        user=user,
        params={"autotag_id": autotag.pk, "round_id": new.pk, "name": autotag.name},
    )
    new.job = job
    new.save(update_fields=["job"])
    return new, job


def _examples_write(
    autotag: Autotag, user: Any, positives: Sequence[int], negatives: Sequence[int]
) -> None:
    both = set(positives) & set(negatives)
    if both:
        raise invalid_field("negatives", f"{len(both)} item(s) are also given as positives")
    number = (autotag.rounds.aggregate(n=Max("number"))["n"] or 0) + 1
    by = user if getattr(user, "is_authenticated", False) else None
    for ids, positive in ((positives, True), (negatives, False)):
        # A re-marked example takes its new sign (the curator changed their mind).
        AutotagExample.objects.bulk_create(
            [
                AutotagExample(
                    autotag=autotag,
                    item_id=i,
                    positive=positive,
                    round_number=number,
                    created_by=by,
                )
                for i in ids
            ],
            update_conflicts=True,
            unique_fields=["autotag", "item"],
            update_fields=["positive", "round_number"],
        )


@transaction.atomic
def autotag_create(
    *,
    dataset: Dataset,
    user: Any,
    name: str,
    model: EmbeddingModel,
    positives: ExampleSource,
    negatives: ExampleSource | None = None,
) -> tuple[Autotag, AutotagRound, Job]:
    """Create an autotag from its first examples, train round 1 and queue its scoring."""
    name = _name_clean(dataset, name)
    if positives.is_empty():
        raise invalid_field("positives", "give positive examples: reference ids, a slice or a tag")
    pos = examples_resolve(dataset=dataset, source=positives, field="positives")
    neg = examples_resolve(dataset=dataset, source=negatives or ExampleSource(), field="negatives")
    if not pos:
        raise invalid_field("positives", "no items: the slice or tag is empty")
    autotag = Autotag.objects.create(
        dataset=dataset,
        model=model,
        name=name,
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )
    _examples_write(autotag, user, pos, neg)
    new, job = round_train(autotag=autotag, user=user)
    return autotag, new, job


@transaction.atomic
def autotag_round_next(
    *,
    autotag: Autotag,
    user: Any,
    positives: ExampleSource | None = None,
    negatives: ExampleSource | None = None,
) -> tuple[AutotagRound, Job]:
    """Add the curator's confirmations (positives) and rejections (negatives), then train
    the next round and queue its scoring."""
    dataset = autotag.dataset
    pos = examples_resolve(dataset=dataset, source=positives or ExampleSource(), field="positives")
    neg = examples_resolve(dataset=dataset, source=negatives or ExampleSource(), field="negatives")
    _examples_write(autotag, user, pos, neg)
    return round_train(autotag=autotag, user=user)


@transaction.atomic
def autotag_delete(*, autotag: Autotag) -> None:
    # The scores first, in one statement: the cascade would collect them one by one.
    AutotagScore.objects.filter(round__autotag=autotag).delete()
    autotag.delete()


# ---------------------------------------------------------------------- thresholds

THRESHOLD_FIELD = "threshold"


def threshold_clean(value: Any, *, field: str = THRESHOLD_FIELD) -> float:
    """A score bound from input: a number from 0 to 1, else a 400 naming `field`."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise invalid_field(field, "must be a number from 0 to 1")
    try:
        number = float(value)
    except ValueError:
        raise invalid_field(field, "must be a number from 0 to 1") from None
    if not 0.0 <= number <= 1.0:  # NaN fails this too
        raise invalid_field(field, "must be a number from 0 to 1")
    return number


def threshold_query(autotag: Autotag, threshold: float) -> str:
    """The query language's condition for "score >= threshold" of this autotag."""
    return f"autotag[{quote_name(autotag.name)}] >= {threshold!r}"


def _scored(autotag: Autotag) -> None:
    if autotag.scored_round_id is None:
        raise invalid_field(THRESHOLD_FIELD, "the autotag has no scores yet: its job is running")


def autotag_tag(*, autotag: Autotag, threshold: Any, tag: str) -> tuple[Tag, int]:
    """Tag every item scoring at least `threshold` (curation's tag service, by query)."""
    value = threshold_clean(threshold)
    _scored(autotag)
    return tag_add_matching(
        dataset=autotag.dataset, name=tag, query=threshold_query(autotag, value)
    )


def autotag_slice(*, autotag: Autotag, user: Any, threshold: Any, name: str) -> tuple[Slice, int]:
    """A static slice of the items scoring at least `threshold` now."""
    value = threshold_clean(threshold)
    _scored(autotag)
    return slice_create_from_query(
        dataset=autotag.dataset,
        user=user,
        name=name,
        query=threshold_query(autotag, value),
        description=f"Autotag {autotag.name!r} >= {value:g} (round "
        f"{autotag.scored_round.number if autotag.scored_round else '?'})",
        dynamic=False,
    )


# --------------------------------------------------------------------- scoring job


def score_sql(dataset_id: int, model_id: int) -> str:
    """One chunk's scores: sigmoid(w·x + b) = 1 / (1 + exp((x <#> w) - b)), since `<#>` is
    -(w·x). Clamped so exp never overflows a double. Parameters: round, w, b, low, high."""
    return f"""
        INSERT INTO embeddings_autotagscore (round_id, item_id, score)
        SELECT %s, e.item_id,
            1.0 / (1.0 + exp(least(700.0, greatest(-700.0, (e.vector <#> %s::vector) - %s))))
        FROM {vec.TABLE} e
        WHERE e.dataset_id = {int(dataset_id)} AND e.model_id = {int(model_id)}
            AND e.item_id > %s AND e.item_id <= %s
        ON CONFLICT DO NOTHING
    """


_CHUNK_END_SQL = f"""
    SELECT item_id FROM {vec.TABLE}
    WHERE dataset_id = %s AND model_id = %s AND item_id > %s
    ORDER BY item_id OFFSET %s LIMIT 1
"""
_LAST_SQL = f"""
    SELECT max(item_id) FROM {vec.TABLE} WHERE dataset_id = %s AND model_id = %s
"""


BINS = 10


def score_histogram(round_id: int, bins: int = BINS) -> list[int]:
    """How many of the round's scores fall in each of `bins` equal bins of [0, 1]."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT least(width_bucket(score, 0, 1, %s), %s) AS b, count(*)"
            " FROM embeddings_autotagscore WHERE round_id = %s GROUP BY b",
            [bins, bins, round_id],
        )
        counts = {int(b): int(n) for b, n in cursor.fetchall()}
    return [counts.get(b, 0) for b in range(1, bins + 1)]


def chunk_score(round_: AutotagRound, weights: str, low: int, high: int) -> int:
    """Write the scores of the round's vectors with item ids in (low, high]; how many."""
    autotag = round_.autotag
    with connection.cursor() as cursor:
        cursor.execute(
            score_sql(autotag.dataset_id, autotag.model_id),
            [round_.pk, weights, round_.bias, low, high],
        )
        return int(cursor.rowcount)


def _chunk_end(dataset_id: int, model_id: int, after: int, last: int) -> int:
    """The item id that closes the chunk starting after `after` (_CHUNK vectors)."""
    with connection.cursor() as cursor:
        cursor.execute(_CHUNK_END_SQL, [dataset_id, model_id, after, _CHUNK - 1])
        row = cursor.fetchone()
    return int(row[0]) if row else last


def autotag_score_run(ctx: JobContext) -> dict[str, Any]:
    """The job: score the round's vectors chunk by chunk, then make it the current round."""
    current = (
        AutotagRound.objects.select_related("autotag", "autotag__model")
        .filter(pk=ctx.params["round_id"])
        .first()
    )
    if current is None:
        return {"skipped": "the autotag or its round was deleted"}
    autotag = current.autotag
    dataset_id, model_id = autotag.dataset_id, autotag.model_id
    state = dict(ctx.state) or {"last_id": 0, "done": 0, "seconds": 0.0}
    if "end" not in state:
        with connection.cursor() as cursor:
            cursor.execute(_LAST_SQL, [dataset_id, model_id])
            state["end"] = int(cursor.fetchone()[0] or 0)
        state["total"] = Embedding.objects.filter(dataset_id=dataset_id, model_id=model_id).count()
        ctx.set_total(state["total"])
    weights = vec.vector_literal(current.weights)
    started = time.monotonic()
    while state["last_id"] < state["end"]:
        low = state["last_id"]
        high = _chunk_end(dataset_id, model_id, low, state["end"])
        # The chunk's rows and the state that says they are written commit together; the
        # state dict is written when the block ends, so its count is this chunk's too.
        state = {**state, "last_id": high}
        with ctx.checkpoint(done=state["done"], state=state):
            state["done"] += chunk_score(current, weights, low, high)
    elapsed = float(state["seconds"]) + time.monotonic() - started
    state = {**state, "seconds": elapsed, "phase": "done"}
    with ctx.checkpoint(done=state["done"], state=state):
        current.status = AutotagRound.Status.SCORED
        current.finished = timezone.now()
        current.histogram = score_histogram(current.pk)
        current.item_count = sum(current.histogram)
        current.seconds = elapsed
        current.save(update_fields=["status", "finished", "item_count", "histogram", "seconds"])
        locked = Autotag.objects.select_for_update().get(pk=autotag.pk)
        newest = locked.scored_round
        # Rounds may finish out of order (two workers): the latest round's scores win.
        if newest is None or newest.number < current.number:
            locked.scored_round = current
            locked.save(update_fields=["scored_round"])
            newest = current
        AutotagScore.objects.filter(
            round__autotag=locked, round__status=AutotagRound.Status.SCORED
        ).exclude(round=newest).delete()
    return {
        "autotag": autotag.name,
        "round": current.number,
        "items": current.item_count,
        "random_weights": current.random_weights,
        "seconds": round(elapsed, 3),
    }
