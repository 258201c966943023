"""Leaks between splits: items of one side (a slice or a tag, e.g. `train`) that are the
same picture as items of another (`test`), or nearly.

Four kinds of evidence, each pair saying which and its distance:

- same_item: the very item is on both sides (distance 0);
- exact: two items with the same SHA-256 of their bytes (distance 0);
- phash: the perceptual hashes the duplicates job uses (curation.phash): a candidate within
  NUCLEUS_DUPLICATE_HASH_CANDIDATES bits of one of the item's four 64-bit hashes, kept at
  a 256-bit distance <= NUCLEUS_DUPLICATE_HASH_DISTANCE (52). Found by the same indexed
  search as the duplicates job (embeddings/duplicate_candidates.py: hash_pairs), so
  cropped, resized and re-encoded copies count; items never hashed are skipped (the
  duplicates job hashes them) and counted in the job's result;
- embedding: cosine distance <= 1 - NUCLEUS_DUPLICATE_THRESHOLD (0.05) through the model's
  HNSW index (near_pairs), only when the model's weights are real: with random ones every
  pair is about 0.999 similar and would all leak.

A job computes the report, since at scale it walks a side with one index query per item:
the exact kinds are one set-based INSERT; then side A is walked in id order, a batch per
checkpoint, asking for each item's nearest hashes (and vectors) in the whole dataset and
keeping the neighbours on side B. The report keeps the pairs; `leaks_remove` takes the
leaking items out of one side through curation's own services (untag, or remove from a
static slice), in one click.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from curation.errors import NotFound, invalid_field
from curation.itemsets import item_ids_sql, slice_items_q
from curation.jobs import JobContext, job_create
from curation.models import Dataset, Item, ItemTag, Job, Slice, Tag
from curation.services import slice_remove, tag_remove
from embeddings import duplicate_candidates as candidates
from embeddings import vectors as vec
from embeddings.models import DuplicateRun, Embedding, EmbeddingModel
from insights.models import LeakPair, LeakReport

LEAKS_JOB = "insights_leaks"
KINDS = ("slice", "tag")
_BATCH = 500


@dataclass(frozen=True)
class Side:
    """One side of a leak check: a slice or a tag of the dataset."""

    kind: str  # "slice" or "tag"
    name: str
    pk: int

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.name}"

    def q(self, dataset: Dataset) -> Q:
        if self.kind == "slice":
            return slice_items_q(Slice.objects.get(pk=self.pk))
        return Q(dataset_id=dataset.pk) & Q(
            pk__in=ItemTag.objects.filter(tag_id=self.pk).values("item_id")
        )

    def items(self, dataset: Dataset) -> Any:
        return Item.objects.filter(self.q(dataset)).order_by()


def side_resolve(*, dataset: Dataset, raw: Any, field: str) -> Side:
    """`slice:<name>`, `tag:<name>` or a bare name (a slice, else a tag); 400 naming `field`."""
    if not isinstance(raw, str) or not raw.strip():
        raise invalid_field(field, "name a slice or a tag: slice:<name>, tag:<name> or <name>")
    text = raw.strip()
    kind, _, rest = text.partition(":")
    kinds: tuple[str, ...] = KINDS
    name = text
    if rest and kind in KINDS:
        kinds, name = (kind,), rest.strip()
    found: list[Side] = []
    if "slice" in kinds:
        found += [
            Side("slice", name, pk)
            for pk in Slice.objects.filter(dataset=dataset, name=name).values_list("pk", flat=True)
        ]
    if "tag" in kinds and not found:
        found += [
            Side("tag", name, pk)
            for pk in Tag.objects.filter(dataset=dataset, name=name).values_list("pk", flat=True)
        ]
    if not found:
        what = " or ".join(kinds)
        raise invalid_field(field, f"no {what} named {name!r} in this dataset")
    return found[0]


def leaks_job_start(
    *, dataset: Dataset, user: Any, a: Any, b: Any, model: EmbeddingModel | None
) -> Job:
    """Queue a leak report between sides `a` and `b` (validated here: 400 naming the field)."""
    side_a = side_resolve(dataset=dataset, raw=a, field="a")
    side_b = side_resolve(dataset=dataset, raw=b, field="b")
    if side_a == side_b:
        raise invalid_field("b", "must be another slice or tag than a")
    semantic = model is not None and not model.random_weights
    return job_create(
        kind=LEAKS_JOB,
        dataset=dataset,
        user=user,
        params={
            "a": [side_a.kind, side_a.name],
            "b": [side_b.kind, side_b.name],
            "model_id": model.pk if semantic and model is not None else None,
            "hash_candidates": int(settings.NUCLEUS_DUPLICATE_HASH_CANDIDATES),
            "hash_distance": int(settings.NUCLEUS_DUPLICATE_HASH_DISTANCE),
            "embedding_distance": (
                1.0 - float(settings.NUCLEUS_DUPLICATE_THRESHOLD) if semantic else None
            ),
            "neighbors": int(settings.NUCLEUS_DUPLICATE_NEIGHBORS),
        },
    )


# --------------------------------------------------------------------------------- job


def _side_of(dataset: Dataset, stored: Sequence[str], field: str) -> Side:
    return side_resolve(dataset=dataset, raw=f"{stored[0]}:{stored[1]}", field=field)


def _exact_insert(report: LeakReport, a_items: Any, b_items: Any) -> None:
    """The pairs of the same item on both sides, then of equal content hashes: two
    set-based statements (the second a hash join on sha256)."""
    a_sql, a_params = item_ids_sql(a_items)
    b_sql, b_params = item_ids_sql(b_items)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO insights_leakpair (report_id, item_a_id, item_b_id, evidence, distance)
            SELECT %s, x.id, x.id, 'same_item', 0 FROM curation_item x
            WHERE x.dataset_id = %s AND x.id IN ({a_sql}) AND x.id IN ({b_sql})
            ON CONFLICT DO NOTHING
            """,
            [report.pk, report.dataset_id, *a_params, *b_params],
        )
        cursor.execute(
            f"""
            INSERT INTO insights_leakpair (report_id, item_a_id, item_b_id, evidence, distance)
            SELECT %s, x.id, y.id, 'exact', 0
            FROM curation_item x JOIN curation_item y
                ON y.dataset_id = x.dataset_id AND y.sha256 = x.sha256 AND y.id <> x.id
            WHERE x.dataset_id = %s AND x.sha256 <> '' AND x.id IN ({a_sql}) AND y.id IN ({b_sql})
            ON CONFLICT DO NOTHING
            """,
            [report.pk, report.dataset_id, *a_params, *b_params],
        )


