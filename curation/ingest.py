"""Ingest: images and their annotations from a folder, a JSONL manifest or a COCO file.

`ingest_enqueue` checks a source description and starts an "ingest" job; the job's runner
reads the source in order, in chunks of NUCLEUS_INGEST_CHUNK records. For each chunk it
reads and stores the media (outside any transaction), validates the rows, then writes them
and the job's progress in one checkpoint, so an interrupted job resumes at the first
chunk it had not committed. Problems with one record (a corrupt image, a refused URL, a
box outside its image, a bad JSON line) become per-item errors on the job; the rest of
the chunk lands. Every write is an upsert, so re-running an ingest changes nothing.

See docs/ingest.md for the three formats.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import os
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.base import File
from django.core.files.storage import default_storage
from django.db import connection
from django.utils.text import get_valid_filename

from curation.bulk.validate import MAX_ID_LENGTH, ItemRecord, Media, clean_item_record
from curation.bulk.write import UpsertResult, records_write
from curation.errors import InvalidInput, field_error
from curation.extensions import vectors
from curation.fetch import (
    BucketNotAllowed,
    FetchError,
    PathNotAllowed,
    import_roots,
    is_url,
    local_path_resolve,
    read_location,
    s3_url_check,
)
from curation.geometry import GeometryError
from curation.health import disk_space_require
from curation.jobs import JobContext, job_create, job_runner
from curation.media import IMAGE_EXTENSIONS, MediaError, media_process
from curation.models import Dataset, Job
from curation.storable import Unstorable, json_check, json_loads, text_storable

SOURCE_TYPES = ("folder", "manifest", "coco")
# Room a COCO shape id leaves after its file_name: "coco:", "#", the annotation id and a
# ":polygon:<k>" suffix.
_COCO_ID_ROOM = 64
# Media of a chunk is read and decoded by a few threads: fetching URLs waits on the
# network, and Pillow releases the GIL while it decodes.
MEDIA_THREADS = 4
_SOURCE_KEYS = {
    "folder": {"type", "path", "labels_from_folders"},
    "manifest": {"type", "path", "upload_key", "images_root"},
    "coco": {"type", "path", "upload_key", "images_root"},
}


class SourceError(Exception):
    """A source that cannot be read at all (as opposed to one bad record in it)."""


# ------------------------------------------------------------------------------ services


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


# ------------------------------------------------------------------------------- sources


@dataclass
class SourceRecord:
    """One item as read from a source, before its image is read or its row validated."""

    reference_id: str | None
    raw: dict[str, Any]  # the item row, as curation.bulk.validate.clean_item_record takes it
    location: str | None  # absolute path or URL of the image; None: the row has no image
    source: str  # where it came from, for error messages
    line: int | None = None
    error: str | None = None  # found while reading the source itself
    cursor: str | None = None  # where a resumed job goes on after this record, if not by count

    def error_dict(self, message: str) -> dict[str, Any]:
        error: dict[str, Any] = {
            "reference_id": _storable(self.reference_id),
            "source": _storable(self.source),
            "message": _storable(message),
        }
        if self.line is not None:
            error["line"] = self.line
        return error


def _storable(text: str | None) -> str | None:
    """`text` with NUL and lone surrogates spelled out: the job's jsonb cannot hold them."""
    return text_storable(text) if text else text


def _image_location(value: str, base: str | None) -> str:
    """Where an image named in a manifest or COCO file is: a URL or an absolute path."""
    if is_url(value):
        return value
    if os.path.isabs(value):
        return os.path.normpath(value)
    if base is None:
        raise ValueError(
            "is a relative path, but this uploaded file has no folder: "
            "use an absolute path or URL, or give images_root"
        )
    if is_url(base):
        scheme = urlsplit(base).scheme.lower()
        return base.rstrip("/") + "/" + (value if scheme == "s3" else quote(value))
    return os.path.normpath(os.path.join(base, value))


