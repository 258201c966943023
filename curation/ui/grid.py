"""The grid of a dataset or a slice: thumbnails with filters, the query bar, similarity
search and facets, and the small htmx endpoints around it (count, facets). The query
bar's own endpoints (check, completion) are in curation.ui.query.
The selection's actions are in curation.ui.selection, the item page in curation.ui.item."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.html import escape
from django.views.decorators.http import require_GET, require_safe

from curation import facets, paging, selectors, vocabulary
from curation.errors import InvalidInput
from curation.filters import parse_value
from curation.models import Dataset, Item, Role, Slice
from curation.quality import FLAGS, FLAGS_BY_KEY
from curation.storage import media_url
from curation.ui.charts import number_label
from curation.ui.extensions import Results, selection_actions, vector_panels
from curation.ui.http import dataset_or_404, html_errors
from curation.ui.outcomes import RunView, match_order_page, page_shapes, run_view
from curation.ui.overlays import BoxLabel, Shape, box_labels, describe
from curation.ui.query import query_error_of
from curation.ui.score_facets import score_chips, score_sections
from curation.ui.scores import distance_texts
from curation.ui.sorting import sort_keys, sort_text
from curation.ui.state import SCORE_PREFIX, TILE_SIZES, GridState

COUNT_CAP = 10_000
OPERATOR_SIGNS = {"": "=", "eq": "=", "ne": "≠", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤"}


@dataclass
class Tile:
    item: Item
    thumbnail: str | None
    shapes: list[Shape] = field(default_factory=list)
    score: float | None = None
    score_text: str = ""  # the score as a distance with the digits that tell results apart
    rank: int = 0  # 1 for the best search result
    open_url: str = ""
    similar_url: str = ""
    is_query: bool = False
    sort_text: str = ""  # the item's value of the grid's sort key (or order by matches)

    @property
    def box_labels(self) -> list[BoxLabel]:
        return box_labels(self.shapes, width=self.item.width, height=self.item.height)

    @property
    def alt(self) -> str:
        """The thumbnail's text alternative: reference id and the labels drawn on it."""
        return describe(self.item.reference_id, self.shapes)


@dataclass(frozen=True)
class FacetRow:
    """A label, tag or slice in the facet sidebar: its count, whether it is on, the link
    that toggles it."""

    name: str
    count: int
    active: bool
    url: str
    colour: str = ""  # labels
    id: int | None = None  # slices
    dynamic: bool = False  # slices
    page: str = ""  # slices: the slice's own page
    key: str = ""  # quality facets: the `quality` parameter's value


@dataclass(frozen=True)
class ValueRow:
    """A value of a metadata key with few distinct values, as a facet row."""

    value: str
    count: int
    active: bool
    url: str


@dataclass
class MetadataFacet:
    """A metadata key in the sidebar: its values (kind "category") or its range and the
    range filter's current bounds (kind "number")."""

    key: str
    kind: str
    present: int
    param: str
    values: list[ValueRow] = field(default_factory=list)
    minimum: str = ""
    maximum: str = ""
    gte: str = ""
    lte: str = ""
    active: bool = False  # a filter on the key is on: _facets.html keeps it open


@dataclass(frozen=True)
class Facets:
    labels: list[FacetRow]
    tags: list[FacetRow]
    slices: list[FacetRow]
    metadata: list[MetadataFacet]
    quality: list[FacetRow] = field(default_factory=list)


@dataclass(frozen=True)
class Chip:
    """A filter that is on, with the link that takes it off."""

    text: str
    url: str
    search: bool = False


def item_url(dataset: Dataset, item_id: int, querystring: str = "") -> str:
    """The item view, keeping the grid's state so it can step through the same view."""
    path = reverse("ui:item", args=[dataset.pk, item_id])
    return f"{path}?{querystring}" if querystring else path


