"""The "quality" job: image quality signals for items ingested before there were any.

Ingest computes the signals from the image it decodes (curation/media.py); this job reads
the stored originals of the dataset's items that lack them, in id order, a batch at a
time. Each batch's values and the job's position (the last id done) commit in one
checkpoint, so an interrupted job resumes after the last committed batch: nothing is
computed twice and nothing is skipped. Items whose image cannot be read or decoded keep
no value and are listed as the job's errors.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.core.files.storage import default_storage
from django.db import connection

from curation.jobs import JobContext, job_create, job_runner
from curation.media import media_quality
from curation.models import Dataset, Item, Job
from curation.quality import QUALITY_COLUMNS, Quality

KIND = "quality"
# Items per checkpoint; reads of one batch overlap on this many threads (object storage
# answers in tens of milliseconds; Pillow decodes without the GIL).
_BATCH = 64
_READERS = 4


def items_without_quality(dataset: Dataset) -> Any:
    """The dataset's items with an image and no quality signals yet."""
    return Item.objects.filter(dataset=dataset, quality_brightness__isnull=True).exclude(
        media_key=""
    )


def quality_job_start(*, dataset: Dataset, user: Any) -> Job:
    """Queue the job that computes the quality signals of the items that lack them."""
    return job_create(kind=KIND, dataset=dataset, user=user, params={})


def _stored_quality(key: str) -> tuple[Quality | None, str]:
    """The signals of a stored image, or why there are none."""
    try:
        with default_storage.open(key, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        return None, f"cannot read the image: {exc}"
    quality = media_quality(data)
    return quality, "" if quality is not None else "the stored image does not decode"


_UPDATE = (
    "UPDATE curation_item i SET "
    + ", ".join(f"{c} = v.{c}" for c in QUALITY_COLUMNS)
    + " FROM unnest(%s::bigint[], "
    + ", ".join(
        "%s::boolean[]" if c == "quality_uniform" else "%s::float8[]" for c in QUALITY_COLUMNS
    )
    + f") AS v(id, {', '.join(QUALITY_COLUMNS)}) WHERE i.id = v.id"
)


@job_runner(KIND)
def quality_run(ctx: JobContext) -> dict[str, Any]:
    """Fill in the quality signals, batch by batch, resuming after the last checkpoint."""
    dataset = ctx.job.dataset
    assert dataset is not None
    state = dict(ctx.state)
    if "total" not in state:
        state.update(total=items_without_quality(dataset).count(), after=0, done=0, computed=0)
        ctx.set_total(state["total"])
    with ThreadPoolExecutor(_READERS, thread_name_prefix="quality-read") as pool:
        while True:
            batch = list(
                items_without_quality(dataset)
                .filter(id__gt=state["after"])
                .order_by("id")
                .values_list("id", "media_key")[:_BATCH]
            )
            if not batch:
                break
            computed: list[tuple[int, Quality]] = []
            errors: list[dict[str, Any]] = []
            found = pool.map(_stored_quality, [key for _, key in batch])
            for (item_id, _), (quality, problem) in zip(batch, found, strict=True):
                if quality is not None:
                    computed.append((item_id, quality))
                else:
                    errors.append({"item_id": item_id, "message": problem})
            state = {
                **state,
                "after": batch[-1][0],
                "done": state["done"] + len(batch),
                "computed": state["computed"] + len(computed),
            }
            with ctx.checkpoint(done=state["done"], state=state, errors=errors):
                if computed:
                    columns = list(zip(*(q.values() for _, q in computed), strict=True))
                    with connection.cursor() as cursor:
                        cursor.execute(
                            _UPDATE,
                            [[item_id for item_id, _ in computed], *map(list, columns)],
                        )
    return {"computed": state["computed"], "errors": ctx.job.error_count, "total": state["total"]}
