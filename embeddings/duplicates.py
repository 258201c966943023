"""Duplicates in a dataset: exact (same content hash) and near (a perceptual hash, and
embedding similarity where the model's weights are real).

Three signals, each group saying which one made it and its distance:

- exact: items with the same SHA-256 are always a group of their own, whatever the near
  step finds; the near step then sees each such group as one item, its representative.
- perceptual hash (curation.phash, computed at ingest; this job fills it in for items
  ingested before): candidates are items whose whole-picture 64-bit pHash lies within
  NUCLEUS_DUPLICATE_HASH_CANDIDATES (12) bits of any of one item's four 64-bit hashes (the
  picture and three centred crops, so that cropped copies are found); a candidate is kept
  when the smallest distance between the two items' 256-bit hashes over their crops is
  at most NUCLEUS_DUPLICATE_HASH_DISTANCE (52 of 256). This signal needs no learned
  weights, so it works with random ones: on the demo (2000 items, seeds 0-3) it finds
  19-20 of the 20 planted near copies with 3-12 false groups (docs/embeddings.md).
- embedding: cosine similarity >= the threshold (NUCLEUS_DUPLICATE_THRESHOLD, 0.95),
  only when the model's weights are real. With CLIP ViT-B-32 image embeddings,
  re-encoded, resized, slightly cropped or recoloured copies of a photo score about
  0.95-0.99 against it, while different shots of the same scene usually stay below 0.93.
  With random weights every pair scores about 0.999, so the signal is left out.

Candidates for both near signals come from indexes, a batch of items per query
(embeddings/duplicate_candidates.py says how and why).

Near duplicates do not chain: a group is its representative and the items within the
distance of it (a star, not a connected component). Items are taken in the order a
representative is picked (the largest image, then the largest file, then the oldest
item); each one not yet in a group becomes a representative, and its neighbours not yet
in a group join it. With random weights a connected component of the similarity graph
once joined 1,987 of the demo's 2,000 items into one group.

The job never holds a dataset's vectors or hashes in Python: it walks the items in id
order, a batch at a time; pairs are stored as edges in the batch's checkpoint, so an
interrupted job resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.utils import timezone

from curation.errors import NotFound, invalid_field
from curation.jobs import JobContext, job_create
from curation.media import media_phashes
from curation.models import Dataset, Item, Job, Slice, Tag
from embeddings import duplicate_candidates as candidates
from embeddings import vectors as vec
from embeddings.models import (
    DuplicateEdge,
    DuplicateGroup,
    DuplicateMember,
    DuplicateRun,
    Embedding,
    EmbeddingModel,
    GroupKind,
    Signal,
)
from embeddings.pipeline import reader_count

DUPLICATES_JOB = "duplicates"
SELECTIONS = ("extras", "representatives", "members", "keep_one")
_BATCH = 500
_HASH_BATCH = 200  # images read from storage per checkpoint while filling in hashes
_CHUNK = 5000


def duplicates_job_start(
    *,
    dataset: Dataset,
    user: Any,
    model: EmbeddingModel | None,
    threshold: float | None = None,
    neighbors: int | None = None,
) -> Job:
    """Start a duplicates job; the embedding signal needs a model with real weights."""
    threshold = settings.NUCLEUS_DUPLICATE_THRESHOLD if threshold is None else threshold
    neighbors = settings.NUCLEUS_DUPLICATE_NEIGHBORS if neighbors is None else neighbors
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not 0 < threshold <= 1
    ):
        raise invalid_field("threshold", "must be a cosine similarity in (0, 1]")
    if isinstance(neighbors, bool) or not isinstance(neighbors, int) or not 1 <= neighbors <= 100:
        raise invalid_field("neighbors", "must be a whole number from 1 to 100")
    return job_create(
        kind=DUPLICATES_JOB,
        dataset=dataset,
        user=user,
        params={
            "model_id": model.pk if model else None,
            "model": model.name if model else None,
            "threshold": float(threshold),
            "neighbors": neighbors,
            "hash_candidates": int(settings.NUCLEUS_DUPLICATE_HASH_CANDIDATES),
            "hash_distance": int(settings.NUCLEUS_DUPLICATE_HASH_DISTANCE),
        },
    )


# --------------------------------------------------------------------------------- job


def _stored_hashes(key: str) -> tuple[tuple[int, bytes] | None, str]:
    """The hashes of a stored image, or why it could not be read."""
    try:
        with default_storage.open(key, "rb") as handle:
            return media_phashes(handle.read()), ""
    except OSError as exc:
        return None, f"cannot read the image: {exc}"


def _hashes_fill(ctx: JobContext, dataset: Dataset, state: dict[str, Any]) -> dict[str, Any]:
    """Compute the perceptual hashes of items ingested before there were any."""
    while True:
        batch = list(
            Item.objects.filter(
                dataset=dataset, id__gt=state.get("hashed_to", 0), phash__isnull=True
            )
            .exclude(media_key="")
            .order_by("id")
            .values_list("id", "media_key")[:_HASH_BATCH]
        )
        if not batch:
            return state
        computed: list[tuple[int, int, bytes]] = []
        errors: list[dict[str, Any]] = []
        # Reads overlap (object storage answers in tens of milliseconds; Pillow decodes
        # without the GIL), as the embedding pipeline's readers do.
        with ThreadPoolExecutor(max_workers=reader_count()) as pool:
            for (item_id, _), (hashes, problem) in zip(
                batch, pool.map(_stored_hashes, [key for _, key in batch]), strict=True
            ):
                if hashes is not None:
                    computed.append((item_id, *hashes))
                elif problem:
                    errors.append({"item_id": item_id, "message": problem})
        state = {
            **state,
            "hashed_to": batch[-1][0],
            "hashed": state.get("hashed", 0) + len(computed),
        }
        with ctx.checkpoint(done=state.get("done", 0), state=state, errors=errors):
            if computed:
                with connection.cursor() as cursor:
                    cursor.execute(
                        "UPDATE curation_item i SET phash = v.phash, phash_detail = v.detail"
                        " FROM unnest(%s::bigint[], %s::bigint[], %s::bytea[])"
                        " AS v(id, phash, detail) WHERE i.id = v.id",
                        [
                            [c[0] for c in computed],
                            [c[1] for c in computed],
                            [c[2] for c in computed],
                        ],
                    )


def duplicates_run(ctx: JobContext) -> dict[str, Any]:
    """The duplicates job: hashes, near pairs batch by batch, then groups; resumable."""
    dataset = ctx.job.dataset
    assert dataset is not None
    params = ctx.params
    model_id = params.get("model_id")
    model = EmbeddingModel.objects.filter(pk=model_id).first() if model_id else None
    state = dict(ctx.state)
    if "run_id" not in state:
        state.update(last_id=0, done=0)
        # The checkpoint saves `state` after its block, so the run id set inside commits
        # together with the run row.
        with ctx.checkpoint(done=0, state=state):
            state["run_id"] = DuplicateRun.objects.create(
                dataset=dataset,
                job=ctx.job,
                model=model,
                threshold=params["threshold"],
                neighbors=params["neighbors"],
                hash_distance=params.get("hash_distance", settings.NUCLEUS_DUPLICATE_HASH_DISTANCE),
                # Random weights score every pair about 0.999: not a signal.
                embedding_signal=model is not None and not model.random_weights,
            ).pk
    run = DuplicateRun.objects.get(pk=state["run_id"])
    hash_candidates = int(params.get("hash_candidates", settings.NUCLEUS_DUPLICATE_HASH_CANDIDATES))

    if "total" not in state:
        hashed = Item.objects.filter(dataset=dataset).exclude(media_key="").count()
        vectors = (
            Embedding.objects.filter(model=model, dataset=dataset).count()
            if run.embedding_signal and model is not None
            else 0
        )
        state["total"] = hashed + vectors
        ctx.set_total(state["total"])

    state = _hashes_fill(ctx, dataset, state)
    candidates.phash_index_ensure(dataset=dataset)
    items = Item.objects.filter(dataset=dataset, phash__isnull=False, phash_detail__isnull=False)
    while True:
        batch = list(
            items.filter(id__gt=state.get("hash_last_id", 0))
            .order_by("id")
            .values_list("id", "phash", "phash_detail")[:_BATCH]
        )
        if not batch:
            break
        pairs = candidates.hash_pairs(run, batch, hash_candidates)
        next_state = {
            **state,
            "hash_last_id": batch[-1][0],
            "done": state["done"] + len(batch),
        }
        with ctx.checkpoint(done=next_state["done"], state=next_state):
            DuplicateEdge.objects.bulk_create(
                [
                    DuplicateEdge(run=run, item_a=a, item_b=b, signal=Signal.PHASH, distance=d)
                    for a, b, d in pairs
                ],
                ignore_conflicts=True,
            )
        state = next_state

    if run.embedding_signal and model is not None:
        vectors_qs = Embedding.objects.filter(model=model, dataset=dataset)
        vec.vector_index_ensure(model=model, dataset=dataset)
        while True:
            ids = list(
                vectors_qs.filter(item_id__gt=state["last_id"])
                .order_by("item_id")
                .values_list("item_id", flat=True)[:_BATCH]
            )
            if not ids:
                break
            near = candidates.near_pairs(run, model, ids)
            next_state = {**state, "last_id": ids[-1], "done": state["done"] + len(ids)}
            with ctx.checkpoint(done=next_state["done"], state=next_state):
                # A pair the hashes found keeps that signal (ignore_conflicts).
                DuplicateEdge.objects.bulk_create(
                    [
                        DuplicateEdge(
                            run=run,
                            item_a=a,
                            item_b=b,
                            signal=Signal.EMBEDDING,
                            distance=1.0 - s,
                            similarity=s,
                        )
                        for a, b, s in near
                    ],
                    ignore_conflicts=True,
                )
            state = next_state

    with ctx.checkpoint(done=state.get("done", 0), state={**state, "finished": True}):
        summary = _groups_write(run, dataset, model)
    # Only this job reads the index, and keeping it would make every later ingest into
    # the dataset pay an HNSW insert per item (bulk ingest is meant to reach 20,000
    # items/s): the next run builds it again, in about the time it takes to walk it.
    candidates.phash_index_drop(dataset_id=dataset.pk)
    return {
        **summary,
        "run": run.pk,
        "threshold": run.threshold,
        "hash_distance": run.hash_distance,
        "model": model.name if model else None,
        "signals": ["exact", "phash"] + (["embedding"] if run.embedding_signal else []),
        "hashed": state.get("hashed", 0),
    }


def _hash_groups(dataset: Dataset) -> Iterator[list[int]]:
    """Ids of items sharing a content hash, one list per hash, streamed."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT array_agg(id ORDER BY id) FROM curation_item WHERE dataset_id = %s"
            " AND sha256 <> '' GROUP BY sha256 HAVING count(*) > 1",
            [dataset.pk],
        )
        while rows := cursor.fetchmany(_CHUNK):
            for (ids,) in rows:
                yield list(ids)


