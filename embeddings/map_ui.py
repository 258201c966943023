"""The embedding map page and its data: points, colours and the grid's highlight as compact
binary arrays (docs/embeddings.md, "Map"), and what a lasso or box selection becomes.

Binary bodies (`application/octet-stream`) are framed alike: a little-endian uint32 `n`,
`n` bytes of a JSON header, zero padding to a multiple of 8, then the arrays the header
names, in its order. Points are in item id order; every other array is aligned with it.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from curation.errors import CurationError, NotFound, invalid_field
from curation.models import Dataset, Role
from curation.params import int_value
from curation.ui.http import dataset_or_404, html_errors
from curation.ui.state import GridState
from embeddings.models import Projection
from embeddings.projection import (
    DEFAULT_SAMPLE,
    points_in_polygon,
    polygon_clean,
    projection_job_start,
    selection_apply,
)
from embeddings.selectors import (
    default_model_or_none,
    projection_colours,
    projection_current,
    projection_mask,
    projection_points,
    projections_of,
)

MAX_ID = 10**18 - 1


def framed(header: dict[str, Any], *arrays: np.ndarray) -> HttpResponse:
    """A binary body: uint32 header length, JSON header, padding to 8, then the arrays."""
    head = json.dumps(header, separators=(",", ":")).encode()
    pad = (-(4 + len(head))) % 8
    body = b"".join(
        [np.uint32(len(head)).astype("<u4").tobytes(), head, b"\0" * pad]
        + [np.ascontiguousarray(a).tobytes() for a in arrays]
    )
    response = HttpResponse(body, content_type="application/octet-stream")
    response["Cache-Control"] = "private, no-cache"
    return response


def _projection(request: HttpRequest, dataset: Dataset) -> Projection:
    raw = request.GET.get("projection", "")
    wanted = int_value(raw, "projection", low=1, high=MAX_ID) if raw else None
    found = projection_current(dataset=dataset, projection_id=wanted)
    if found is None or found.status != Projection.Status.FINISHED:
        raise NotFound("No finished projection of this dataset: compute the map first.")
    return found


@require_GET
@login_required
@html_errors
def map_page(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """The map: a canvas of every item, coloured by any value, with lasso and box selection."""
    dataset = dataset_or_404(request, dataset_id)
    projection = projection_current(dataset=dataset)
    model = projection.model if projection is not None else default_model_or_none(dataset=dataset)
    return render(
        request,
        "ui/embedding_map.html",
        {
            "dataset": dataset,
            "tab": "map",
            "projection": projection,
            "projections": projections_of(dataset=dataset),
            "model": model,
            "not_semantic": model is not None and model.random_weights,
            "can_curate": dataset.user_role in (Role.CURATOR, Role.ADMIN),
            "methods": Projection.Method.choices,
            "default_sample": DEFAULT_SAMPLE,
            "grid_query": request.GET.get("grid", ""),
        },
    )


@require_POST
@login_required
@html_errors
def map_start(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """Start a projection job (curators) with the dataset's search model."""
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    back = reverse("embeddings-ui:map", args=[dataset.pk])
    try:
        raw = request.POST.get("sample", "")
        sample = int_value(raw, "sample", low=2, high=50_000) if raw else DEFAULT_SAMPLE
        job = projection_job_start(
            dataset=dataset,
            user=request.user,
            model=default_model_or_none(dataset=dataset),
            method=request.POST.get("method", Projection.Method.PCA),
            sample=sample,
        )
    except CurationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Projection job #{job.pk} started; the map opens when it ends.")
    return HttpResponseRedirect(back)


@require_GET
@login_required
@html_errors
def map_points(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """Every point: header {count, bounds, id_type}, then ids (uint32, or float64 past 2^32)
    and x, y interleaved as float32."""
    dataset = dataset_or_404(request, dataset_id)
    projection = _projection(request, dataset)
    ids, coords = projection_points(projection=projection)
    small = len(ids) == 0 or int(ids.max()) < 2**32
    header = {
        "projection": projection.pk,
        "method": projection.method,
        "model": projection.model.name,
        "random_weights": projection.model.random_weights,
        "count": len(ids),
        "bounds": [projection.x_min, projection.y_min, projection.x_max, projection.y_max],
        "id_type": "uint32" if small else "float64",
        "arrays": ["ids", "xy"],
    }
    id_array = ids.astype("<u4") if small else ids.astype("<f8")
    return framed(header, id_array, coords.astype("<f4"))


@require_GET
@login_required
@html_errors
def map_colours(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """`color=<value of the query language>` per point: float32 (NaN: none) or uint8 codes
    with a legend (0: none; k: legend[k-1])."""
    dataset = dataset_or_404(request, dataset_id)
    projection = _projection(request, dataset)
    text = request.GET.get("color", "").strip()
    if not text:
        raise invalid_field("color", "name a value, e.g. metadata.weather or annotations.car")
    ids, _ = projection_points(projection=projection)
    kind, values, legend = projection_colours(
        projection=projection, dataset=dataset, text=text, ids=ids
    )
    header: dict[str, Any] = {"color": text, "kind": kind, "count": len(ids), "legend": legend}
    if kind == "numeric":
        finite = values[np.isfinite(values)]
        header["range"] = [float(finite.min()), float(finite.max())] if len(finite) else None
        return framed(header, values.astype("<f4"))
    return framed(header, values.astype("u1"))


@require_GET
@login_required
@html_errors
def map_highlight(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """The points a grid view shows (its querystring in `grid`): a bitmask, bit i of byte
    i // 8 (least significant first) for point i."""
    dataset = dataset_or_404(request, dataset_id)
    projection = _projection(request, dataset)
    state = GridState(QueryDict(request.GET.get("grid", "")), dataset=dataset)
    ids, _ = projection_points(projection=projection)
    mask = projection_mask(projection=projection, items=state.items(), ids=ids)
    header = {"count": len(ids), "matching": int(mask.sum()), "filtered": state.is_filtered}
    return framed(header, np.packbits(mask, bitorder="little"))


@require_POST
@login_required
@html_errors
def map_select(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """A lasso or box (`polygon` in map coordinates, JSON body) becomes a static slice
    (`action` grid: opened in the grid; slice: named) or a tag (curators)."""
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    projection = _projection(request, dataset)
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        raise invalid_field("body", "must be a JSON object") from None
    if not isinstance(body, dict):
        raise invalid_field("body", "must be a JSON object")
    polygon = polygon_clean(body.get("polygon"))
    ids, coords = projection_points(projection=projection)
    chosen = ids[points_in_polygon(coords, polygon)]
    if len(chosen) == 0:
        raise invalid_field("polygon", "selects no point")
    result = selection_apply(
        dataset=dataset,
        user=request.user,
        item_ids=chosen.tolist(),
        action=str(body.get("action", "")),
        name=str(body.get("name", "")),
    )
    if result["kind"] == "slice":
        result["url"] = reverse("ui:slice", args=[dataset.pk, result["id"]])
    else:
        result["url"] = reverse("ui:grid", args=[dataset.pk]) + f"?tag={result['name']}"
    result["count"] = len(chosen)
    return JsonResponse(result)