class FolderSource:
    """Every image file under a folder, sorted by relative path; dot-files are skipped.

    A resumed job goes on after the last relative path it committed rather than at a count
    of files: the folder is listed again, and files deleted or added before that path in
    the meantime must not make it skip or repeat any.
    """

    def __init__(self, spec: dict[str, Any], trusted: bool) -> None:
        self.root = local_path_resolve(spec["path"], trusted=trusted)
        self.labels = bool(spec.get("labels_from_folders"))
        self._files: list[str] | None = None

    def files(self) -> list[str]:
        if self._files is None:
            if not self.root.is_dir():
                raise SourceError(f"{self.root} is not a folder")
            found = []
            for top, dirs, names in os.walk(self.root):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                rel = Path(top).relative_to(self.root)
                for name in names:
                    if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS):
                        found.append((rel / name).as_posix())
            self._files = sorted(found)
        return self._files

    def count(self) -> int:
        return len(self.files())

    def preamble_errors(self) -> list[dict[str, Any]]:
        return []

    def start(self, state: dict[str, Any]) -> int:
        after = state.get("after")
        if isinstance(after, str):
            return bisect.bisect_right(self.files(), after)
        return int(state.get("position", 0))

    def records(self, start: int) -> Iterator[SourceRecord]:
        for rel in self.files()[start:]:
            raw: dict[str, Any] = {"reference_id": rel}
            parent = PurePosixPath(rel).parent.name
            if self.labels and parent:
                raw["annotations"] = [{"kind": "category", "label": parent, "geometry": {}}]
            path = str(self.root / rel)
            yield SourceRecord(reference_id=rel, raw=raw, location=path, source=path, cursor=rel)


def _open_source_file(spec: dict[str, Any], trusted: bool) -> tuple[IO[bytes], str, str | None]:
    """Open a manifest or COCO file; returns it, its name for messages, and its folder."""
    if spec.get("upload_key"):
        key = spec["upload_key"]
        return default_storage.open(key, "rb"), f"upload:{key}", None
    try:
        path = local_path_resolve(spec["path"], trusted=trusted)
        return open(path, "rb"), str(path), str(path.parent)
    except (FetchError, OSError) as exc:
        raise SourceError(f"cannot open {spec['path']}: {exc}") from None


def _relative_base(spec: dict[str, Any], folder: str | None) -> str | None:
    return spec.get("images_root") or folder


class ManifestSource:
    """JSON Lines, one item per non-blank line; blank lines are skipped and not counted."""

    def __init__(self, spec: dict[str, Any], trusted: bool) -> None:
        self.spec = spec
        self.trusted = trusted

    def _lines(self) -> Iterator[tuple[int, bytes, str, str | None]]:
        f, name, folder = _open_source_file(self.spec, self.trusted)
        with f:
            for number, line in enumerate(f, start=1):
                if line.strip():
                    yield number, line, name, folder

    def count(self) -> int:
        return sum(1 for _ in self._lines())

    def preamble_errors(self) -> list[dict[str, Any]]:
        return []

    def start(self, state: dict[str, Any]) -> int:
        return int(state.get("position", 0))

    def records(self, start: int) -> Iterator[SourceRecord]:
        for number, line, name, folder in itertools.islice(self._lines(), start, None):
            origin = f"{name}:{number}"
            try:
                # Nesting too deep fails here; its text is checked with every other
                # record's, in _chunk_prepare.
                raw = json_loads(line.decode("utf-8-sig") if number == 1 else line, check=False)
            except Unstorable as exc:
                yield SourceRecord(None, {}, None, origin, number, exc.message)
                continue
            except (ValueError, UnicodeDecodeError) as exc:
                yield SourceRecord(None, {}, None, origin, number, f"is not valid JSON: {exc}")
                continue
            if not isinstance(raw, dict):
                yield SourceRecord(None, {}, None, origin, number, "must be a JSON object")
                continue
            ref = raw.get("reference_id")
            ref = str(ref) if isinstance(ref, str | int) and not isinstance(ref, bool) else None
            image = raw.get("image")
            location = None
            error = None
            if image is not None:
                if not isinstance(image, str) or not image.strip():
                    error = "image: must be a path or URL"
                else:
                    try:
                        location = _image_location(image, _relative_base(self.spec, folder))
                    except ValueError as exc:
                        error = f"image: {exc}"
            yield SourceRecord(ref, raw, location, location or origin, number, error)