def _crossing(
    pairs: Sequence[tuple[int, int, float]], batch: set[int], b_items: Any
) -> list[tuple[int, int, float]]:
    """Of pairs (x, y, distance) with one end in the batch (side A), those whose other
    end is on side B, as (a, b, distance)."""
    ends: list[tuple[int, int, float]] = []
    for x, y, d in pairs:
        if x in batch:
            ends.append((x, y, d))
        if y in batch:
            ends.append((y, x, d))
    others = {b for _, b, _ in ends}
    on_b = set(b_items.filter(pk__in=others).values_list("pk", flat=True)) if others else set()
    best: dict[tuple[int, int], float] = {}
    for a, b, d in ends:
        if b in on_b and a != b:
            best[(a, b)] = min(d, best.get((a, b), d))
    return [(a, b, d) for (a, b), d in best.items()]


def _pairs_store(report: LeakReport, pairs: list[tuple[int, int, float]], evidence: str) -> None:
    LeakPair.objects.bulk_create(
        [
            LeakPair(report=report, item_a_id=a, item_b_id=b, evidence=evidence, distance=d)
            for a, b, d in pairs
        ],
        ignore_conflicts=True,  # a pair an earlier kind found keeps that kind
    )


def leaks_run(ctx: JobContext) -> dict[str, Any]:
    dataset = ctx.job.dataset
    assert dataset is not None
    params = ctx.params
    side_a = _side_of(dataset, params["a"], "a")
    side_b = _side_of(dataset, params["b"], "b")
    a_items, b_items = side_a.items(dataset), side_b.items(dataset)
    model_id = params.get("model_id")
    model = EmbeddingModel.objects.filter(pk=model_id).first() if model_id else None
    state = dict(ctx.state)
    if "report_id" not in state:
        state.update(done=0, hash_last_id=0, vector_last_id=0)
        with ctx.checkpoint(done=0, state=state):
            report = LeakReport.objects.create(
                dataset=dataset,
                job=ctx.job,
                a_kind=side_a.kind,
                a_name=side_a.name,
                b_kind=side_b.kind,
                b_name=side_b.name,
                model=model,
                hash_distance=params["hash_distance"],
                embedding_distance=params.get("embedding_distance") if model else None,
            )
            state["report_id"] = report.pk
            _exact_insert(report, a_items, b_items)
            total = a_items.count()
            state["total"] = total * (2 if model else 1)
        ctx.set_total(state["total"])
    report = LeakReport.objects.get(pk=state["report_id"])
    # The hash search's settings, as a duplicates run would hold them (never saved).
    search = DuplicateRun(
        dataset_id=dataset.pk,
        neighbors=params["neighbors"],
        hash_distance=params["hash_distance"],
        threshold=1.0 - (params.get("embedding_distance") or 0.0),
    )

    built = candidates.phash_index_ensure(dataset=dataset)
    hashed = a_items.filter(phash__isnull=False, phash_detail__isnull=False)
    while True:
        batch = list(
            hashed.filter(id__gt=state["hash_last_id"])
            .order_by("id")
            .values_list("id", "phash", "phash_detail")[:_BATCH]
        )
        if not batch:
            break
        pairs = candidates.hash_pairs(search, batch, int(params["hash_candidates"]))
        found = _crossing(pairs, {i for i, _, _ in batch}, b_items)
        state = {**state, "hash_last_id": batch[-1][0], "done": state["done"] + len(batch)}
        with ctx.checkpoint(done=state["done"], state=state):
            _pairs_store(report, found, LeakPair.Evidence.PHASH)
    if built:  # as the duplicates job does: ingest would otherwise pay an insert per item
        candidates.phash_index_drop(dataset_id=dataset.pk)

    if model is not None:
        vec.vector_index_ensure(model=model, dataset=dataset)
        with_vectors = Embedding.objects.filter(
            model=model, dataset=dataset, item_id__in=a_items.values("pk")
        )
        while True:
            ids = list(
                with_vectors.filter(item_id__gt=state["vector_last_id"])
                .order_by("item_id")
                .values_list("item_id", flat=True)[:_BATCH]
            )
            if not ids:
                break
            near = [(x, y, 1.0 - s) for x, y, s in candidates.near_pairs(search, model, ids)]
            found = _crossing(near, set(ids), b_items)
            state = {**state, "vector_last_id": ids[-1], "done": state["done"] + len(ids)}
            with ctx.checkpoint(done=state["done"], state=state):
                _pairs_store(report, found, LeakPair.Evidence.EMBEDDING)

    unhashed = a_items.filter(phash__isnull=True).exclude(media_key="").count()
    with ctx.checkpoint(done=state["done"], state={**state, "finished": True}):
        report.pair_count = LeakPair.objects.filter(report=report).count()
        report.status = LeakReport.Status.FINISHED
        report.finished = timezone.now()
        report.save(update_fields=["pair_count", "status", "finished"])
        # Older finished reports between other sides stay; the same sides' are superseded.
        LeakReport.objects.filter(
            dataset=dataset,
            a_kind=report.a_kind,
            a_name=report.a_name,
            b_kind=report.b_kind,
            b_name=report.b_name,
            pk__lt=report.pk,
        ).delete()
    counts = dict.fromkeys(LeakPair.Evidence.values, 0)
    for evidence in LeakPair.objects.filter(report=report).values_list("evidence", flat=True):
        counts[evidence] += 1
    return {
        "report": report.pk,
        "a": side_a.label,
        "b": side_b.label,
        "pairs": report.pair_count,
        **counts,
        "signals": ["same_item", "exact", "phash"] + (["embedding"] if model else []),
        "unhashed": unhashed,
    }


