"""The export formats and the options that choose one; the writer each format runs.

The same writers run in the request (StreamingHttpResponse) or in an "export" job that
stores the file for a later download (curation.export.jobs). docs/export.md describes
the formats.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from curation.errors import invalid_field
from curation.export.coco import coco_chunks, coco_results_chunks
from curation.export.jsonl import jsonl_chunks
from curation.export.sources import ExportSource, Progress
from curation.export.yolo import yolo_chunks
from curation.models import Dataset, Model
from curation.storage import MEDIA_URL_MODES, MediaUrlMode, MediaUrls

ExportFormat = Literal["jsonl", "coco", "yolo", "coco_results"]
FORMATS: tuple[ExportFormat, ...] = ("jsonl", "coco", "yolo", "coco_results")
# The formats of the items themselves (the UI's export links); coco_results is a model's.
ITEM_FORMATS: tuple[ExportFormat, ...] = ("jsonl", "coco", "yolo")
# The formats that carry a model's predictions (`predictions=<model name>`).
PREDICTION_FORMATS = ("jsonl", "coco_results")
CONTENT_TYPES = {
    "jsonl": "application/x-ndjson",
    "coco": "application/json",
    "yolo": "application/x-tar",
    "coco_results": "application/json",
}
EXTENSIONS = {"jsonl": "jsonl", "coco": "json", "yolo": "tar", "coco_results": "results.json"}
MAX_URL_TTL = 7 * 24 * 3600  # S3 presigned URLs cannot live longer


def url_ttl_clean(raw: Any) -> int | None:
    if raw in (None, ""):
        return None
    try:
        ttl = int(raw)
    except (TypeError, ValueError):
        ttl = 0
    if not 10 <= ttl <= MAX_URL_TTL:
        raise invalid_field(
            "url_ttl", f"must be a whole number of seconds from 10 to {MAX_URL_TTL}"
        )
    return ttl


def export_options_clean(
    *,
    dataset: Dataset,
    format: Any,
    predictions: Any = None,
    url_ttl: Any = None,
    include_media: Any = False,
    media_urls: Any = None,
) -> dict[str, Any]:
    """Check export options; unknown formats or models are a 400 naming the field.

    `media_urls` may stay None: export_media_mode picks it once the source is known.
    """
    if format not in FORMATS:
        raise invalid_field("format", f"must be one of {', '.join(FORMATS)}")
    model = None
    if predictions not in (None, ""):
        if format not in PREDICTION_FORMATS:
            raise invalid_field(
                "predictions",
                f"only the {' and '.join(PREDICTION_FORMATS)} formats carry predictions",
            )
        model = Model.objects.filter(dataset=dataset, name=predictions).first()
        if model is None:
            raise invalid_field("predictions", f"no model {predictions!r} in this dataset")
    elif format == "coco_results":
        raise invalid_field("predictions", "coco_results needs the name of a model")
    if include_media not in (True, False):
        raise invalid_field("include_media", "must be true or false")
    if include_media and format != "yolo":
        raise invalid_field("include_media", "only the yolo format can include images")
    if media_urls in (None, ""):
        media_urls = None
    elif media_urls not in MEDIA_URL_MODES:
        raise invalid_field("media_urls", f"must be one of {', '.join(MEDIA_URL_MODES)}")
    ttl = url_ttl_clean(url_ttl)
    if media_urls == "plain" and ttl is not None:
        raise invalid_field("url_ttl", "only signed media URLs expire; plain ones need a token")
    return {
        "format": format,
        "model": model,
        "url_ttl": ttl,
        "include_media": include_media,
        "media_urls": media_urls,
    }


def export_media_mode(
    source: ExportSource, *, media_urls: MediaUrlMode | None, url_ttl: int | None
) -> MediaUrlMode:
    """The media URL mode asked for, else plain for a frozen version (so that its export
    is the same file every time) and signed for live data (or when a `url_ttl` was given)."""
    if media_urls is not None:
        return media_urls
    if url_ttl is not None or not source.reproducible:
        return "signed"
    return "plain"


def export_chunks(
    source: ExportSource,
    *,
    format: ExportFormat,
    urls: MediaUrls,
    model: Model | None = None,
    include_media: bool = False,
    progress: Progress | None = None,
) -> Iterator[bytes]:
    """The export as a stream of byte chunks."""
    if format == "jsonl":
        return jsonl_chunks(source, urls=urls, model=model, progress=progress)
    if format == "coco":
        return coco_chunks(source, urls=urls, progress=progress)
    if format == "coco_results":
        if model is None:
            raise ValueError("coco_results needs a model")
        return coco_results_chunks(source, model=model, progress=progress)
    return yolo_chunks(source, urls=urls, include_media=include_media, progress=progress)


def export_filename(source: ExportSource, format: ExportFormat) -> str:
    return f"{source.filename_stem}.{EXTENSIONS[format]}"