def coco_annotation_id(file_name: str, coco_id: Any) -> str:
    """The client id of a COCO annotation's box, the base of its segmentation parts' ids.

    COCO annotation ids are unique within one file only: train.json and val.json both
    start at 1. Namespacing by the image's reference id (its file_name) keeps two files
    ingested into one dataset from overwriting each other's annotations, while the same
    file ingested again still yields the same ids. A file_name too long to fit the id
    column is replaced by its digest, which is as stable.
    """
    name = file_name
    if len(name) > MAX_ID_LENGTH - _COCO_ID_ROOM:
        name = "sha1:" + hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()
    return f"coco:{name}#{coco_id}"


class CocoSource:
    """A COCO detection file: one item per image, in the file's order.

    Each COCO annotation becomes a box (client id ``coco:<file_name>#<id>``) and, when it
    has one, its segmentation: each polygon part a polygon (``...#<id>:polygon:<k>``), a
    crowd RLE a segmentation mask (``...#<id>:mask``). All carry
    ``{"coco_id": id, "iscrowd": 0|1}`` in their metadata, so an export can put the parts of
    one COCO annotation back together.
    """

    def __init__(self, spec: dict[str, Any], trusted: bool) -> None:
        self.spec = spec
        self.trusted = trusted
        f, self.name, folder = _open_source_file(spec, trusted)
        with f:
            try:
                data = json_loads(f.read(), check=False)
            except Unstorable as exc:
                raise SourceError(f"{self.name}: {exc.message}") from None
            except (ValueError, UnicodeDecodeError) as exc:
                raise SourceError(f"{self.name} is not valid JSON: {exc}") from None
        self.base = _relative_base(spec, folder)
        self.local_base = self.base is not None and not is_url(self.base)
        if not isinstance(data, dict):
            raise SourceError(f"{self.name}: must be a JSON object with images and annotations")
        self.images = self._list(data, "images")
        annotations = self._list(data, "annotations")
        self.categories = {
            c["id"]: c.get("name")
            for c in self._list(data, "categories")
            if isinstance(c, dict) and "id" in c
        }
        known = {im.get("id") for im in self.images if isinstance(im, dict)}
        self.by_image: dict[Any, list[dict[str, Any]]] = {}
        self.orphans: list[dict[str, Any]] = []
        for index, ann in enumerate(annotations):
            image_id = ann.get("image_id") if isinstance(ann, dict) else None
            if image_id in known:
                self.by_image.setdefault(image_id, []).append(ann)
            else:
                self.orphans.append(
                    {
                        "reference_id": None,
                        "source": f"{self.name}: annotations[{index}]",
                        "message": f"image_id {image_id!r} is not in images; annotation skipped",
                    }
                )

    def _list(self, data: dict[str, Any], key: str) -> list[Any]:
        value = data.get(key, [])
        if not isinstance(value, list):
            raise SourceError(f"{self.name}: {key} must be a list")
        return value

    def count(self) -> int:
        return len(self.images)

    def preamble_errors(self) -> list[dict[str, Any]]:
        return self.orphans

    def start(self, state: dict[str, Any]) -> int:
        return int(state.get("position", 0))

    def _location(self, image: dict[str, Any], file_name: str) -> str | None:
        try:
            location = _image_location(file_name, self.base)
        except ValueError:
            location = None
        url = image.get("coco_url")
        if isinstance(url, str) and url and (location is None or self._missing(location)):
            return url
        return location

    def _missing(self, location: str) -> bool:
        if is_url(location):
            return False
        try:
            return not local_path_resolve(location, trusted=self.trusted).is_file()
        except FetchError:
            return False  # let the read report why it is refused

    def records(self, start: int) -> Iterator[SourceRecord]:
        for index in range(start, len(self.images)):
            image = self.images[index]
            origin = f"{self.name}: images[{index}]"
            if not isinstance(image, dict) or not isinstance(image.get("file_name"), str):
                yield SourceRecord(None, {}, None, origin, error="must be an object with file_name")
                continue
            file_name = image["file_name"]
            raw: dict[str, Any] = {
                "reference_id": file_name,
                "metadata": {"coco_image_id": image.get("id")},
            }
            error = None
            try:
                raw["annotations"] = [
                    shape
                    for ann in self.by_image.get(image.get("id"), [])
                    for shape in self._shapes(ann, file_name)
                ]
            except GeometryError as exc:
                error = f"{exc.path}: {exc.message}"
            location = self._location(image, file_name)
            if location is None and error is None:
                error = (
                    "file_name: is relative, but an uploaded file has no folder; give images_root"
                )
            yield SourceRecord(file_name, raw, location, location or origin, error=error)

    def _shapes(self, ann: Any, file_name: str) -> Iterator[dict[str, Any]]:
        if not isinstance(ann, dict) or "id" not in ann:
            raise GeometryError("annotation", "must be an object with an id")
        coco_id = ann["id"]
        base = coco_annotation_id(file_name, coco_id)
        where = f"annotation {coco_id}"
        label = self.categories.get(ann.get("category_id"))
        if not isinstance(label, str) or not label:
            raise GeometryError(
                where, f"category_id {ann.get('category_id')!r} is not in categories"
            )
        crowd = 1 if ann.get("iscrowd") else 0
        metadata = {"coco_id": coco_id, "iscrowd": crowd}
        bbox = ann.get("bbox")
        if bbox is not None:
            if not isinstance(bbox, list) or len(bbox) != 4:
                raise GeometryError(f"{where}.bbox", "must be [x, y, width, height]")
            x, y, w, h = bbox
            yield {
                "id": base,
                "kind": "box",
                "label": label,
                "geometry": {"x": x, "y": y, "width": w, "height": h},
                "metadata": metadata,
            }
        segmentation = ann.get("segmentation")
        if isinstance(segmentation, dict):
            yield {
                "id": f"{base}:mask",
                "kind": "segmentation",
                "label": label,
                "geometry": {"rle": segmentation},
                "metadata": metadata,
            }
        elif isinstance(segmentation, list):
            for part, flat in enumerate(segmentation):
                if not isinstance(flat, list) or len(flat) % 2:
                    raise GeometryError(
                        f"{where}.segmentation[{part}]", "must be a flat list [x1, y1, x2, y2, ...]"
                    )
                yield {
                    "id": f"{base}:polygon:{part}",
                    "kind": "polygon",
                    "label": label,
                    "geometry": {"vertices": [flat[i : i + 2] for i in range(0, len(flat), 2)]},
                    "metadata": metadata,
                }
        elif segmentation is not None:
            raise GeometryError(f"{where}.segmentation", "must be polygons or an RLE object")


