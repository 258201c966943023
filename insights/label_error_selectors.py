"""Reads of the label-error candidates and of model uncertainty (the API's and the page's
views call these; they never query)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet
from django.urls import reverse

from curation.access import has_role
from curation.errors import NotFound, invalid_field
from curation.models import Annotation, Dataset, Item, JobStatus, Model, Prediction, Role
from curation.storage import media_url
from evaluation.models import EvaluationRun
from insights.models import CandidateType, ItemUncertainty, LabelErrorCandidate, LabelErrorScan
from insights.neighbours import neighbour_model

SECTION_TOP = 10
TYPES = [t.value for t in CandidateType]


def scans_of(*, dataset: Dataset) -> QuerySet[LabelErrorScan]:
    return LabelErrorScan.objects.filter(dataset=dataset).select_related("run", "run__model", "job")


def scan_of(*, dataset: Dataset, scan_id: Any = None) -> LabelErrorScan:
    """The scan `scan_id` of the dataset, or its newest succeeded one; 404 without."""
    scans = scans_of(dataset=dataset)
    if scan_id is None:
        found = scans.filter(job__status=JobStatus.SUCCEEDED).order_by("-id").first()
        if found is None:
            raise NotFound("No label-error scan has finished in this dataset.")
        return found
    try:
        pk = int(scan_id)
    except (TypeError, ValueError):
        raise NotFound("Label-error scan not found.") from None
    found = scans.filter(pk=pk).first()
    if found is None:
        raise NotFound("Label-error scan not found.")
    return found


def candidates_of(
    *, scan: LabelErrorScan, type: str | None = None, min_score: float | None = None
) -> QuerySet[LabelErrorCandidate]:
    """A scan's candidates, best first (of one type when given); ties by id."""
    if type is not None and type not in TYPES:
        raise invalid_field("type", f"must be one of {', '.join(TYPES)}")
    rows = LabelErrorCandidate.objects.filter(scan=scan)
    if type is not None:
        rows = rows.filter(type=type)
    if min_score is not None:
        rows = rows.filter(score__gte=min_score)
    return rows.select_related("item").order_by("-score", "id")


def grid_query(type: str | None, score: float) -> str:
    """The query language's condition for the items of a list down to `score`."""
    field = "label_error" + (f".{type}" if type else "")
    return f"{field} >= {score:g}"


def grid_link(dataset: Dataset, query: str) -> str:
    return reverse("ui:grid", args=[dataset.pk]) + "?" + urlencode({"query": query})


def item_link(dataset_id: int, c: LabelErrorCandidate) -> str:
    """The item view with every prediction shown and the candidate's objects emphasised."""
    focus = [f"a{c.annotation_id}"] if c.annotation_id else []
    focus += [f"p{c.prediction_id}"] if c.prediction_id else []
    tail = "?conf=0" + (f"&focus={','.join(focus)}" if focus else "")
    return reverse("ui:item", args=[dataset_id, c.item_id]) + tail


@dataclass(frozen=True)
class Row:
    candidate: LabelErrorCandidate
    item: Item
    item_url: str
    thumbnail: str | None
    # Boxes drawn over the thumbnail, in the image's pixels: (x, y, w, h) or None.
    truth: tuple[float, float, float, float] | None
    predicted: tuple[float, float, float, float] | None
    truth_label: str
    predicted_label: str
    # The drawing's size: the image's, or (no image) what holds both boxes.
    frame: tuple[float, float] | None


