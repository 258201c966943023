"""Starting an ingest: a source description checked (local paths inside the import roots,
uploads of this dataset, allowed buckets), an uploaded manifest stored, the job created."""

from __future__ import annotations

import os
import uuid
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import urlsplit

from django.core.exceptions import SuspiciousFileOperation
from django.core.files.base import File
from django.core.files.storage import default_storage
from django.utils.text import get_valid_filename

from curation.errors import InvalidInput, field_error
from curation.fetch import (
    BucketNotAllowed,
    FetchError,
    PathNotAllowed,
    import_roots,
    is_url,
    local_path_resolve,
    s3_url_check,
)
from curation.health import disk_space_require
from curation.jobs import job_create
from curation.models import Dataset, Job

SOURCE_TYPES = ("folder", "manifest", "coco")
_SOURCE_KEYS = {
    "folder": {"type", "path", "labels_from_folders"},
    "manifest": {"type", "path", "upload_key", "images_root"},
    "coco": {"type", "path", "upload_key", "images_root"},
}


def _invalid(path: str, message: str) -> InvalidInput:
    return InvalidInput(
        f"Invalid ingest source: {path} {message}.", fields=[field_error(path, message)]
    )


def _clean_local(value: Any, path: str, *, trusted: bool, want_dir: bool) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _invalid(path, "must be a non-empty string")
    if "\x00" in value:
        raise _invalid(path, "must not contain NUL characters")
    if "://" in value:
        raise _invalid(path, "must be a local path, not a URL")
    try:
        # ~ is the operator's shell's business: an API or UI path is taken literally, so
        # "~bob/x" is a folder of that name under the import root, not bob's home.
        raw = Path(value).expanduser() if trusted else Path(value)
    except RuntimeError as exc:  # ~unknownuser
        raise _invalid(path, f"cannot be resolved ({exc})") from None
    if not raw.is_absolute():
        # The operator's shell resolves relative to its working directory; an API caller
        # names a path relative to the first import root.
        roots = [Path.cwd()] if trusted else import_roots()
        if not roots:
            raise _invalid(path, "cannot be read: no import roots are configured")
        raw = roots[0] / raw
    try:
        resolved = local_path_resolve(raw, trusted=trusted)
    except PathNotAllowed as exc:
        raise _invalid(path, exc.reason) from None
    except FetchError as exc:
        raise _invalid(path, f"cannot be resolved ({exc})") from None
    if want_dir and not resolved.is_dir():
        raise _invalid(path, "is not a folder")
    if not want_dir and not resolved.is_file():
        raise _invalid(path, "is not a file")
    return str(resolved)


def _upload_prefix(dataset: Dataset) -> str:
    return f"datasets/{dataset.pk}/uploads/"


def ingest_source_clean(*, dataset: Dataset, source: Any, trusted: bool = False) -> dict[str, Any]:
    """Validate an ingest source description; returns it with local paths resolved.

    `trusted` is for operator-run commands: their local paths need not lie in an import root.
    """
    if not isinstance(source, dict):
        raise _invalid("source", "must be an object")
    kind = source.get("type")
    if kind not in SOURCE_TYPES:
        raise _invalid("source.type", f"must be one of {', '.join(SOURCE_TYPES)}")
    unknown = sorted(set(source) - _SOURCE_KEYS[kind])
    if unknown:
        raise _invalid(f"source.{unknown[0]}", f"is not an option of a {kind} source")
    clean: dict[str, Any] = {"type": kind}
    if kind == "folder":
        clean["path"] = _clean_local(
            source.get("path"), "source.path", trusted=trusted, want_dir=True
        )
        labels = source.get("labels_from_folders", False)
        if not isinstance(labels, bool):
            raise _invalid("source.labels_from_folders", "must be true or false")
        clean["labels_from_folders"] = labels
        return clean
    has_path, has_key = source.get("path") is not None, source.get("upload_key") is not None
    if has_path == has_key:
        raise _invalid("source.path", "give either path or upload_key, not both or neither")
    if has_path:
        clean["path"] = _clean_local(source["path"], "source.path", trusted=trusted, want_dir=False)
    else:
        key = source["upload_key"]
        if (
            not isinstance(key, str)
            or "\x00" in key
            or not key.startswith(_upload_prefix(dataset))
            or ".." in PurePosixPath(key).parts
        ):
            raise _invalid("source.upload_key", "is not an upload of this dataset")
        if not default_storage.exists(key):
            raise _invalid("source.upload_key", "does not exist")
        clean["upload_key"] = key
    root = source.get("images_root")
    if root is not None:
        if isinstance(root, str) and "\x00" in root:
            raise _invalid("source.images_root", "must not contain NUL characters")
        if isinstance(root, str) and urlsplit(root).scheme.lower() == "s3":
            try:
                s3_url_check(root, prefix_only=True)
            except BucketNotAllowed as exc:
                raise _invalid("source.images_root", exc.reason) from None
            except FetchError:
                raise _invalid("source.images_root", "must be s3://bucket/prefix/") from None
        if isinstance(root, str) and is_url(root):
            clean["images_root"] = root
        elif isinstance(root, str) and "://" in root:
            raise _invalid("source.images_root", "must be a folder or an http(s) or s3 URL")
        else:
            clean["images_root"] = _clean_local(
                root, "source.images_root", trusted=trusted, want_dir=True
            )
    return clean


def ingest_enqueue(
    *, dataset: Dataset, user: Any, source: Any, trusted: bool = False, enqueue: bool = True
) -> Job:
    """Check an ingest source and create the job that ingests it into `dataset`.

    `trusted` and `enqueue=False` are for ``manage.py ingest``, which runs the job itself.
    """
    clean = ingest_source_clean(dataset=dataset, source=source, trusted=trusted)
    params: dict[str, Any] = {"source": clean}
    if trusted:
        params["trusted"] = True
    return job_create(kind="ingest", dataset=dataset, user=user, params=params, enqueue=enqueue)


def ingest_store_upload(
    *, dataset: Dataset, filename: str, fileobj: IO[bytes] | File[bytes]
) -> str:
    """Store an uploaded manifest or COCO file for a later ingest; returns its storage key."""
    disk_space_require()  # before the upload takes what space is left
    try:
        name = get_valid_filename(PurePosixPath(str(filename).replace("\\", "/")).name)
    except SuspiciousFileOperation:
        name = "upload"
    stem, suffix = os.path.splitext(name)
    name = stem[:100] + suffix[:16]
    key = f"{_upload_prefix(dataset)}{uuid.uuid4().hex}/{name}"
    content = fileobj if isinstance(fileobj, File) else File(fileobj, name=name)
    return str(default_storage.save(key, content))