def _tiles(
    state: GridState,
    items: list[tuple[Item, float | None]],
    base: str,
    runs: RunView | None = None,
) -> list[Tile]:
    run = runs.run if runs is not None else None
    shapes = page_shapes(state, run, [i.pk for i, _ in items])
    querystring = state.querystring(drop=("after", "before"))
    scored = [score for _, score in items if score is not None]
    texts = iter(distance_texts(scored))
    rank = state.page * state.limit  # of the best result on this page, less one
    tiles = []
    for item, score in items:
        tile = Tile(
            item=item,
            thumbnail=media_url(item, "thumbnail") or media_url(item, "original"),
            shapes=shapes.get(item.pk, []),
            score=score,
            open_url=item_url(state.dataset, item.pk, querystring),
            similar_url=state.refilter(base, {"like": item.pk, "text": None, "image": None}),
        )
        if score is not None:
            rank += 1
            tile.rank, tile.score_text = rank, next(texts)
        tiles.append(tile)
    return tiles


def _facets(
    state: GridState,
    summary: facets.Summary,
    base: str,
    others: dict[str, facets.Summary] | None = None,
) -> Facets:
    """Every facet with its count, whether it is on, and the link that toggles it.

    A facet group that is on counts the view without its own filter (`others`, by
    parameter name), as multi-select facets do: choosing rain keeps fog listed, with the
    number of items it would add."""
    others = others or {}
    labels = [
        FacetRow(
            name=lc.label,
            count=lc.items,
            colour=state.colours(lc.label),
            active=lc.label in state.labels,
            url=state.toggled(base, "label", lc.label),
        )
        for lc in others.get("label", summary).labels
    ]
    tags = [
        FacetRow(
            name=name,
            count=count,
            active=name in state.tags,
            url=state.toggled(base, "tag", name),
        )
        for _, name, count in others.get("tag", summary).tags
    ]
    slices = [
        FacetRow(
            id=sid,
            name=name,
            count=count,
            dynamic=dynamic,
            active=str(sid) in state.slice_ids,
            # The API's `slice` filter reads memberships, which a dynamic slice has none
            # of: its facet opens the slice's own page instead.
            url=reverse("ui:slice", args=[state.dataset.pk, sid])
            if dynamic
            else state.toggled(base, "slice", str(sid)),
            page=reverse("ui:slice", args=[state.dataset.pk, sid]),
        )
        for sid, name, count, dynamic in summary.slices
    ]
    metadata = []
    for key in summary.metadata:
        param = f"metadata.{key.key}"
        if param in others:  # its values as the view without this key's own filter has them
            key = next((k for k in others[param].metadata if k.key == key.key), key)
        current = state.params.get(param, [])
        entry = MetadataFacet(
            key=key.key,
            kind=key.kind,
            present=key.present,
            param=param,
            active=any(name in state.params for name in (param, f"{param}__gte", f"{param}__lte")),
        )
        if key.kind == "category":
            entry.values = [
                ValueRow(
                    value=v.value,
                    count=v.count,
                    active=_literal(v.value) in current,
                    # adds the value to the key's (any of them), or takes it off
                    url=state.toggled(base, param, _literal(v.value)),
                )
                for v in key.values
            ]
        elif key.kind == "number":
            entry.minimum = number_label(key.minimum)
            entry.maximum = number_label(key.maximum)
            entry.gte = (state.params.get(f"{param}__gte") or [""])[0]
            entry.lte = (state.params.get(f"{param}__lte") or [""])[0]
        metadata.append(entry)
    figures = others.get("quality", summary).quality
    quality = [
        FacetRow(
            name=flag.label,
            key=flag.key,
            count=figures.flags.get(flag.key, 0),
            active=flag.key in state.quality,
            url=state.toggled(base, "quality", flag.key),
        )
        for flag in FLAGS
        # Facets with no items are left out, except one that is on (to turn it off).
        if figures is not None and (figures.flags.get(flag.key) or flag.key in state.quality)
    ]
    return Facets(labels=labels, tags=tags, slices=slices, metadata=metadata, quality=quality)


def _literal(value: str) -> str:
    """A metadata value as the API's filter parameter writes it: text that would read as a
    number or a JSON literal is quoted, so it stays text (see curation.filters)."""
    try:
        typed = parse_value(value)
    except ValueError:  # a number too long to read: quoting keeps it text
        return f'"{value}"'
    return value if isinstance(typed, str) and not value.startswith('"') else f'"{value}"'


