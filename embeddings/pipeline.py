"""The embedding pipeline: read and decode images in parallel, embed in batches, write in bulk.

Three stages overlap so the model never waits:

* the job's thread pages through the items (keyset by id), hands each page's images to a
  pool of reader threads (storage read + Pillow decode, which release the GIL), and
  writes finished batches to the database, each in one checkpoint: the vectors and the
  job's progress commit together, so a crash loses at most the batches in flight;
* the reader threads fetch the original, or the stored thumbnail when it is big enough
  for the model's input, and decode it at reduced size (JPEG draft mode);
* one encoder thread stacks a page into a batch and runs the model under
  ``torch.inference_mode()`` (on the GPU when there is one).

Only the job's own thread touches the database, so the pipeline sees what its caller's
transaction sees.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage
from django.db.models import Exists, OuterRef, QuerySet

from curation.errors import NotFound
from curation.itemsets import slice_items_q
from curation.jobs import JobContext
from curation.models import Dataset, Item, Slice
from embeddings import vectors as vec
from embeddings.clip import Encoder
from embeddings.imaging import DecodeError, pixels_decode, thumbnail_suffices
from embeddings.models import Embedding, EmbeddingModel

MODE_MISSING = "missing"
MODE_ALL = "all"
_LOOKAHEAD_PAGES = 3

# A caller that runs a job in its own process (manage.py embed) listens here for progress.
progress_listener: ContextVar[Callable[[int, int | None], None] | None] = ContextVar(
    "embedding_progress_listener", default=None
)


@dataclass(frozen=True)
class Source:
    """What the readers need to know about one item."""

    id: int
    reference_id: str
    media_key: str
    thumbnail_key: str
    width: int | None
    height: int | None


@dataclass
class Page:
    sources: list[Source]
    futures: list[Future[np.ndarray]]

    @property
    def last_id(self) -> int:
        return self.sources[-1].id


@dataclass
class Encoded:
    page: Page
    item_ids: list[int]
    vectors: np.ndarray
    errors: list[dict[str, Any]]


def items_to_embed(
    *, dataset: Dataset, model: EmbeddingModel, mode: str, slice_id: int | None
) -> QuerySet[Item]:
    """The items a job embeds: all of the dataset or slice, or those with no vector yet."""
    qs = Item.objects.filter(dataset=dataset)
    if slice_id:
        found = Slice.objects.filter(pk=slice_id, dataset=dataset).first()
        if found is None:
            raise NotFound(f"Slice {slice_id}, whose items this job embeds, was deleted.")
        # A dynamic slice has no member rows: its items are its query's matches now.
        qs = qs.filter(slice_items_q(found))
    if mode == MODE_MISSING:
        qs = qs.filter(~Exists(Embedding.objects.filter(model=model, item=OuterRef("pk"))))
    return qs.order_by("id")


def batch_size(device: str) -> int:
    configured = int(settings.NUCLEUS_EMBEDDING_BATCH_SIZE)
    if configured:
        return configured
    return 256 if device.startswith("cuda") else 64


def reader_count() -> int:
    configured = int(settings.NUCLEUS_EMBEDDING_READERS)
    return configured or min(32, 2 * (os.cpu_count() or 2))


def read_pixels(source: Source, size: int) -> np.ndarray:
    """Read an item's image from storage and decode it to the model's input size."""
    use_thumbnail = bool(source.thumbnail_key) and thumbnail_suffices(
        source.width, source.height, settings.NUCLEUS_THUMBNAIL_SIZE, size
    )
    key = source.thumbnail_key if use_thumbnail else source.media_key
    if not key:
        raise DecodeError("has no stored image")
    try:
        with default_storage.open(key, "rb") as handle:
            data = handle.read()
    except Exception as exc:  # storage backends raise many things (OSError, botocore)
        raise DecodeError(f"cannot read stored image {key!r}: {exc}") from None
    return pixels_decode(data, size)


def _pages(
    items: QuerySet[Item], after: int, size: int, pool: ThreadPoolExecutor, image_size: int
) -> Iterator[Page]:
    last = after
    while True:
        rows = list(
            items.filter(id__gt=last).values_list(
                "id", "reference_id", "media_key", "thumbnail_key", "width", "height"
            )[:size]
        )
        if not rows:
            return
        sources = [Source(*row) for row in rows]
        futures = [pool.submit(read_pixels, s, image_size) for s in sources]
        yield Page(sources, futures)
        last = sources[-1].id


def _encode_page(encoder: Encoder, page: Page) -> Encoded:
    ids: list[int] = []
    pixels: list[np.ndarray] = []
    errors: list[dict[str, Any]] = []
    for source, future in zip(page.sources, page.futures, strict=True):
        try:
            pixels.append(future.result())
            ids.append(source.id)
        except DecodeError as exc:
            errors.append(
                {"reference_id": source.reference_id, "path": "image", "message": str(exc)}
            )
    if pixels:
        vectors = encoder.encode_pixels(np.stack(pixels))
    else:
        vectors = np.empty((0, encoder.dimension), dtype=np.float32)
    return Encoded(page, ids, vectors, errors)


def _encoder_loop(
    encoder: Encoder, inbox: queue.Queue[Page | None], outbox: queue.Queue[Any]
) -> None:
    while True:
        page = inbox.get()
        if page is None:
            outbox.put(None)
            return
        try:
            outbox.put(_encode_page(encoder, page))
        except BaseException as exc:  # handed to the job's thread, which re-raises it
            outbox.put(exc)
            return


def embed_run(
    ctx: JobContext, *, encoder: Encoder, model: EmbeddingModel, dataset: Dataset
) -> dict[str, Any]:
    """Embed the job's items from where it last checkpointed; returns the job's result."""
    mode = ctx.params.get("mode", MODE_MISSING)
    items = items_to_embed(
        dataset=dataset, model=model, mode=mode, slice_id=ctx.params.get("slice_id")
    )
    state = dict(ctx.state)
    if "total" not in state:
        state.update(total=items.count(), last_id=0, done=0, written=0, failed=0)
        ctx.set_total(state["total"])
    listener = progress_listener.get()
    if listener:
        listener(state["done"], state["total"])

    inbox: queue.Queue[Page | None] = queue.Queue(maxsize=_LOOKAHEAD_PAGES)
    outbox: queue.Queue[Any] = queue.Queue()
    pool = ThreadPoolExecutor(reader_count(), thread_name_prefix="embed-read")
    encoder_thread = threading.Thread(
        target=_encoder_loop, args=(encoder, inbox, outbox), name="embed-encode", daemon=True
    )
    encoder_thread.start()
    in_flight = 0

    def write(result: Any) -> None:
        if isinstance(result, BaseException):
            raise result
        next_state = {
            **state,
            "last_id": result.page.last_id,
            "done": state["done"] + len(result.page.sources),
            "written": state["written"] + len(result.item_ids),
            "failed": state["failed"] + len(result.errors),
        }
        with ctx.checkpoint(done=next_state["done"], state=next_state, errors=result.errors):
            vec.vectors_write(
                model=model,
                dataset=dataset,
                item_ids=result.item_ids,
                vectors=result.vectors,
                overwrite=mode == MODE_ALL,
            )
        state.update(next_state)
        if listener:
            listener(state["done"], state["total"])

    try:
        for page in _pages(
            items, state["last_id"], batch_size(encoder.device), pool, encoder.image_size
        ):
            inbox.put(page)
            in_flight += 1
            # Keep a few pages decoding ahead; write whatever the encoder has finished.
            while in_flight >= _LOOKAHEAD_PAGES or not outbox.empty():
                write(outbox.get())
                in_flight -= 1
        inbox.put(None)
        while (result := outbox.get()) is not None:
            write(result)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        if encoder_thread.is_alive():
            # Unblock the encoder thread so it ends once its current page is done.
            try:
                while True:
                    inbox.get_nowait()
            except queue.Empty:
                pass
            inbox.put_nowait(None)
    return {
        "model": model.name,
        "random_weights": model.random_weights,
        "embedded": state["written"],
        "failed": state["failed"],
        "total": state["total"],
    }
