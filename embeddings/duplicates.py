"""Duplicates in a dataset: exact (same content hash) and near (similar embeddings).

The job never holds a dataset's vectors in Python. It walks the items that have a vector
in id order, a batch at a time, and asks the HNSW index for each item's nearest
neighbours in one SQL statement per batch (a LATERAL join); pairs at or above the
similarity threshold are stored as edges in the batch's checkpoint, so an interrupted job
resumes where it stopped. The last step joins the edges and the groups of equal SHA-256
with union-find (memory grows with the number of duplicates, not with the dataset),
picks a representative per group (the largest image, then the largest file, then the
oldest item) and stores the groups.

Default threshold: cosine similarity >= 0.95 (NUCLEUS_DUPLICATE_THRESHOLD). With CLIP
ViT-B-32 image embeddings, re-encoded, resized, slightly cropped or recoloured copies of
a photo score about 0.95-0.99 against it, while different shots of the same scene
usually stay below 0.93; 0.95 catches copies without merging merely similar images.
Near-duplicate results from random weights are not meaningful.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from curation.errors import NotFound, invalid_field
from curation.jobs import JobContext, job_create
from curation.models import Dataset, Item, Job, Slice, Tag
from embeddings import vectors as vec
from embeddings.models import (
    DuplicateEdge,
    DuplicateGroup,
    DuplicateMember,
    DuplicateRun,
    Embedding,
    EmbeddingModel,
    GroupKind,
)

DUPLICATES_JOB = "duplicates"
SELECTIONS = ("extras", "representatives", "members", "keep_one")
_BATCH = 500
_CHUNK = 5000


def duplicates_job_start(
    *,
    dataset: Dataset,
    user: Any,
    model: EmbeddingModel | None,
    threshold: float | None = None,
    neighbors: int | None = None,
) -> Job:
    """Start a duplicates job; without a model (no embeddings yet) it finds exact copies only."""
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
        },
    )


# --------------------------------------------------------------------------------- job


def near_pairs_sql(run: DuplicateRun, model: EmbeddingModel) -> str:
    """Each batch item's nearest neighbours at or above the threshold, one HNSW scan each.

    Takes two parameters: the batch's item ids and the largest cosine distance kept.
    """
    dim = int(model.dimension)
    model_id, dataset_id = int(model.pk), int(run.dataset_id)
    # Ranked through the index's own type (halfvec where it was built so), kept on the
    # full-precision distance.
    cast = vec.index_info(model_id, dataset_id)[2]
    return f"""
        SELECT a.item_id, n.item_id, 1 - n.distance
        FROM {vec.TABLE} a
        CROSS JOIN LATERAL (
            SELECT b.item_id, b.vector <=> a.vector AS distance
            FROM {vec.TABLE} b
            WHERE b.model_id = {model_id} AND b.dataset_id = {dataset_id}
            ORDER BY b.vector::{cast}({dim}) <=> a.vector::{cast}({dim})
            LIMIT {int(run.neighbors) + 1}
        ) n
        WHERE a.model_id = {model_id} AND a.dataset_id = {dataset_id} AND a.item_id = ANY(%s)
            AND n.item_id <> a.item_id AND n.distance <= %s
    """


def _near_pairs(
    run: DuplicateRun, model: EmbeddingModel, item_ids: Sequence[int]
) -> list[tuple[int, int, float]]:
    """Pairs (a < b, similarity) among each item's nearest neighbours."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL hnsw.ef_search = {max(40, 2 * (run.neighbors + 1))}")
        # A hair of slack so that exact copies (distance 0 up to float rounding) and pairs
        # right at the threshold are kept.
        cursor.execute(near_pairs_sql(run, model), [list(item_ids), 1.0 - run.threshold + 1e-6])
        pairs: dict[tuple[int, int], float] = {}
        for a, b, similarity in cursor.fetchall():
            key = (min(a, b), max(a, b))
            pairs[key] = max(pairs.get(key, -1.0), float(similarity))
    return [(a, b, s) for (a, b), s in pairs.items()]