def _chips(state: GridState, base: str, results: Results | None) -> list[Chip]:
    """The filters that are on, each with a link that takes it off."""
    chips = [
        Chip(text=f"label: {label}", url=state.toggled(base, "label", label))
        for label in state.labels
    ]
    chips += [Chip(text=f"tag: {tag}", url=state.toggled(base, "tag", tag)) for tag in state.tags]
    chips += [
        Chip(text=f"quality: {FLAGS_BY_KEY[key].label}", url=state.toggled(base, "quality", key))
        for key in state.quality
    ]
    chips += [Chip(text=text, url=url) for text, url in score_chips(state, base)]
    names = selectors.slice_names(dataset=state.dataset, slice_ids=state.slice_ids)
    chips += [
        Chip(text=f"slice: {names.get(sid, sid)}", url=state.toggled(base, "slice", sid))
        for sid in state.slice_ids
    ]
    for name, value in state.metadata_filters:
        key, _, op = name.removeprefix("metadata.").partition("__")
        chips.append(
            Chip(
                text=f"{key} {OPERATOR_SIGNS.get(op, op)} {value}",
                url=state.toggled(base, name, value),
            )
        )
    if state.search_mode:
        if state.like is not None:
            query_item = results.query_item if results is not None else None
            text = f"similar to {query_item.reference_id if query_item else state.like}"
        elif state.image:
            text = "similar to the uploaded image"
        else:
            text = f"text: “{state.text}”"
        chips.insert(
            0, Chip(text=text, url=state.without(base, ("text", "like", "image")), search=True)
        )
    return chips


def _sorted_listing(
    state: GridState, runs: RunView, base: str
) -> tuple[list[Tile], dict[str, str]]:
    """One page of the view's items in the order of a run's matches (`match_order`)."""
    rows, pager = match_order_page(state, runs, base)
    tiles = _tiles(state, [(i, None) for i, _ in rows], base, runs)
    for tile, (_, text) in zip(tiles, rows, strict=True):
        tile.sort_text = text
    return tiles, pager


def _id_listing(
    state: GridState, base: str, runs: RunView | None = None
) -> tuple[list[Tile], dict[str, str]]:
    """One keyset page of the view's items, in id order or in its sort order, and its links."""
    order = state.sort_order()
    if order is None:
        page = paging.items_keyset_page(
            state.items(), after=state.after, before=state.before, limit=state.limit
        )
    else:
        page = paging.items_sorted_page(
            state.items(), order=order, after=state.after, before=state.before, limit=state.limit
        )
    tiles = _tiles(state, [(i, None) for i in page.items], base, runs)
    if order is not None:
        for tile in tiles:
            tile.sort_text = sort_text(getattr(tile.item, "sort_value", None))
    if not tiles:
        return tiles, {}
    return tiles, {
        "next": state.url(base, {"after": tiles[-1].item.pk, "before": None})
        if page.has_next
        else "",
        "previous": state.url(base, {"before": tiles[0].item.pk, "after": None})
        if page.has_previous
        else "",
        "first": state.url(base, {"before": None, "after": None}) if page.has_previous else "",
    }


def _search_listing(
    state: GridState, results: Results, base: str, runs: RunView | None = None
) -> tuple[list[Tile], dict[str, str]]:
    """One page of search results, best first, led by the query item on the first page."""
    hits: list[tuple[Item, float | None]] = list(results.hits)
    lead = results.query_item is not None and state.page == 0
    if lead:
        hits.insert(0, (results.query_item, None))  # type: ignore[arg-type]
    tiles = _tiles(state, hits, base, runs)
    if lead:
        tiles[0].is_query = True
    return tiles, {
        "next": state.url(base, {"page": state.page + 1}) if results.has_more else "",
        "previous": state.url(base, {"page": state.page - 1 if state.page > 1 else None})
        if state.page
        else "",
    }


