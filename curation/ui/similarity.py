"""Similarity search for the UI: which model a dataset searches with, whether its weights
are random, and query images kept in storage so a search by image has a shareable URL."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from curation.errors import Conflict, CurationError, InvalidInput, NotFound, field_error
from curation.media import MediaError, image_decode
from curation.models import Dataset, Item
from curation.ui.state import GridState
from embeddings import search
from embeddings.models import DatasetSearchDefault, EmbeddingModel
from embeddings.selectors import default_model


def search_model(dataset: Dataset) -> EmbeddingModel | None:
    """The model the dataset's searches use, or None before it has any embeddings."""
    try:
        return default_model(dataset=dataset)
    except Conflict:
        return None


def random_weight_models(datasets: Iterable[Dataset]) -> list[EmbeddingModel]:
    """The random-weights models that these datasets search with (for the banner)."""
    ids = [d.pk for d in datasets]
    rows = (
        DatasetSearchDefault.objects.filter(dataset_id__in=ids, model__random_weights=True)
        .select_related("model")
        .order_by("model_id")
    )
    return list({row.model_id: row.model for row in rows}.values())


def _image_key(dataset: Dataset, digest: str) -> str:
    return f"datasets/{dataset.pk}/uploads/search/{digest}"


def query_image_store(*, dataset: Dataset, data: bytes) -> str:
    """Keep a query image (content-addressed, so storing it twice is harmless); its hash."""
    if not data:
        raise InvalidInput("image: the file is empty", fields=[field_error("image", "is empty")])
    if len(data) > settings.NUCLEUS_MAX_IMAGE_BYTES:
        message = f"is larger than {settings.NUCLEUS_MAX_IMAGE_BYTES} bytes"
        raise InvalidInput(f"image: {message}", fields=[field_error("image", message)])
    # Only what ingest would accept is kept: stored uploads outlive the request, so
    # arbitrary bytes (or a decompression bomb) must not get a place in storage.
    try:
        image_decode(data)
    except MediaError as exc:
        raise InvalidInput(f"image: {exc}", fields=[field_error("image", str(exc))]) from None
    digest = hashlib.sha256(data).hexdigest()
    key = _image_key(dataset, digest)
    if not default_storage.exists(key):
        default_storage.save(key, ContentFile(data))
    return digest


def _query_image(dataset: Dataset, digest: str) -> bytes:
    try:
        with default_storage.open(_image_key(dataset, digest), "rb") as handle:
            return bytes(handle.read())
    except (FileNotFoundError, OSError):
        raise NotFound("The query image of this link is no longer stored; pick it again.") from None


@dataclass
class Results:
    model: EmbeddingModel | None
    hits: list[tuple[Item, float]] = field(default_factory=list)
    has_more: bool = False
    problem: str = ""  # why there are no results (no embeddings, no vector, bad image)
    query_item: Item | None = None


def results_for(state: GridState) -> Results:
    """Run the view's similarity search within its filtered items (one page)."""
    dataset = state.dataset
    model = search_model(dataset)
    if model is None:
        return Results(
            None, problem="This dataset has no embeddings yet: start an embedding job first."
        )
    flt = search.SearchFilter(items=state.items()) if state.is_filtered else None
    page = {"offset": state.page * state.limit, "limit": state.limit}
    try:
        if state.like is not None:
            item = Item.objects.filter(dataset=dataset, pk=state.like).first()
            if item is None:
                return Results(
                    model, problem="The item to find similar ones to is not in this dataset."
                )
            found = search.search_item(
                dataset=dataset, model=model, item=item, search_filter=flt, **page
            )
            outcome = Results(model, query_item=item)
        elif state.image:
            data = _query_image(dataset, state.image)
            found = search.search_image(
                dataset=dataset, model=model, image=data, search_filter=flt, **page
            )
            outcome = Results(model)
        else:
            found = search.search_text(
                dataset=dataset, model=model, text=state.text, search_filter=flt, **page
            )
            outcome = Results(model)
    except CurationError as exc:
        return Results(model, problem=exc.message)
    outcome.hits = found.items_in_order()
    outcome.has_more = found.has_more
    return outcome
