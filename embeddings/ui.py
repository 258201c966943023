"""The embeddings app in the UI: the vector panels it fills in curation's pages
(curation.ui.extensions), and the buttons that start embedding and duplicates jobs."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from curation.errors import CurationError, NotFound
from curation.models import Dataset, Item, Job, Role
from curation.params import int_value
from curation.selectors import item_of
from curation.ui.extensions import Coverage, DuplicateTile, Results
from curation.ui.http import dataset_or_404, html_errors, next_url
from curation.ui.similarity import query_image_read
from curation.ui.state import GridState
from embeddings import search
from embeddings.duplicates import duplicates_apply, duplicates_job_start, latest_run
from embeddings.models import DuplicateGroup, DuplicateMember, DuplicateRun, EmbeddingModel, Signal
from embeddings.selectors import (
    default_model_or_none,
    duplicate_group_in,
    duplicate_group_of,
    duplicate_groups,
    duplicate_members,
    random_weight_defaults,
    vector_count,
)
from embeddings.selectors import models_of as embedding_models_of
from embeddings.services import embed_job_start

COVERAGE_CACHE_SECONDS = 60
ITEM_STRIP = 12  # members of its duplicate group an item page shows
GROUPS_PER_PAGE = 20
GROUP_MEMBERS = 200  # members one group's page shows
MAX_PAGE = 10**6  # of duplicate groups (20 each): past any run's groups, within OFFSET's range
MAX_ID = 10**18 - 1  # a group id has at most 18 digits here (bigint holds 19)


def search_model(dataset: Dataset) -> EmbeddingModel | None:
    """The model the dataset's searches use, or None before it has any embeddings."""
    return default_model_or_none(dataset=dataset)


class EmbeddingsPanels:
    """Similarity search, neighbours, duplicates and coverage in curation's pages."""

    def search_model(self, dataset: Dataset) -> EmbeddingModel | None:
        return search_model(dataset)

    def random_weight_models(self, datasets: Iterable[Dataset]) -> list[EmbeddingModel]:
        return random_weight_defaults(dataset_ids=[d.pk for d in datasets])

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
                try:
                    item = item_of(dataset=dataset, item_id=state.like)
                except NotFound:
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
            vectors = vector_count(dataset=dataset, model=model)
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


def _job_button(
    request: HttpRequest, dataset_id: int, what: str, start: Callable[[Dataset, object], Job]
) -> HttpResponse:
    """Start a job for a curator, then back to the page the button was on, with a message."""
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    back = next_url(request, reverse("ui:stats", args=[dataset.pk]))
    try:
        job = start(dataset, request.user)
    except CurationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{what} job #{job.pk} started; follow it on the jobs page.")
    return HttpResponseRedirect(back)


@require_POST
@login_required
@html_errors
def embed_start(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """Start embedding the items that have no vector yet under the configured model."""
    return _job_button(
        request, dataset_id, "Embedding", lambda d, u: embed_job_start(dataset=d, user=u)
    )


@require_POST
@login_required
@html_errors
def duplicates_start(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """Start a duplicates job with the dataset's search model (exact copies and perceptual
    hashes only without one)."""
    return _job_button(
        request,
        dataset_id,
        "Duplicates",
        lambda d, u: duplicates_job_start(dataset=d, user=u, model=search_model(d)),
    )


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


def _optional_int(request: HttpRequest, name: str, *, low: int, high: int) -> int | None:
    """An optional integer parameter: absent or empty is None, a bad one a 400 naming it."""
    raw = request.GET.get(name, "")
    return int_value(raw, name, low=low, high=high) if raw else None


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
    page = _optional_int(request, "page", low=0, high=MAX_PAGE) or 0
    one = _optional_int(request, "group", low=1, high=MAX_ID)
    rows: list[GroupRow] = []
    has_more = False
    if run is not None:
        if one is not None:
            found = duplicate_group_in(run=run, group_id=one)
            groups = [found] if found is not None else []
            limit = GROUP_MEMBERS
        else:
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
            "one_group": one is not None,
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
