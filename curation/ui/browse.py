"""Browsing a dataset: the grid (filters, query bar, similarity search, selection), the
item view, and the small htmx endpoints around them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils.html import escape
from django.views.decorators.http import require_GET, require_POST, require_safe

from curation import selectors, services
from curation.errors import CurationError, InvalidInput
from curation.itemsets import slice_items_q
from curation.media import image_upload_read
from curation.models import Annotation, Dataset, Item, Prediction, Role, Slice
from curation.query import QueryError, validate_query
from curation.storage import media_url
from curation.ui import facets
from curation.ui.extensions import Results, vector_panels
from curation.ui.forms import SelectionForm
from curation.ui.http import back_with_error, dataset_or_404, html_errors, next_url
from curation.ui.overlays import Shape, label_colour, shapes_of
from curation.ui.similarity import query_image_store
from curation.ui.state import TILE_SIZES, GridState

COUNT_CAP = 10_000
SELECT_ALL_MAX = 100_000
NEIGHBOURS = 12
MAX_DYNAMIC = 50  # dynamic slices checked for the item view's "in slices" list
OPERATOR_SIGNS = {"": "=", "eq": "=", "ne": "≠", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤"}


@dataclass
class Tile:
    item: Item
    thumbnail: str | None
    shapes: list[Shape] = field(default_factory=list)
    score: float | None = None
    open_url: str = ""
    similar_url: str = ""
    is_query: bool = False


def _shapes_by_item(
    item_ids: list[int], model_id: int | None, conf: float
) -> dict[int, list[Shape]]:
    """Ground truth (and one model's confident predictions) of a page of items, in two reads."""
    rows: dict[int, list[Mapping[str, Any]]] = {i: [] for i in item_ids}
    for row in (
        Annotation.objects.filter(item_id__in=item_ids)
        .exclude(kind="segmentation")
        .values("item_id", "kind", "label", "geometry")
    ):
        rows[row["item_id"]].append(row)
    by_item = {i: shapes_of(r, source="gt") for i, r in rows.items()}
    if model_id is not None:
        for row in (
            Prediction.objects.filter(item_id__in=item_ids, model_id=model_id, confidence__gte=conf)
            .exclude(kind="segmentation")
            .values("item_id", "kind", "label", "geometry", "confidence")
        ):
            by_item[row["item_id"]].extend(shapes_of([row], source="pred"))
    return by_item


def item_url(dataset: Dataset, item_id: int, querystring: str = "") -> str:
    """The item view, keeping the grid's state so it can step through the same view."""
    path = reverse("ui:item", args=[dataset.pk, item_id])
    return f"{path}?{querystring}" if querystring else path


def _tiles(state: GridState, items: list[tuple[Item, float | None]], base: str) -> list[Tile]:
    shapes = _shapes_by_item([i.pk for i, _ in items], state.model_id, state.conf)
    querystring = state.querystring(drop=("after", "before"))
    return [
        Tile(
            item=item,
            thumbnail=media_url(item, "thumbnail") or media_url(item, "original"),
            shapes=shapes.get(item.pk, []),
            score=score,
            open_url=item_url(state.dataset, item.pk, querystring),
            similar_url=state.refilter(base, {"like": item.pk, "text": None, "image": None}),
        )
        for item, score in items
    ]


def _query_error(state: GridState) -> dict[str, Any] | None:
    """Where the query bar's text is wrong, split for underlining; None when it compiles."""
    if not state.q.strip():
        return None
    try:
        state.query_condition()
    except QueryError as exc:
        return _error_parts(state.q, exc)
    return None


def _error_parts(text: str, exc: QueryError) -> dict[str, Any]:
    start = min(exc.position["offset"], len(text))
    end = min(max(exc.position["end_offset"], start), len(text))
    return {
        "message": exc.message,
        "column": exc.position["column"],
        "before": text[:start],
        "marked": text[start:end],
        "after": text[end:],
        "at_end": start == end,
        "expected": exc.expected,
    }


def _facets(state: GridState, summary: facets.Summary, base: str) -> dict[str, Any]:
    """Every facet with its count, whether it is on, and the link that toggles it."""
    labels = [
        {
            "name": lc.label,
            "count": lc.items,
            "colour": label_colour(lc.label),
            "active": lc.label in state.labels,
            "url": state.toggled(base, "label", lc.label),
        }
        for lc in summary.labels
    ]
    tags = [
        {
            "name": name,
            "count": count,
            "active": name in state.tags,
            "url": state.toggled(base, "tag", name),
        }
        for _, name, count in summary.tags
    ]
    slices = [
        {
            "id": sid,
            "name": name,
            "count": count,
            "dynamic": dynamic,
            "active": str(sid) in state.slice_ids,
            # The API's `slice` filter reads memberships, which a dynamic slice has none
            # of: its facet opens the slice's own page instead.
            "url": reverse("ui:slice", args=[state.dataset.pk, sid])
            if dynamic
            else state.toggled(base, "slice", str(sid)),
            "page": reverse("ui:slice", args=[state.dataset.pk, sid]),
        }
        for sid, name, count, dynamic in summary.slices
    ]
    metadata = []
    for key in summary.metadata:
        param = f"metadata.{key.key}"
        current = state.params.get(param, [])
        entry: dict[str, Any] = {
            "key": key.key,
            "kind": key.kind,
            "present": key.present,
            "param": param,
        }
        if key.kind == "category":
            entry["values"] = [
                {
                    "value": v.value,
                    "count": v.count,
                    "active": _literal(v.value) in current,
                    "url": state.refilter(
                        base, {param: None if _literal(v.value) in current else _literal(v.value)}
                    ),
                }
                for v in key.values
            ]
        elif key.kind == "number":
            entry.update(
                minimum=facets.number_label(key.minimum),
                maximum=facets.number_label(key.maximum),
                gte=(state.params.get(f"{param}__gte") or [""])[0],
                lte=(state.params.get(f"{param}__lte") or [""])[0],
            )
        metadata.append(entry)
    return {"labels": labels, "tags": tags, "slices": slices, "metadata": metadata}


def _literal(value: str) -> str:
    """A metadata value as the API's filter parameter writes it: text that would read as a
    number or a JSON literal is quoted, so it stays text (see curation.filters)."""
    from curation.filters import parse_value

    try:
        typed = parse_value(value)
    except ValueError:  # a number too long to read: quoting keeps it text
        return f'"{value}"'
    return value if isinstance(typed, str) and not value.startswith('"') else f'"{value}"'


def _chips(state: GridState, base: str, results: Results | None) -> list[dict[str, Any]]:
    """The filters that are on, each with a link that takes it off."""
    chips: list[dict[str, Any]] = [
        {"text": f"label: {label}", "url": state.toggled(base, "label", label)}
        for label in state.labels
    ]
    chips += [{"text": f"tag: {tag}", "url": state.toggled(base, "tag", tag)} for tag in state.tags]
    names = {
        str(s.pk): s.name
        for s in Slice.objects.filter(
            dataset=state.dataset, pk__in=[int(s) for s in state.slice_ids if s.isdigit()]
        )
    }
    chips += [
        {"text": f"slice: {names.get(sid, sid)}", "url": state.toggled(base, "slice", sid)}
        for sid in state.slice_ids
    ]
    for name, value in state.metadata_filters:
        key, _, op = name.removeprefix("metadata.").partition("__")
        chips.append(
            {
                "text": f"{key} {OPERATOR_SIGNS.get(op, op)} {value}",
                "url": state.toggled(base, name, value),
            }
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
            0, {"text": text, "url": state.without(base, ("text", "like", "image")), "search": True}
        )
    return chips


def _id_listing(state: GridState, base: str) -> tuple[list[Tile], dict[str, str]]:
    """One keyset page of the view's items in id order, and its links."""
    page = state.page_of(state.items())
    tiles = _tiles(state, [(i, None) for i in page.items], base)
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
    state: GridState, results: Results, base: str
) -> tuple[list[Tile], dict[str, str]]:
    """One page of search results, best first, led by the query item on the first page."""
    hits: list[tuple[Item, float | None]] = list(results.hits)
    lead = results.query_item is not None and state.page == 0
    if lead:
        hits.insert(0, (results.query_item, None))  # type: ignore[arg-type]
    tiles = _tiles(state, hits, base)
    if lead:
        tiles[0].is_query = True
    return tiles, {
        "next": state.url(base, {"page": state.page + 1}) if results.has_more else "",
        "previous": state.url(base, {"page": state.page - 1 if state.page > 1 else None})
        if state.page
        else "",
    }