def duplicates_run(ctx: JobContext) -> dict[str, Any]:
    """The duplicates job: near pairs batch by batch, then groups; resumable throughout."""
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
            ).pk
    run = DuplicateRun.objects.get(pk=state["run_id"])

    if model is not None:
        vectors = Embedding.objects.filter(model=model, dataset=dataset)
        if "total" not in state:
            state["total"] = vectors.count()
            ctx.set_total(state["total"])
        vec.vector_index_ensure(model=model, dataset=dataset)
        while True:
            batch = list(
                vectors.filter(item_id__gt=state["last_id"])
                .order_by("item_id")
                .values_list("item_id", flat=True)[:_BATCH]
            )
            if not batch:
                break
            pairs = _near_pairs(run, model, batch)
            next_state = {**state, "last_id": batch[-1], "done": state["done"] + len(batch)}
            with ctx.checkpoint(done=next_state["done"], state=next_state):
                DuplicateEdge.objects.bulk_create(
                    [DuplicateEdge(run=run, item_a=a, item_b=b, similarity=s) for a, b, s in pairs],
                    ignore_conflicts=True,
                )
            state = next_state

    with ctx.checkpoint(done=state.get("done", 0), state={**state, "finished": True}):
        summary = _groups_write(run, dataset, model)
    return {
        **summary,
        "run": run.pk,
        "threshold": run.threshold,
        "model": model.name if model else None,
    }


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        parent = self.parent
        root = parent.setdefault(x, x)
        while root != parent[root]:
            root = parent[root]
        while x != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


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


def _groups_write(
    run: DuplicateRun, dataset: Dataset, model: EmbeddingModel | None
) -> dict[str, int]:
    """Turn edges and equal hashes into stored groups; replaces earlier runs' groups."""
    DuplicateGroup.objects.filter(run=run).delete()
    uf = _UnionFind()
    for ids in _hash_groups(dataset):
        for other in ids[1:]:
            uf.union(ids[0], other)
    for a, b in (
        DuplicateEdge.objects.filter(run=run).values_list("item_a", "item_b").iterator(_CHUNK)
    ):
        uf.union(a, b)
    components: dict[int, list[int]] = defaultdict(list)
    for item_id in list(uf.parent):
        components[uf.find(item_id)].append(item_id)

    members = sorted(i for group in components.values() for i in group)
    facts: dict[int, tuple[int, int, str]] = {}
    for chunk in _chunks(members, _CHUNK):
        for item_id, width, height, size, sha in Item.objects.filter(id__in=chunk).values_list(
            "id", "width", "height", "byte_size", "sha256"
        ):
            facts[item_id] = ((width or 0) * (height or 0), size or 0, sha)

    groups: list[DuplicateGroup] = []
    plans: list[tuple[int, list[int]]] = []
    for ids in components.values():
        ids = [i for i in ids if i in facts]  # items deleted since their edge was found
        if len(ids) < 2:
            continue
        rep = max(ids, key=lambda i: (facts[i][0], facts[i][1], -i))
        hashes = {facts[i][2] for i in ids}
        exact = len(hashes) == 1 and "" not in hashes
        groups.append(
            DuplicateGroup(
                run=run,
                kind=GroupKind.EXACT if exact else GroupKind.NEAR,
                representative_id=rep,
                size=len(ids),
            )
        )
        plans.append((rep, sorted(ids)))
    DuplicateGroup.objects.bulk_create(groups, batch_size=_CHUNK)
    member_rows = [
        DuplicateMember(
            group=group,
            item_id=item_id,
            is_representative=item_id == rep,
            same_hash=facts[item_id][2] != "" and facts[item_id][2] == facts[rep][2],
            similarity=1.0 if item_id == rep else None,
        )
        for group, (rep, ids) in zip(groups, plans, strict=True)
        for item_id in ids
    ]
    DuplicateMember.objects.bulk_create(member_rows, batch_size=_CHUNK)
    if model is not None:
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
    run.item_count = len(member_rows)
    run.save(update_fields=["status", "finished", "group_count", "item_count"])
    return {
        "groups": len(groups),
        "exact_groups": sum(1 for g in groups if g.kind == GroupKind.EXACT),
        "near_groups": sum(1 for g in groups if g.kind == GroupKind.NEAR),
        "items": len(member_rows),
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
