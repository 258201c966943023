"""The "export" job: an export written into storage for a later download."""

from __future__ import annotations

import hashlib
import os
import tempfile
from typing import Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage

from curation.export.formats import (
    CONTENT_TYPES,
    ExportFormat,
    export_chunks,
    export_filename,
    export_media_mode,
)
from curation.export.sources import export_source, source_count
from curation.jobs import JobContext, job_create, job_runner
from curation.models import Dataset, Job, Model, Slice, SliceVersion
from curation.storage import MediaUrlMode, MediaUrls


def export_job_start(
    *,
    dataset: Dataset,
    user: Any,
    format: ExportFormat,
    slice: Slice | None = None,
    version: SliceVersion | None = None,
    model: Model | None = None,
    url_ttl: int | None = None,
    include_media: bool = False,
    media_urls: MediaUrlMode | None = None,
    base_url: str | None = None,
) -> Job:
    """Queue an export that writes its file into storage for a later download.

    `base_url` is where the caller reached the service (the request's scheme and host):
    the file's media URLs point there, not at a SITE_URL that may name another port.
    """
    source = export_source(dataset=dataset, slice=slice, version=version)
    params = {
        "format": format,
        "slice_id": slice.pk if slice is not None else None,
        "version": version.number if version is not None else None,
        "predictions": model.name if model is not None else None,
        "url_ttl": url_ttl,
        "include_media": include_media,
        "media_urls": export_media_mode(source, media_urls=media_urls, url_ttl=url_ttl),
        "base_url": base_url or settings.SITE_URL,
    }
    return job_create(
        kind="export", dataset=dataset, user=user, params=params, total=source_count(source)
    )


def export_storage_key(job: Job, filename: str) -> str:
    return f"datasets/{job.dataset_id}/exports/{job.pk}/{filename}"


@job_runner("export")
def export_run(ctx: JobContext) -> dict[str, Any]:
    """Write the export to a temporary file, then store it under a key fixed by the job.

    A retried or resumed job writes the whole file again and replaces the stored one, so
    running it twice leaves exactly one complete file.
    """
    job = ctx.job
    dataset = job.dataset
    if dataset is None:
        raise ValueError("an export job needs a dataset")
    params = ctx.params
    slice = version = None
    if params.get("slice_id") is not None:
        slice = Slice.objects.get(dataset=dataset, pk=params["slice_id"])
        if params.get("version") is not None:
            version = SliceVersion.objects.get(slice=slice, number=params["version"])
    model = None
    if params.get("predictions"):
        model = Model.objects.get(dataset=dataset, name=params["predictions"])
    source = export_source(dataset=dataset, slice=slice, version=version)
    ctx.set_total(source_count(source))
    format = params["format"]

    def progress(done: int) -> None:
        with ctx.checkpoint(done=done, state={}):  # also stops a cancelled job
            pass

    filename = export_filename(source, format)
    key = export_storage_key(job, filename)
    # Jobs queued before media_urls and base_url were recorded keep their old behaviour.
    urls = MediaUrls(
        mode=params.get("media_urls") or "signed",
        ttl=params.get("url_ttl"),
        base_url=params.get("base_url"),
    )
    digest = hashlib.sha256()
    with tempfile.TemporaryFile() as out:
        for chunk in export_chunks(
            source,
            format=format,
            urls=urls,
            model=model,
            include_media=bool(params.get("include_media")),
            progress=progress,
        ):
            out.write(chunk)
            digest.update(chunk)
        size = out.tell()
        out.seek(0)
        if default_storage.exists(key):
            default_storage.delete(key)
        stored = default_storage.save(key, File(out, name=filename))
    return {
        "key": stored,
        "filename": filename,
        "size": size,
        "sha256": digest.hexdigest(),
        "format": format,
        "content_type": CONTENT_TYPES[format],
        "items": ctx.job.progress_done,
    }


def export_file_name(job: Job) -> str:
    return str(job.result.get("filename") or os.path.basename(str(job.result.get("key", ""))))