Source = FolderSource | ManifestSource | CocoSource


def source_open(spec: dict[str, Any], *, trusted: bool = False) -> Source:
    """The reader for a cleaned source description."""
    kind = spec.get("type")
    if kind == "folder":
        return FolderSource(spec, trusted)
    if kind == "manifest":
        return ManifestSource(spec, trusted)
    if kind == "coco":
        return CocoSource(spec, trusted)
    raise SourceError(f"unknown source type {kind!r}")


# -------------------------------------------------------------------------------- runner


@dataclass
class _Stored:
    media: Media
    size: tuple[int | None, int | None]


def _stored(dataset: Dataset, refs: Iterable[str]) -> dict[str, _Stored]:
    """What the dataset already holds for these reference ids: media fields and size."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reference_id, media_key, thumbnail_key, source_uri, width, height, sha256,"
            " byte_size FROM curation_item WHERE dataset_id = %s AND reference_id = ANY(%s)",
            [dataset.pk, list(refs)],
        )
        return {
            ref: _Stored(Media(key, thumb, uri, w, h, sha, size), (w, h))
            for ref, key, thumb, uri, w, h, sha, size in cursor.fetchall()
        }


def _media_load(location: str, stored: _Stored | None, dataset_id: int, trusted: bool) -> Media:
    """Read an image and store it, unless the stored item already has these very bytes."""
    data = read_location(location, max_bytes=settings.NUCLEUS_MAX_IMAGE_BYTES, trusted=trusted)
    if (
        stored is not None
        and stored.media.media_key
        and stored.media.source_uri == location
        and hashlib.sha256(data).hexdigest() == stored.media.sha256
    ):
        return stored.media  # same file, same bytes: already decoded, stored, thumbnailed
    return media_process(dataset_id=dataset_id, data=data, source_uri=location)


def _storable_record(record: SourceRecord) -> SourceRecord:
    """The record, or a copy carrying the error if its row holds text PostgreSQL cannot
    store or is nested too deep: one error path for every source's records."""
    if record.error is not None:
        return record
    try:
        json_check(record.raw)
    except Unstorable as exc:
        return replace(record, error=exc.message)
    return record


