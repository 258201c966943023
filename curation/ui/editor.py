"""What the item view's annotation editor starts from: the item's annotations with their
versions, the predictions drawn under them, the dataset's labels for the type-ahead, the
API addresses it saves through, and where to go after saving. The editor itself is
curation/static/curation/editor.js; it saves through the REST API (curation.annotations),
so its writes are checked exactly as API writes are."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from curation.models import Annotation, Dataset, Item, Prediction
from curation.ui.overlays import Colours


def local_path(request: HttpRequest, value: str) -> str:
    """`value` if it is a path on this site ("/datasets/1/..."), else ""."""
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return ""
    if not url_has_allowed_host_and_scheme(value, allowed_hosts={request.get_host()}):
        return ""
    return value


@dataclass(frozen=True)
class EditorSetup:
    """The editor's starting state, for `json_script`, and whether it opens at once."""

    data: dict[str, Any]
    open: bool
    labels: list[str] = field(default_factory=list)


def annotation_row(a: Annotation) -> dict[str, Any]:
    return {
        "pk": a.pk,
        "id": a.annotation_id,
        "kind": a.kind,
        "label": a.label,
        "geometry": a.geometry,
        "version": a.version,
    }


def editor_setup(
    request: HttpRequest,
    *,
    dataset: Dataset,
    item: Item,
    annotations: Sequence[Annotation],
    predictions: Iterable[Prediction],
    dataset_labels: Sequence[str],
    colours: Colours,
) -> EditorSetup:
    """The editor of `item` for a curator: `?edit=1` opens it at once, and `?next=<a path
    on this site>` is where saving returns to (a review queue, say)."""
    shown = [
        {
            "pk": p.pk,
            "model": p.model.name,
            "kind": p.kind,
            "label": p.label,
            "confidence": round(p.confidence, 4),
            "geometry": p.geometry,
        }
        for p in predictions
        if p.kind != "segmentation"
    ]
    labels = sorted(
        set(dataset_labels) | {a.label for a in annotations} | {p["label"] for p in shown}
    )
    data = {
        "width": item.width,
        "height": item.height,
        "createUrl": reverse("api-item-annotations", args=[dataset.pk, item.pk]),
        "annotationUrl": reverse("api-annotation", args=[dataset.pk, 0])[: -len("0")],
        "annotations": [annotation_row(a) for a in annotations if a.kind != "segmentation"],
        "predictions": shown,
        "colours": {label: colours(label) for label in labels},
        "next": local_path(request, request.GET.get("next", "")),
    }
    return EditorSetup(data=data, open=request.GET.get("edit") == "1", labels=labels)
