"""The embeddings app in the UI: the vector panels it fills in curation's pages
(curation.ui.extensions), and the buttons that start embedding and duplicates jobs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from curation.errors import Conflict, CurationError
from curation.models import Dataset, Item, Role
from curation.ui.extensions import Coverage, DuplicateTile, Results
from curation.ui.http import dataset_or_404, html_errors, next_url
from curation.ui.similarity import query_image_read
from curation.ui.state import GridState
from embeddings import search
from embeddings.duplicates import duplicates_apply, duplicates_job_start, latest_run
from embeddings.models import (
    DatasetSearchDefault,
    DuplicateGroup,
    DuplicateMember,
    DuplicateRun,
    Embedding,
    EmbeddingModel,
    Signal,
)
from embeddings.selectors import (
    default_model,
    duplicate_group_in,
    duplicate_group_of,
    duplicate_groups,
    duplicate_members,
)
from embeddings.selectors import models_of as embedding_models_of
from embeddings.services import embed_job_start

COVERAGE_CACHE_SECONDS = 60
ITEM_STRIP = 12  # members of its duplicate group an item page shows
GROUPS_PER_PAGE = 20
GROUP_MEMBERS = 200  # members one group's page shows


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
        group = duplicate_group_of(run=run, item_id=item.pk)
        if group is None:
            return [], "No duplicates found for this item."
        # A bounded strip: the group's page holds the rest.
        url = reverse("embeddings-ui:duplicates-page", args=[item.dataset_id])
        return [
            DuplicateTile(
                item=m.item,
                representative=m.is_representative,
                same_hash=m.same_hash,
                similarity=m.similarity,
                signal=Signal(group.signal).label,
                group_url=f"{url}?group={group.pk}",
                group_size=group.size,
            )
            for m in duplicate_members(group=group, limit=ITEM_STRIP)
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


# ---------------------------------------------------------------------------- duplicates


@dataclass
class GroupRow:
    """A duplicate group as the duplicates page shows it."""

    group: DuplicateGroup
    signal: str
    distance: str
    members: list[DuplicateMember]


def _distance_text(group: DuplicateGroup) -> str:
    if group.signal == Signal.EXACT:
        return "same bytes"
    if group.signal == Signal.PHASH:
        return f"≤ {group.distance:.0f} of 256 bits"
    return f"cosine distance ≤ {group.distance:.4f}"


def _page_number(request: HttpRequest) -> int:
    raw = request.GET.get("page", "")
    return int(raw) if raw.isdigit() and len(raw) < 7 else 0


@login_required
@html_errors
def duplicates_page(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """The groups of the latest duplicates job: representative, signal, distance; paginated."""
    dataset = dataset_or_404(request, dataset_id)
    run: DuplicateRun | None
    try:
        run = latest_run(dataset=dataset)
    except CurationError:
        run = None
    page = _page_number(request)
    rows: list[GroupRow] = []
    has_more = False
    one = request.GET.get("group", "")
    if run is not None:
        if one.isdigit() and len(one) < 19:
            found = duplicate_group_in(run=run, group_id=int(one))
            groups = [found] if found is not None else []
            limit = GROUP_MEMBERS
        else:
            one = ""
            groups = duplicate_groups(
                run=run, kind=None, offset=page * GROUPS_PER_PAGE, limit=GROUPS_PER_PAGE + 1
            )
            has_more = len(groups) > GROUPS_PER_PAGE
            groups = groups[:GROUPS_PER_PAGE]
            limit = ITEM_STRIP
        rows = [
            GroupRow(
                group=g,
                signal=Signal(g.signal).label,
                distance=_distance_text(g),
                members=duplicate_members(group=g, limit=limit),
            )
            for g in groups
        ]
    return render(
        request,
        "ui/duplicates.html",
        {
            "dataset": dataset,
            "run": run,
            "rows": rows,
            "page": page,
            "has_more": has_more,
            "one_group": bool(one),
            "can_curate": dataset.user_role in (Role.CURATOR, Role.ADMIN),
            "random_weight_models": EmbeddingsPanels().random_weight_models([dataset]),
        },
    )


@require_POST
@login_required
@html_errors
def duplicates_keep_one(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """Keep one item per group: tag the extra copies, or make a slice of what is kept."""
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    back = next_url(request, reverse("embeddings-ui:duplicates-page", args=[dataset.pk]))
    target = request.POST.get("target", "")
    select = "keep_one" if target == "slice" else "extras"
    try:
        result = duplicates_apply(
            dataset=dataset,
            user=request.user,
            target=target,
            name=request.POST.get("name", ""),
            select=select,
        )
    except CurationError as exc:
        messages.error(request, exc.message)
    else:
        what = "tagged" if target == "tag" else "added to the slice"
        messages.success(request, f"{result['added']} items {what} {result['name']!r}.")
    return HttpResponseRedirect(back)