def _chunk_prepare(
    dataset: Dataset, chunk: list[SourceRecord], *, pool: Executor, trusted: bool
) -> tuple[list[ItemRecord], list[dict[str, Any]]]:
    """Read, store and validate one chunk: its clean item records and its per-item errors."""
    chunk = [_storable_record(r) for r in chunk]
    errors: list[dict[str, Any]] = []
    # Only records without an error: a bad one's reference id may be unsendable.
    stored = _stored(dataset, {r.reference_id for r in chunk if r.reference_id and r.error is None})
    futures = {
        id(r): pool.submit(
            _media_load, r.location, stored.get(r.reference_id or ""), dataset.pk, trusted
        )
        for r in chunk
        if r.error is None and r.location is not None
    }
    records: dict[str, ItemRecord] = {}
    for record in chunk:
        if record.error is not None:
            errors.append(record.error_dict(record.error))
            continue
        media = None
        if id(record) in futures:
            try:
                media = futures[id(record)].result()
            except (FetchError, MediaError) as exc:
                errors.append(record.error_dict(str(exc)))
                continue
        known = stored[record.reference_id].size if record.reference_id in stored else (None, None)
        try:
            item = clean_item_record(record.raw, media=media, known_size=known)
        except GeometryError as exc:
            errors.append(
                record.error_dict(f"{exc.path}: {exc.message}" if exc.path else exc.message)
            )
            continue
        # A reference id twice in one chunk: the later row wins, as it would across chunks.
        records[item.reference_id] = item
    return list(records.values()), errors


_COUNTS = ("created", "updated", "unchanged", "annotations_written", "predictions_written")


def _count(counts: dict[str, int], result: UpsertResult) -> None:
    counts["created"] += result.items_created
    counts["updated"] += result.items_updated
    counts["unchanged"] += result.items_unchanged
    counts["annotations_written"] += result.annotations_written
    counts["predictions_written"] += result.predictions_written


@job_runner("ingest")
def ingest_run(ctx: JobContext) -> dict[str, Any]:
    """Ingest the job's source into its dataset, resuming after the last checkpoint."""
    dataset = ctx.job.dataset
    if dataset is None:
        raise SourceError("an ingest job needs a dataset")
    trusted = bool(ctx.params.get("trusted"))
    source = source_open(ctx.params["source"], trusted=trusted)
    ctx.set_total(source.count())
    position = source.start(ctx.state)
    counts = {key: 0 for key in _COUNTS} | dict(ctx.state.get("counts", {}))
    pending = source.preamble_errors() if position == 0 else []
    records_iter = source.records(position)
    with ThreadPoolExecutor(MEDIA_THREADS, thread_name_prefix="ingest-media") as pool:
        while chunk := list(itertools.islice(records_iter, settings.NUCLEUS_INGEST_CHUNK)):
            records, errors = _chunk_prepare(dataset, chunk, pool=pool, trusted=trusted)
            position += len(chunk)
            state: dict[str, Any] = {"position": position, "counts": dict(counts)}
            if chunk[-1].cursor is not None:
                state["after"] = chunk[-1].cursor
            with ctx.checkpoint(done=position, state=state, errors=pending + errors):
                result = records_write(dataset=dataset, records=records)
                # checkpoint() saves `state` when the block ends: the counts committed
                # with these rows include them, and a resumed run starts from them.
                _count(state["counts"], result)
            counts = state["counts"]
            pending = []
    if pending:  # a source with no records, only errors (e.g. COCO annotations of no image)
        with ctx.checkpoint(
            done=position, state={"position": position, "counts": counts}, errors=pending
        ):
            pass
    if counts["created"] or counts["updated"]:
        # New or changed images need vectors for search; with the embeddings app this
        # queues one embedding job (or reuses a waiting one) and never fails the ingest.
        vectors().items_ingested(dataset=dataset, user=ctx.job.created_by)
    return {**counts, "errors": ctx.job.error_count, "total": position}