def _grid(
    request: HttpRequest,
    dataset: Dataset,
    base_slice: Slice | None,
    base: str,
    extra: dict[str, Any],
) -> HttpResponse:
    try:
        state = GridState(request.GET, dataset=dataset, base_slice=base_slice)
        # Counting facets takes a second at 1M items (a 20,000-item sample, several
        # aggregates): the grid never waits for it. With the figures cached they are in
        # the page; otherwise the sidebar asks for them (facets_panel) once it has loaded.
        refresh = request.GET.get("refresh") == "1"
        summary = None if refresh else facets.cached_summary(dataset)
        query_error = _query_error(state)
        tiles: list[Tile] = []
        pager: dict[str, str] = {}
        results: Results | None = None
        if query_error is not None or extra.get("slice_problem"):
            pass  # nothing to list until the query (or the slice's saved query) is fixed
        elif state.search_mode:
            results = vector_panels().grid_results(state)
            tiles, pager = _search_listing(state, results, base)
        else:
            tiles, pager = _id_listing(state, base)
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
    can_curate = dataset.user_role in (Role.CURATOR, Role.ADMIN)
    context = {
        "tab": "items",
        "dataset": dataset,
        "slice": base_slice,
        "state": state,
        "base": base,
        **_sidebar(state, summary, base),
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
        "tiles": tiles,
        "results": results,
        "pager": pager,
        "search_model": model,
        "models": list(
            selectors.models_of(dataset=dataset).order_by("name").values_list("pk", "name")
        ),
        "tile_px": TILE_SIZES[state.size],
        "size_links": {s: state.url(base, {"size": s}) for s in TILE_SIZES},
        "view_query": state.querystring(drop=("after", "before", "page", "refresh")),
        "can_curate": can_curate,
        "effective_query": state.effective_query(),
        # Only the query bar and labels are query language; other filters cannot be saved.
        "savable": base_slice is None
        and query_error is None
        and not (state.metadata_filters or state.tags or state.slice_ids or state.search_mode)
        and bool(state.effective_query()),
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
    return _grid(request, dataset, None, reverse("ui:grid", args=[dataset.pk]), {})


def _sidebar(state: GridState, summary: facets.Summary | None, base: str) -> dict[str, Any]:
    """What the facet sidebar (ui/_facets.html) needs, in the page or in its own request."""
    return {
        "summary": summary,
        "facets": _facets(state, summary, base) if summary is not None else None,
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
    summary = facets.dataset_summary(dataset, refresh=request.GET.get("refresh") == "1")
    context = {
        "dataset": dataset,
        "slice": base_slice,
        "state": state,
        "base": base,
        **_sidebar(state, summary, base),
    }
    return render(request, "ui/_facets.html", context)


@require_GET
@login_required
@html_errors
def query_check(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """The query bar's error, if any, as a fragment (htmx checks while the user types)."""
    dataset = dataset_or_404(request, dataset_id)
    text = request.GET.get("query", "")
    error = None
    if text.strip():
        try:
            validate_query(text, dataset=dataset)
        except QueryError as exc:
            error = _error_parts(text, exc)
    return render(request, "ui/_query_error.html", {"query_error": error, "oob": True})


@require_GET
@login_required
@html_errors
def view_count(request: HttpRequest, dataset_id: int, slice_id: int | None = None) -> HttpResponse:
    """How many items the view matches, counting no further than COUNT_CAP."""
    dataset = dataset_or_404(request, dataset_id)
    base_slice = selectors.slice_of(dataset=dataset, slice_id=slice_id) if slice_id else None
    try:
        state = GridState(request.GET, dataset=dataset, base_slice=base_slice)
        count = state.items()[: COUNT_CAP + 1].count()
    except InvalidInput:
        return HttpResponse("")
    text = (
        f"{COUNT_CAP:,}+ items"
        if count > COUNT_CAP
        else f"{count:,} item{'s' if count != 1 else ''}"
    )
    return HttpResponse(f'<span data-count="{count}">{text}</span>')


# ---------------------------------------------------------------------------- selection


def _items(count: int) -> str:
    return f"{count} item" if count == 1 else f"{count} items"


def _selected_reference_ids(
    dataset: Dataset, form: SelectionForm, request: HttpRequest
) -> list[str]:
    data = form.cleaned_data
    if (data.get("scope") or "ids") == "view":
        params: QueryDict = QueryDict(data.get("view") or "")
        base_slice = None
        if params.get("in_slice"):
            base_slice = selectors.slice_of(dataset=dataset, slice_id=params["in_slice"])
            params = params.copy()
            params.pop("in_slice")
        state = GridState(params, dataset=dataset, base_slice=base_slice)
        refs = list(
            state.items()
            .order_by("id")
            .values_list("reference_id", flat=True)[: SELECT_ALL_MAX + 1]
        )
        if len(refs) > SELECT_ALL_MAX:
            raise InvalidInput(
                f"“Select all” works on up to {SELECT_ALL_MAX:,} items; narrow the view first."
            )
        return refs
    ids = data["ids"]
    found = dict(Item.objects.filter(dataset=dataset, pk__in=ids).values_list("pk", "reference_id"))
    missing = [i for i in ids if i not in found]
    if missing:
        raise InvalidInput(
            f"{len(missing)} selected items are not in this dataset (e.g. id {missing[0]})."
        )
    return [found[i] for i in ids]


@require_POST
@login_required
@html_errors
def selection_apply(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """Add the selection to a slice, make a slice of it, take it out of one, tag or untag it."""
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    fallback = reverse("ui:grid", args=[dataset.pk])
    form = SelectionForm(request.POST)
    if not form.is_valid():
        problems = "; ".join(str(e) for errors in form.errors.values() for e in errors)
        return back_with_error(request, fallback, problems)
    data = form.cleaned_data
    action, name = data["action"], (data.get("name") or "").strip()
    try:
        refs = _selected_reference_ids(dataset, form, request)
        if action == "slice_create":
            created, added = services.slice_create(
                dataset=dataset, user=request.user, name=name, reference_ids=refs
            )
            messages.success(request, f"Created slice “{created.name}” with {_items(added)}.")
        elif action in ("slice_add", "slice_remove"):
            target = selectors.slice_of(dataset=dataset, slice_id=data["slice"])
            if action == "slice_add":
                changed = services.slice_append(slice=target, reference_ids=refs)
                messages.success(request, f"Added {_items(changed)} to slice “{target.name}”.")
            else:
                changed = services.slice_remove(slice=target, reference_ids=refs)
                messages.success(request, f"Removed {_items(changed)} from slice “{target.name}”.")
        elif action == "tag":
            tag, changed = services.tag_add(dataset=dataset, name=name, reference_ids=refs)
            messages.success(request, f"Tagged {_items(changed)} “{tag.name}”.")
        else:
            tag, changed = services.tag_remove(dataset=dataset, name=name, reference_ids=refs)
            messages.success(request, f"Removed tag “{tag.name}” from {_items(changed)}.")
    except CurationError as exc:
        return back_with_error(request, fallback, exc)
    facets.summary_forget(dataset)
    return HttpResponseRedirect(next_url(request, fallback))


@require_POST
@login_required
@html_errors
def search_image(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """Keep an uploaded query image and show the items that look like it."""
    dataset = dataset_or_404(request, dataset_id)
    base = reverse("ui:grid", args=[dataset.pk])
    upload = request.FILES.get("image")
    if upload is None:
        return back_with_error(request, base, "Pick an image file to search by.")
    try:
        digest = query_image_store(dataset=dataset, data=image_upload_read(upload))
    except CurationError as exc:
        return back_with_error(request, base, exc)
    state = GridState(QueryDict(request.POST.get("view", "")), dataset=dataset)
    target = next_url(request, base).split("?")[0]
    return HttpResponseRedirect(
        state.refilter(target, {"image": digest, "text": None, "like": None})
    )


# ---------------------------------------------------------------------------- item view


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        rows: list[tuple[str, Any]] = []
        for key, inner in value.items():
            rows.extend(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return rows
    return [(prefix, value)]


def _slices_containing(dataset: Dataset, item: Item) -> list[Slice]:
    """Static slices the item is a member of, and dynamic slices whose query it matches."""
    found = list(Slice.objects.filter(dataset=dataset, memberships__item=item))
    conditions: dict[str, Q] = {}
    dynamic: dict[str, Slice] = {}
    for candidate in Slice.objects.filter(dataset=dataset).exclude(
        query="", similarity__isnull=True
    )[:MAX_DYNAMIC]:
        candidate.dataset = dataset  # compiling reads it: no query per slice
        try:
            conditions[f"in_{candidate.pk}"] = slice_items_q(candidate)
        except CurationError:
            continue  # a saved query that no longer compiles matches nothing
        dynamic[f"in_{candidate.pk}"] = candidate
    if conditions:
        # Every dynamic slice's condition on this one item, in a single statement.
        matches = (
            Item.objects.filter(pk=item.pk)
            .annotate(
                **{
                    name: ExpressionWrapper(condition, output_field=BooleanField())
                    for name, condition in conditions.items()
                }
            )
            .values(*conditions)
            .first()
        ) or {}
        found.extend(dynamic[name] for name, matched in matches.items() if matched)
    return sorted(found, key=lambda s: s.name)


@require_safe
@login_required
@html_errors
def item_view(request: HttpRequest, dataset_id: int, item_id: int) -> HttpResponse:
    """One item: the image with its annotations and predictions, metadata, tags, slices,
    nearest neighbours and duplicate group."""
    dataset = dataset_or_404(request, dataset_id)
    item = selectors.item_of(dataset=dataset, item_id=item_id)
    item.dataset = dataset
    try:
        state = GridState(request.GET, dataset=dataset)
        within = state.items() if _query_error(state) is None else None
    except InvalidInput:
        state, within = GridState(QueryDict(), dataset=dataset), None
    grid_url = state.url(reverse("ui:grid", args=[dataset.pk]), {"after": None, "before": None})
    querystring = state.querystring(drop=("after", "before"))
    neighbours_url: dict[str, str] = {}
    if within is not None and not state.search_mode:
        after = within.filter(id__gt=item.pk).order_by("id").values_list("id", flat=True).first()
        before = within.filter(id__lt=item.pk).order_by("-id").values_list("id", flat=True).first()
        neighbours_url = {
            "next": item_url(dataset, after, querystring) if after else "",
            "previous": item_url(dataset, before, querystring) if before else "",
        }
    annotations = shapes_of(
        [
            {"kind": a.kind, "label": a.label, "geometry": a.geometry}
            for a in selectors.item_annotations(item=item)
        ],
        source="gt",
    )
    predictions_by_model: dict[str, list[Shape]] = {}
    for p in selectors.item_predictions(item=item):
        predictions_by_model.setdefault(p.model.name, []).extend(
            shapes_of(
                [
                    {
                        "kind": p.kind,
                        "label": p.label,
                        "geometry": p.geometry,
                        "confidence": p.confidence,
                    }
                ],
                source="pred",
            )
        )
    gt_labels: dict[str, int] = {}
    for shape in annotations:
        gt_labels[shape.label] = gt_labels.get(shape.label, 0) + 1
    pred_labels: dict[str, int] = {}
    for shapes in predictions_by_model.values():
        for shape in shapes:
            pred_labels[shape.label] = pred_labels.get(shape.label, 0) + 1
    neighbours, neighbours_problem = vector_panels().neighbours(item, NEIGHBOURS)
    duplicates, duplicates_problem = vector_panels().duplicate_group(item)
    context = {
        "tab": "items",
        "dataset": dataset,
        "item": item,
        "tag_names": selectors.item_tag_names(item=item),
        "image_url": media_url(item, "original"),
        "annotations": annotations,
        "predictions": [s for shapes in predictions_by_model.values() for s in shapes],
        "prediction_models": sorted(predictions_by_model),
        "gt_labels": [(label, n, label_colour(label)) for label, n in sorted(gt_labels.items())],
        "pred_labels": [
            (label, n, label_colour(label)) for label, n in sorted(pred_labels.items())
        ],
        "metadata_rows": _flatten(item.metadata) if item.metadata else [],
        "slices": _slices_containing(dataset, item),
        "neighbours": neighbours,
        "neighbours_problem": neighbours_problem,
        "duplicates": duplicates,
        "duplicates_problem": duplicates_problem,
        "grid_url": grid_url,
        "similar_url": state.refilter(
            reverse("ui:grid", args=[dataset.pk]), {"like": item.pk, "text": None, "image": None}
        ),
        "nav_urls": neighbours_url,
        "can_curate": dataset.user_role in (Role.CURATOR, Role.ADMIN),
        "here": request.get_full_path(),
        "all_slices": list(
            Slice.objects.filter(dataset=dataset, query="", similarity__isnull=True)
            .order_by("name")
            .values_list("pk", "name")
        ),
        "random_weight_models": vector_panels().random_weight_models([dataset]),
    }
    return render(request, "ui/item.html", context)