# ------------------------------------------------------------------------------ reading


def latest_report(*, dataset: Dataset, report_id: int | None = None) -> LeakReport:
    reports = LeakReport.objects.filter(dataset=dataset, status=LeakReport.Status.FINISHED)
    if report_id is not None:
        reports = reports.filter(pk=report_id)
    report = reports.order_by("-id").first()
    if report is None:
        raise NotFound("No such leak report." if report_id else "No leak report yet.")
    return report


# ------------------------------------------------------------------------------ removing


@transaction.atomic
def leaks_remove(*, report: LeakReport, side: str) -> dict[str, Any]:
    """Take every leaking item of one side ("a" or "b") out of it: untag it, or remove it
    from the (static) slice, through curation's services. The report's pairs are then
    resolved and dropped."""
    if side not in ("a", "b"):
        raise invalid_field("side", "must be a or b")
    dataset = report.dataset
    kind, name = (report.a_kind, report.a_name) if side == "a" else (report.b_kind, report.b_name)
    target = side_resolve(dataset=dataset, raw=f"{kind}:{name}", field="side")
    column = "item_a" if side == "a" else "item_b"
    refs = sorted(
        set(
            Item.objects.filter(
                pk__in=LeakPair.objects.filter(report=report).values(column)
            ).values_list("reference_id", flat=True)
        )
    )
    if target.kind == "slice":
        removed = slice_remove(slice=Slice.objects.get(pk=target.pk), reference_ids=refs)
    else:
        removed = tag_remove(dataset=dataset, name=name, reference_ids=refs)[1]
    LeakPair.objects.filter(report=report).delete()
    report.pair_count = 0
    report.save(update_fields=["pair_count"])
    return {"side": side, "removed_from": target.label, "removed": removed, "items": len(refs)}
