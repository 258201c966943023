"""The item page: the image with its annotations and predictions, metadata, tags, the
slices it is in, its nearest neighbours and duplicate group, and steps through the view
it was opened from."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_safe

from curation import paging, selectors
from curation.errors import InvalidInput
from curation.models import Item, Prediction, Role
from curation.quality import QUALITY_FIELDS, Quality, notes_for
from curation.storage import media_url
from curation.ui.editor import editor_setup
from curation.ui.extensions import vector_panels
from curation.ui.grid import item_url
from curation.ui.history import history_rows
from curation.ui.http import dataset_or_404, html_errors
from curation.ui.outcomes import colour_by_outcome, outcomes_of, run_view
from curation.ui.overlays import Shape, describe, overlay_label, shapes_of
from curation.ui.query import query_error_of
from curation.ui.scores import distance_texts
from curation.ui.state import GridState, confidence_of

NEIGHBOURS = 12
MAX_DYNAMIC = 50  # dynamic slices checked for the item view's "in slices" list


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        rows: list[tuple[str, Any]] = []
        for key, inner in value.items():
            rows.extend(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return rows
    return [(prefix, value)]


def quality_rows(item: Item) -> tuple[list[tuple[str, str, str]], list[str]]:
    """The item's quality signals as (name, value, meaning) rows, and the facets it falls
    in (blurry, dark, ...); none before they are computed."""
    values = [getattr(item, f.column) for f in QUALITY_FIELDS.values()]
    if any(v is None for v in values):
        return [], []
    rows = []
    for field, value in zip(QUALITY_FIELDS.values(), values, strict=True):
        text = ("yes" if value else "no") if field.kind == "boolean" else f"{value:.3g}"
        rows.append((field.name, text, field.meaning))
    notes = notes_for(Quality(*values), width=item.width, height=item.height)
    return rows, notes


@require_safe
def item_slash(request: HttpRequest, dataset_id: int, item_id: int) -> HttpResponse:
    """The item's page at its address with a trailing slash: moved to the one without,
    with the same parameters (a link such as `items/5/?edit=1&next=...` works)."""
    target = reverse("ui:item", args=[dataset_id, item_id])
    query = request.META.get("QUERY_STRING", "")
    return HttpResponsePermanentRedirect(f"{target}?{query}" if query else target)


@require_safe
@login_required
@html_errors
def item_view(request: HttpRequest, dataset_id: int, item_id: int) -> HttpResponse:
    """One item: the image with its annotations and predictions, metadata, tags, slices,
    nearest neighbours and duplicate group."""
    dataset = dataset_or_404(request, dataset_id)
    item = selectors.item_of(dataset=dataset, item_id=item_id)
    item.dataset = dataset
    # A bad `conf` is a 400 naming it (it decides what is drawn here); the rest of the
    # view's state only steps through items, and a bad part of it just turns that off.
    conf = confidence_of(request.GET)
    try:
        state = GridState(request.GET, dataset=dataset)
        within = state.items() if query_error_of(state) is None else None
        order = state.sort_order()
    except InvalidInput:
        kept = QueryDict(mutable=True)  # the threshold still holds for the links from here
        if "conf" in request.GET:
            kept["conf"] = request.GET["conf"]
        state, within, order = GridState(kept, dataset=dataset), None, None
    # A run picked in the grid: only its model's predictions, at its threshold, and
    # every box coloured by its outcome (curation.ui.outcomes). A bad `run` is a 400.
    runs = run_view(state)
    run = runs.run
    if run is not None:
        conf = run.confidence
    grid_url = state.url(
        reverse("ui:grid", args=[dataset.pk]), {"after": None, "before": None, "at": None}
    )
    querystring = state.querystring(drop=("after", "before"))
    neighbours_url: dict[str, str] = {}
    if within is not None and not state.search_mode:
        before, after = paging.item_neighbour_ids(within, item_id=item.pk, order=order)
        neighbours_url = {
            "next": item_url(dataset, after, querystring) if after else "",
            "previous": item_url(dataset, before, querystring) if before else "",
        }
    colours = state.colours
    # `focus=a12,p34`: annotation 12 and prediction 34 drawn emphasised (a link from a list
    # of objects, such as the insights app's label-error candidates, says which it meant).
    focus = {f.strip() for f in request.GET.get("focus", "").split(",") if f.strip()}
    stored = list(selectors.item_annotations(item=item))
    annotations = shapes_of(
        [{"id": a.pk, "kind": a.kind, "label": a.label, "geometry": a.geometry} for a in stored],
        source="gt",
        colours=colours,
    )
    annotations = [replace(x, focus=f"a{x.object_id}" in focus) for x in annotations]
    predictions_by_model: dict[str, list[Shape]] = {}
    drawn_predictions: list[Prediction] = []
    hidden = 0
    for p in selectors.item_predictions(item=item):
        if run is not None and p.model_id != run.model_id:
            continue
        shapes = predictions_by_model.setdefault(p.model.name, [])
        if p.confidence < conf:
            hidden += 1
            continue
        drawn_predictions.append(p)
        row = {
            "id": p.pk,
            "kind": p.kind,
            "label": p.label,
            "geometry": p.geometry,
            "confidence": p.confidence,
        }
        shapes.extend(
            replace(x, focus=f"p{p.pk}" in focus)
            for x in shapes_of([row], source="pred", colours=colours)
        )
    if run is not None:
        found = outcomes_of(run, [item.pk])
        colour_by_outcome(annotations, found)
        for shapes in predictions_by_model.values():
            colour_by_outcome(shapes, found)
    gt_labels: dict[str, int] = {}
    for shape in annotations:
        gt_labels[shape.label] = gt_labels.get(shape.label, 0) + 1
    pred_labels: dict[str, int] = {}
    for shapes in predictions_by_model.values():
        for shape in shapes:
            pred_labels[shape.label] = pred_labels.get(shape.label, 0) + 1
    neighbours, neighbours_problem = vector_panels().neighbours(item, NEIGHBOURS)
    duplicates, duplicates_problem = vector_panels().duplicate_group(item)
    random_weight_models = vector_panels().random_weight_models([dataset])
    drawn = annotations + [s for shapes in predictions_by_model.values() for s in shapes]
    quality = quality_rows(item)
    can_curate = dataset.user_role in (Role.CURATOR, Role.ADMIN)
    # The annotation editor (curators, on an image of known size).
    editor = None
    if can_curate and item.width and item.height and item.media_key:
        editor = editor_setup(
            request,
            dataset=dataset,
            item=item,
            annotations=stored,
            predictions=drawn_predictions,
            dataset_labels=selectors.dataset_labels(dataset=dataset),
            colours=colours,
        )
    context = {
        "tab": "items",
        "image_alt": describe(item.reference_id, drawn),
        "overlay_label": overlay_label(drawn),
        "dataset": dataset,
        "item": item,
        "tag_names": selectors.item_tag_names(item=item),
        "history": history_rows(item),
        "image_url": media_url(item, "original"),
        "annotations": annotations,
        "predictions": [s for shapes in predictions_by_model.values() for s in shapes],
        "prediction_models": sorted(predictions_by_model),
        "gt_labels": [(label, n, colours(label)) for label, n in sorted(gt_labels.items())],
        "pred_labels": [(label, n, colours(label)) for label, n in sorted(pred_labels.items())],
        "conf": conf,
        "hidden_predictions": hidden,
        # The view's parameters that the threshold form carries along.
        "conf_params": [(k, v) for k, vs in state.params.items() if k != "conf" for v in vs],
        "metadata_rows": _flatten(item.metadata) if item.metadata else [],
        "quality_rows": quality[0],
        "quality_notes": quality[1],
        "slices": selectors.item_slices(dataset=dataset, item=item, max_dynamic=MAX_DYNAMIC),
        # Each neighbour with its distance, in as many digits as tell them apart.
        "neighbours": list(
            zip(
                [n for n, _ in neighbours],
                distance_texts([score for _, score in neighbours]),
                strict=True,
            )
        ),
        "neighbours_problem": neighbours_problem,
        "duplicates": duplicates,
        "duplicates_problem": duplicates_problem,
        "grid_url": grid_url,
        "similar_url": state.refilter(
            reverse("ui:grid", args=[dataset.pk]), {"like": item.pk, "text": None, "image": None}
        ),
        "nav_urls": neighbours_url,
        "can_curate": can_curate,
        "editor": editor,
        "here": request.get_full_path(),
        "all_slices": selectors.static_slice_choices(dataset=dataset),
        "random_weight_models": random_weight_models,
        "runs": runs,
        "state": state,
        # The run picker's form keeps the view's other parameters.
        "run_params": [
            (k, v)
            for k, vs in state.params.items()
            if k not in ("run", "match_order", "at")
            for v in vs
        ],
    }
    return render(request, "ui/item.html", context)