def grid_render(
    request: HttpRequest,
    dataset: Dataset,
    base_slice: Slice | None,
    base: str,
    extra: dict[str, Any],
) -> HttpResponse:
    """The grid page of a dataset, or of `base_slice` (whose page adds `extra` to it)."""
    try:
        state = GridState(request.GET, dataset=dataset, base_slice=base_slice)
        # Counting facets takes a few hundred ms at 1M items (a 5,000-item sample,
        # several aggregates): the grid never waits for it. With the figures cached they are in
        # the page; otherwise the sidebar asks for them (facets_panel) once it has loaded.
        refresh = request.GET.get("refresh") == "1"
        summary = None if refresh else facets.cached_summary(dataset, facet_basis(state))
        others = None if summary is None else group_summaries(state, cached_only=True)
        if others is None:
            summary = None  # the sidebar asks for every figure it needs in one request
        query_error = query_error_of(state)
        warnings = (
            vocabulary.query_warnings(state.q, dataset=dataset, cached_only=True)
            if query_error is None and state.q.strip()
            else []
        )
        tiles: list[Tile] = []
        pager: dict[str, str] = {}
        results: Results | None = None
        runs = run_view(state)
        if query_error is not None or extra.get("slice_problem"):
            pass  # nothing to list until the query (or the slice's saved query) is fixed
        elif state.search_mode:
            results = vector_panels().grid_results(state)
            tiles, pager = _search_listing(state, results, base, runs)
        elif runs.order:
            tiles, pager = _sorted_listing(state, runs, base)
        else:
            tiles, pager = _id_listing(state, base, runs)
    except InvalidInput as exc:
        # A hand-edited link (a bad cursor, confidence or filter): say what is wrong.
        context = {
            "message": exc.message,
            "fields": exc.fields,
            "dataset": dataset,
            "clear_url": base,
        }
        return render(request, "ui/error.html", context, status=400)
    model = vector_panels().search_model(dataset)
    models = selectors.model_choices(dataset=dataset)
    can_curate = dataset.user_role in (Role.CURATOR, Role.ADMIN)
    saved_query, why_not = state.view_query()
    context = {
        "tab": "items",
        "dataset": dataset,
        "slice": base_slice,
        "state": state,
        "base": base,
        **_sidebar(state, summary, base, others),
        # `refresh` is dropped from the view's links; the panel must still count anew.
        "facets_url": state.url(
            _panel_path(dataset, base_slice), {"refresh": "1"} if refresh else None
        ),
        # Static slices that a selection can be added to.
        "slice_choices": [
            (s.pk, s.name) for s in selectors.slices_of(dataset=dataset) if not s.is_dynamic
        ],
        "chips": _chips(state, base, results),
        "clear_url": base,
        "query_error": query_error,
        "query_warnings": warnings or [],
        # Not counted yet: the query bar's feedback asks for them once the page is shown.
        "warnings_later": warnings is None,
        "query_param": urlencode({"query": state.q}),
        "tiles": tiles,
        "results": results,
        "pager": pager,
        "search_model": model,
        "models": models,
        "runs": runs,
        "sort_keys": sort_keys([name for _, name in models]),
        "tile_px": TILE_SIZES[state.size],
        "size_links": {s: state.url(base, {"size": s}) for s in TILE_SIZES},
        "view_query": state.querystring(drop=("after", "before", "page", "refresh")),
        "can_curate": can_curate,
        # Other apps' buttons on the selection bar (autotag, review), by the user's role.
        "selection_actions": selection_actions(dataset.user_role),
        "effective_query": saved_query,
        # Every view the query language can write can be saved; the others say why not.
        "savable": query_error is None and bool(saved_query),
        "unsavable_reason": why_not if query_error is None else "Fix the query first.",
        "random_weight_models": vector_panels().random_weight_models([dataset]),
        **extra,
    }
    return render(request, "ui/grid.html", context, status=400 if query_error else 200)


