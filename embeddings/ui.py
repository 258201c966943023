"""The embeddings app in the UI: the vector panels it fills in curation's pages
(curation.ui.extensions), and the buttons that start embedding and duplicates jobs."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from curation.errors import Conflict, CurationError
from curation.models import Dataset, Item, Role
from curation.ui.extensions import Coverage, DuplicateTile, Results
from curation.ui.http import dataset_or_404, html_errors, next_url
from curation.ui.similarity import query_image_read
from curation.ui.state import GridState
from embeddings import search
from embeddings.duplicates import duplicates_job_start, latest_run
from embeddings.models import DatasetSearchDefault, DuplicateMember, Embedding, EmbeddingModel
from embeddings.selectors import default_model
from embeddings.selectors import models_of as embedding_models_of
from embeddings.services import embed_job_start

COVERAGE_CACHE_SECONDS = 60


def search_model(dataset: Dataset) -> EmbeddingModel | None:
    """The model the dataset's searches use, or None before it has any embeddings."""
    try:
        return default_model(dataset=dataset)
    except Conflict:
        return None


class EmbeddingsPanels:
    """Similarity search, neighbours, duplicates and coverage in curation's pages."""

    def search_model(self, dataset: Dataset) -> EmbeddingModel | None:
        return search_model(dataset)

    def random_weight_models(self, datasets: Iterable[Dataset]) -> list[EmbeddingModel]:
        ids = [d.pk for d in datasets]
        rows = (
            DatasetSearchDefault.objects.filter(dataset_id__in=ids, model__random_weights=True)
            .select_related("model")
            .order_by("model_id")
        )
        return list({row.model_id: row.model for row in rows}.values())

    def grid_results(self, state: GridState) -> Results:
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
                data = query_image_read(dataset=dataset, digest=state.image)
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

    def neighbours(self, item: Item, limit: int) -> tuple[list[tuple[Item, float]], str]:
        model = search_model(item.dataset)
        if model is None:
            return [], "No embeddings yet."
        try:
            found = search.search_item(dataset=item.dataset, model=model, item=item, limit=limit)
        except CurationError as exc:
            return [], exc.message
        return found.items_in_order(), ""

    def duplicate_group(self, item: Item) -> tuple[list[DuplicateTile], str]:
        try:
            run = latest_run(dataset=item.dataset)
        except CurationError:
            return [], "No duplicates job has run on this dataset."
        member = (
            DuplicateMember.objects.filter(group__run=run, item=item)
            .select_related("group")
            .first()
        )
        if member is None:
            return [], "No duplicates found for this item."
        members = (
            DuplicateMember.objects.filter(group=member.group)
            .select_related("item")
            .order_by("-is_representative", "id")
        )
        return [
            DuplicateTile(
                item=m.item,
                representative=m.is_representative,
                same_hash=m.same_hash,
                similarity=m.similarity,
            )
            for m in members
        ], ""

    def dataset_coverage(self, dataset: Dataset, item_count: int) -> Coverage | None:
        model = search_model(dataset)
        if model is None:
            return None
        key = f"ui:coverage:{dataset.pk}:{model.pk}"
        vectors = cache.get(key)
        if vectors is None:
            vectors = Embedding.objects.filter(dataset=dataset, model=model).count()
            cache.set(key, vectors, COVERAGE_CACHE_SECONDS)
        percent = 100.0 * vectors / item_count if item_count else 0.0
        return Coverage(model=model, vectors=vectors, percent=min(percent, 100.0))

    def models_coverage(self, dataset: Dataset, item_count: int) -> list[Coverage]:
        return [
            Coverage(
                model=model,
                vectors=model.vector_count,
                percent=min(100.0, 100.0 * model.vector_count / item_count) if item_count else 0.0,
            )
            for model in embedding_models_of(dataset=dataset)
            if model.vector_count or model.dataset_id == dataset.pk
        ]


# ---------------------------------------------------------------------------------- jobs


@require_POST
@login_required
@html_errors
def embed_start(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """Start embedding the items that have no vector yet under the configured model."""
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    back = next_url(request, reverse("ui:stats", args=[dataset.pk]))
    try:
        job = embed_job_start(dataset=dataset, user=request.user)
    except CurationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Embedding job #{job.pk} started; follow it on the jobs page.")
    return HttpResponseRedirect(back)


@require_POST
@login_required
@html_errors
def duplicates_start(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """Start a duplicates job with the dataset's search model (exact copies only without one)."""
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    back = next_url(request, reverse("ui:stats", args=[dataset.pk]))
    try:
        job = duplicates_job_start(dataset=dataset, user=request.user, model=search_model(dataset))
    except CurationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Duplicates job #{job.pk} started; follow it on the jobs page.")
    return HttpResponseRedirect(back)