def _box(geometry: Any) -> tuple[float, float, float, float] | None:
    try:
        return (
            float(geometry["x"]),
            float(geometry["y"]),
            float(geometry["width"]),
            float(geometry["height"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def rows_of(dataset: Dataset, candidates: list[LabelErrorCandidate]) -> list[Row]:
    """Each candidate with its item's thumbnail and the two boxes (ground truth and
    prediction) to draw side by side."""
    annotations = {
        a.pk: a
        for a in Annotation.objects.filter(
            pk__in=[c.annotation_id for c in candidates if c.annotation_id]
        )
    }
    predictions = {
        p.pk: p
        for p in Prediction.objects.filter(
            pk__in=[c.prediction_id for c in candidates if c.prediction_id]
        )
    }
    rows = []
    for c in candidates:
        a = annotations.get(c.annotation_id or 0)
        p = predictions.get(c.prediction_id or 0)
        truth = _box(a.geometry) if a is not None else None
        predicted = _box(p.geometry) if p is not None else None
        boxes = [b for b in (truth, predicted) if b is not None]
        frame: tuple[float, float] | None = None
        if c.item.width and c.item.height:
            frame = (float(c.item.width), float(c.item.height))
        elif boxes:
            frame = (max(b[0] + b[2] for b in boxes) + 10, max(b[1] + b[3] for b in boxes) + 10)
        rows.append(
            Row(
                candidate=c,
                item=c.item,
                item_url=item_link(dataset.pk, c),
                thumbnail=media_url(c.item, "thumbnail") or media_url(c.item, "original"),
                truth=truth,
                predicted=predicted,
                truth_label=a.label if a is not None else "",
                predicted_label=p.label if p is not None else "",
                frame=frame,
            )
        )
    return rows


@dataclass(frozen=True)
class TypeList:
    type: str
    title: str
    count: int
    rows: list[Row]
    grid_url: str
    query: str


def label_errors_context(
    dataset: Dataset, user: AbstractBaseUser | AnonymousUser
) -> dict[str, Any]:
    """The Insights section: the newest finished scan's top candidates of each type, the
    runs a curator may scan, and a scan under way."""
    curator = has_role(dataset.role_of(user), Role.CURATOR)
    runs = list(
        EvaluationRun.objects.filter(dataset=dataset, job__status=JobStatus.SUCCEEDED)
        .select_related("model")
        .order_by("-id")[:50]
    )
    pending = (
        scans_of(dataset=dataset)
        .filter(job__status__in=[JobStatus.QUEUED, JobStatus.RUNNING])
        .order_by("-id")
        .first()
    )
    scan = scans_of(dataset=dataset).filter(job__status=JobStatus.SUCCEEDED).order_by("-id").first()
    lists: list[TypeList] = []
    if scan is not None:
        for t in CandidateType:
            top = list(candidates_of(scan=scan, type=t.value)[:SECTION_TOP])
            query = grid_query(t.value, top[-1].score) if top else ""
            lists.append(
                TypeList(
                    type=t.value,
                    title=t.label,
                    count=int((scan.counts or {}).get(t.value, 0)),
                    rows=rows_of(dataset, top),
                    grid_url=grid_link(dataset, query) if top else "",
                    query=query,
                )
            )
    return {
        "neighbours": neighbours_status(dataset=dataset),
        "look": look_status(scan=scan),
        "scan": scan,
        "pending": pending,
        "lists": lists,
        "runs": runs,
        "curator": curator,
        "top": SECTION_TOP,
    }


def look_status(*, scan: LabelErrorScan | None) -> dict[str, Any]:
    """Whether the scan scored labels and boxes unlike their look, and why not
    (insights.label_look: it needs stored images and enough labelled objects)."""
    reason = str((scan.calibration or {}).get("look", "")) if scan is not None else ""
    if not reason:
        reason = "off: the scan predates it." if scan is not None else "off: no scan yet."
    return {"enabled": reason.startswith("on"), "reason": "Labels unlike their look: " + reason}


def neighbours_status(*, dataset: Dataset) -> dict[str, Any]:
    """Whether the neighbour-disagreement signal is on for the dataset, and why (it needs
    semantic embeddings, not the random-weights fallback: insights.neighbours)."""
    model, reason = neighbour_model(dataset)
    return {"enabled": model is not None, "reason": "Neighbour disagreement is " + reason}


@dataclass(frozen=True)
class ModelUncertainty:
    model: Model
    rows: list[ItemUncertainty]
    margin_url: str


def uncertainty_context(dataset: Dataset, user: AbstractBaseUser | AnonymousUser) -> dict[str, Any]:
    """The Insights section: per model with computed uncertainty, its most uncertain items
    (smallest margin); the models a curator may compute it for."""
    models = list(Model.objects.filter(dataset=dataset).order_by("name")[:50])
    found = []
    for model in models:
        rows = list(
            ItemUncertainty.objects.filter(model=model)
            .select_related("item")
            .order_by("margin", "-entropy_max", "item_id")[:SECTION_TOP]
        )
        if rows:
            query = f'uncertainty["{model.name}"].margin <= {rows[-1].margin:.4g}'
            found.append(ModelUncertainty(model, rows, grid_link(dataset, query)))
    return {
        "models": models,
        "found": found,
        "curator": has_role(dataset.role_of(user), Role.CURATOR),
    }


def uncertainty_of(*, dataset: Dataset, model_id: Any) -> QuerySet[ItemUncertainty]:
    try:
        pk = int(model_id)
    except (TypeError, ValueError):
        raise invalid_field("model", "must be a model id") from None
    return ItemUncertainty.objects.filter(model_id=pk, model__dataset=dataset).select_related(
        "item"
    )