@require_safe
@login_required
@html_errors
def grid(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """A dataset's items as a grid of thumbnails, with facets, query bar and search."""
    dataset = dataset_or_404(request, dataset_id)
    return grid_render(request, dataset, None, reverse("ui:grid", args=[dataset.pk]), {})


def facet_basis(state: GridState) -> QuerySet[Item] | None:
    """The items the sidebar counts (GridState.facet_items)."""
    return state.facet_items()


def facet_groups_on(state: GridState) -> dict[str, GridState]:
    """The view without each facet group that is on (labels, tags, one metadata key's
    values), by the group's parameter name."""
    names = ["label"] if state.labels else []
    names += ["tag"] if state.tags else []
    names += ["quality"] if state.quality else []
    names += [SCORE_PREFIX + name for name in state.score_ranges]
    names += [
        name
        for name, values in state.params.items()
        if name.startswith("metadata.") and "__" not in name and any(values)
    ]
    return {name: state.without_param(name) for name in names}


def _group_part(name: str) -> str | None:
    """The Summary part a facet group that is on shows of the view without it (_facets);
    None for a score range, whose histogram is asked for on its own (score_facets)."""
    if name.startswith("metadata."):
        return "metadata"
    return {"label": "labels", "tag": "tags", "quality": "quality"}.get(name)


def group_summaries(
    state: GridState, *, cached_only: bool, refresh: bool = False
) -> dict[str, facets.Summary] | None:
    """The figures of the view without each facet group that is on, only the part that
    the group shows; None when one is not counted yet and `cached_only`."""
    found: dict[str, facets.Summary] = {}
    for name, other in facet_groups_on(state).items():
        part = _group_part(name)
        if part is None:
            continue
        basis = facet_basis(other)
        parts = frozenset({part})
        if cached_only:
            summary = facets.cached_summary(state.dataset, basis, parts=parts)
            if summary is None:
                return None
        else:
            summary = facets.dataset_summary(state.dataset, basis, refresh=refresh, parts=parts)
        found[name] = summary
    return found


def _sidebar(
    state: GridState,
    summary: facets.Summary | None,
    base: str,
    others: dict[str, facets.Summary] | None = None,
) -> dict[str, Any]:
    """What the facet sidebar (ui/_facets.html) needs, in the page or in its own request."""
    return {
        "summary": summary,
        "facets": _facets(state, summary, base, others) if summary is not None else None,
        # Closed until opened: each asks for its histogram then (curation.ui.score_facets).
        "score_sections": score_sections(state, state.dataset, state.base_slice)
        if summary is not None
        else [],
        "refresh_url": state.url(base, {"refresh": "1"}),
        # The view's parameters that its forms carry along (all but query, page and text).
        "hidden_params": [
            (k, v)
            for k, vs in state.params.items()
            if k not in ("query", "after", "before", "page", "text")
            for v in vs
        ],
    }


def _panel_path(dataset: Dataset, base_slice: Slice | None) -> str:
    if base_slice is None:
        return reverse("ui:facets", args=[dataset.pk])
    return reverse("ui:slice-facets", args=[dataset.pk, base_slice.pk])


@require_GET
@login_required
@html_errors
def facets_panel(
    request: HttpRequest, dataset_id: int, slice_id: int | None = None
) -> HttpResponse:
    """The facet sidebar of a grid or slice page, counted now if not cached (htmx)."""
    dataset = dataset_or_404(request, dataset_id)
    base_slice = selectors.slice_of(dataset=dataset, slice_id=slice_id) if slice_id else None
    if base_slice is None:
        base = reverse("ui:grid", args=[dataset.pk])
    else:
        base = reverse("ui:slice", args=[dataset.pk, base_slice.pk])
    try:
        state = GridState(request.GET, dataset=dataset, base_slice=base_slice)
    except InvalidInput as exc:
        return HttpResponse(f'<p class="facet-empty">{escape(exc.message)}</p>', status=400)
    refresh = request.GET.get("refresh") == "1"
    summary = facets.dataset_summary(dataset, facet_basis(state), refresh=refresh)
    others = group_summaries(state, cached_only=False, refresh=refresh)
    context = {
        "dataset": dataset,
        "slice": base_slice,
        "state": state,
        "base": base,
        **_sidebar(state, summary, base, others),
    }
    return render(request, "ui/_facets.html", context)


@require_GET
@login_required
@html_errors
def view_count(request: HttpRequest, dataset_id: int, slice_id: int | None = None) -> HttpResponse:
    """How many items the view matches, counting no further than COUNT_CAP."""
    dataset = dataset_or_404(request, dataset_id)
    base_slice = selectors.slice_of(dataset=dataset, slice_id=slice_id) if slice_id else None
    try:
        state = GridState(request.GET, dataset=dataset, base_slice=base_slice)
        count = selectors.count_upto(state.items(), most=COUNT_CAP)
    except InvalidInput:
        return HttpResponse("")
    text = (
        f"{COUNT_CAP:,}+ items"
        if count > COUNT_CAP
        else f"{count:,} item{'s' if count != 1 else ''}"
    )
    return HttpResponse(f'<span data-count="{count}">{text}</span>')