def _chunks(values: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _facts(item_ids: Iterable[int]) -> dict[int, tuple[int, int, str]]:
    """(pixels, bytes, sha256) of the items that still exist."""
    facts: dict[int, tuple[int, int, str]] = {}
    for chunk in _chunks(sorted(set(item_ids)), _CHUNK):
        for item_id, width, height, size, sha in Item.objects.filter(id__in=chunk).values_list(
            "id", "width", "height", "byte_size", "sha256"
        ):
            facts[item_id] = ((width or 0) * (height or 0), size or 0, sha)
    return facts


# An edge's signal in order of preference: where both found a pair, the hash's says more
# about a copy than a similarity of meaning.
_SIGNAL_RANK: dict[str, int] = {Signal.PHASH: 0, Signal.EMBEDDING: 1}


def _groups_write(
    run: DuplicateRun, dataset: Dataset, model: EmbeddingModel | None
) -> dict[str, int]:
    """Turn equal hashes and near edges into stored groups; replaces earlier runs' groups."""
    DuplicateGroup.objects.filter(run=run).delete()
    exact_sets = list(_hash_groups(dataset))
    edges: dict[tuple[int, int], tuple[str, float, float | None]] = {}
    for a, b, signal, distance, similarity in (
        DuplicateEdge.objects.filter(run=run)
        .values_list("item_a", "item_b", "signal", "distance", "similarity")
        .iterator(_CHUNK)
    ):
        edges[(a, b)] = (signal, distance, similarity)
    facts = _facts([i for ids in exact_sets for i in ids] + [i for pair in edges for i in pair])

    def preference(i: int) -> tuple[int, int, int]:
        return (facts[i][0], facts[i][1], -i)

    # plans: (kind, signal, representative, {member: (signal, distance, similarity)})
    plans: list[tuple[str, str, int, dict[int, tuple[str, float, float | None]]]] = []
    # Exact copies first, each set a group of its own; the near step sees its representative.
    standing_for: dict[int, int] = {}
    for ids in exact_sets:
        ids = [i for i in ids if i in facts]  # deleted since
        if len(ids) < 2:
            continue
        rep = max(ids, key=preference)
        plans.append(
            (GroupKind.EXACT, Signal.EXACT, rep, {i: (Signal.EXACT, 0.0, 1.0) for i in ids})
        )
        for i in ids:
            standing_for[i] = rep

    # Near: stars around representatives, never chains.
    neighbours: dict[int, dict[int, tuple[str, float, float | None]]] = {}
    for (a, b), found in edges.items():
        a, b = standing_for.get(a, a), standing_for.get(b, b)
        if a == b or a not in facts or b not in facts:
            continue
        for x, y in ((a, b), (b, a)):
            known = neighbours.setdefault(x, {}).get(y)
            if known is None or (_SIGNAL_RANK[found[0]], found[1]) < (
                _SIGNAL_RANK[known[0]],
                known[1],
            ):
                neighbours[x][y] = found
    taken: set[int] = set()
    for rep in sorted(neighbours, key=preference, reverse=True):
        if rep in taken:
            continue
        near = {i: e for i, e in neighbours[rep].items() if i not in taken}
        if not near:
            continue
        taken.add(rep)
        taken.update(near)
        signal = (
            Signal.PHASH if any(e[0] == Signal.PHASH for e in near.values()) else Signal.EMBEDDING
        )
        plans.append((GroupKind.NEAR, signal, rep, {rep: (signal, 0.0, 1.0), **near}))

    groups = [
        DuplicateGroup(
            run=run,
            kind=kind,
            signal=signal,
            distance=max((e[1] for e in members.values() if e[0] == signal), default=0.0),
            representative_id=rep,
            size=len(members),
        )
        for kind, signal, rep, members in plans
    ]
    DuplicateGroup.objects.bulk_create(groups, batch_size=_CHUNK)
    member_rows = [
        DuplicateMember(
            group=group,
            item_id=item_id,
            is_representative=item_id == rep,
            same_hash=facts[item_id][2] != "" and facts[item_id][2] == facts[rep][2],
            similarity=1.0 if item_id == rep else found[2],
            signal=found[0],
            distance=found[1],
        )
        for group, (_, _, rep, members) in zip(groups, plans, strict=True)
        for item_id, found in sorted(members.items())
    ]
    DuplicateMember.objects.bulk_create(member_rows, batch_size=_CHUNK)
    if model is not None and run.embedding_signal:  # random weights: 0.999 says nothing
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                UPDATE embeddings_duplicatemember m
                SET similarity = 1 - (em.vector <=> er.vector)
                FROM embeddings_duplicategroup g, {vec.TABLE} em, {vec.TABLE} er
                WHERE m.group_id = g.id AND g.run_id = %s AND NOT m.is_representative
                    AND em.model_id = %s AND em.item_id = m.item_id
                    AND er.model_id = %s AND er.item_id = g.representative_id
                """,
                [run.pk, model.pk, model.pk],
            )
    DuplicateEdge.objects.filter(run=run).delete()
    # Older finished runs are superseded; a run still going (another job) is left alone.
    DuplicateRun.objects.filter(
        dataset=dataset, status=DuplicateRun.Status.FINISHED, pk__lt=run.pk
    ).delete()
    run.status = DuplicateRun.Status.FINISHED
    run.finished = timezone.now()
    run.group_count = len(groups)
    run.item_count = len({m.item_id for m in member_rows})
    run.save(update_fields=["status", "finished", "group_count", "item_count"])
    return {
        "groups": len(groups),
        "exact_groups": sum(1 for g in groups if g.kind == GroupKind.EXACT),
        "near_groups": sum(1 for g in groups if g.kind == GroupKind.NEAR),
        "phash_groups": sum(1 for g in groups if g.signal == Signal.PHASH),
        "embedding_groups": sum(1 for g in groups if g.signal == Signal.EMBEDDING),
        "items": run.item_count,
    }


# ----------------------------------------------------------------------------- reading


def latest_run(*, dataset: Dataset) -> DuplicateRun:
    run = (
        DuplicateRun.objects.filter(dataset=dataset, status=DuplicateRun.Status.FINISHED)
        .order_by("-id")
        .first()
    )
    if run is None:
        raise NotFound("No finished duplicates job for this dataset yet.")
    return run


# ---------------------------------------------------------------------- tags and slices


def _selection_sql(
    run: DuplicateRun, select: str, group_ids: Sequence[int] | None
) -> tuple[str, list[Any]]:
    """SQL for the ids of the items `select` picks from the run's groups."""
    groups = "g.run_id = %s"
    params: list[Any] = [run.pk]
    if group_ids is not None:
        groups += " AND g.id = ANY(%s)"
        params.append(list(group_ids))
    members = (
        "SELECT m.item_id FROM embeddings_duplicatemember m "
        f"JOIN embeddings_duplicategroup g ON g.id = m.group_id WHERE {groups}"
    )
    if select == "members":
        return members, params
    if select == "representatives":
        return members + " AND m.is_representative", params
    if select == "extras":
        return members + " AND NOT m.is_representative", params
    # keep_one: the whole dataset but the extras, i.e. one item per group
    return (
        "SELECT i.id FROM curation_item i WHERE i.dataset_id = %s AND i.id NOT IN ("
        + members
        + " AND NOT m.is_representative)",
        [run.dataset_id, *params],
    )


@transaction.atomic
def duplicates_apply(
    *,
    dataset: Dataset,
    user: Any,
    target: str,
    name: str,
    select: str = "extras",
    group_ids: Sequence[int] | None = None,
    run: DuplicateRun | None = None,
) -> dict[str, Any]:
    """Tag, or put in a slice, items picked from duplicate groups; adding again is harmless.

    `select`: extras (every member but the representative: the copies to drop),
    representatives, members (all of them), or keep_one (the dataset with one item per
    group: everything except the extras).
    """
    if target not in ("tag", "slice"):
        raise invalid_field("target", "must be tag or slice")
    if select not in SELECTIONS:
        raise invalid_field("select", f"must be one of {', '.join(SELECTIONS)}")
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise invalid_field("name", "must be 1 to 200 characters")
    run = run or latest_run(dataset=dataset)
    if group_ids is not None:
        known = set(
            DuplicateGroup.objects.filter(run=run, id__in=group_ids).values_list("id", flat=True)
        )
        missing = [g for g in group_ids if g not in known]
        if missing:
            raise invalid_field("groups", f"no such groups in the current run: {missing[:20]}")
    sql, params = _selection_sql(run, select, group_ids)
    if target == "tag":
        owner: Tag | Slice = Tag.objects.get_or_create(dataset=dataset, name=name)[0]
        table, column = "curation_itemtag", "tag_id"
    else:
        owner = Slice.objects.get_or_create(
            dataset=dataset,
            name=name,
            defaults={"created_by": user if getattr(user, "is_authenticated", False) else None},
        )[0]
        table, column = "curation_sliceitem", "slice_id"
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({column}, item_id, added) SELECT %s, s.item_id, now() "
            f"FROM ({sql}) AS s(item_id) ON CONFLICT DO NOTHING",
            [owner.pk, *params],
        )
        added = int(cursor.rowcount)
    return {
        "target": target,
        "id": owner.pk,
        "name": name,
        "select": select,
        "added": added,
        "run": run.pk,
    }
