"""Ingest sources: a folder of images, a JSON Lines manifest, a COCO file. Each reads its
records in a fixed order and knows where a resumed job goes on (see `Source`)."""

from __future__ import annotations

import bisect
import hashlib
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import quote, urlsplit

from django.core.files.storage import default_storage

from curation.bulk.validate import MAX_ID_LENGTH
from curation.fetch import (
    FetchError,
    is_url,
    local_path_resolve,
)
from curation.geometry import GeometryError
from curation.media import IMAGE_EXTENSIONS
from curation.storable import Unstorable, json_loads, text_storable

# Room a COCO shape id leaves after its file_name: "coco:", "#", the annotation id and a
# ":polygon:<k>" suffix.
_COCO_ID_ROOM = 64


class SourceError(Exception):
    """A source that cannot be read at all (as opposed to one bad record in it)."""


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
                # record's, in _chunk_start.
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
