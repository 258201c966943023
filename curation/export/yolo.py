"""The YOLO export: a tar stream of label files, media.csv and data.yaml (and images)."""

from __future__ import annotations

import json
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import IO, Any

from django.core.files.storage import default_storage

from curation.export.sources import (
    BATCH_SIZE,
    SPOOL_CHUNK,
    ExportSource,
    Progress,
    Row,
    iter_rows,
    source_labels,
    source_renamed_stems,
)
from curation.file_names import file_stem
from curation.storage import MediaUrls

YOLO_KINDS = ("box",)


class _Tar:
    """A tar archive written as a stream of bytes, member by member.

    Written by hand (headers from tarfile.TarInfo) rather than with tarfile.TarFile,
    which keeps every member it wrote in a list and buffers whole members: here each
    member's bytes go out as soon as they are made, and large ones in pieces.
    """

    BLOCK = tarfile.BLOCKSIZE
    RECORD = tarfile.RECORDSIZE

    def __init__(self, *, mtime: float) -> None:
        self.offset = 0
        self.mtime = int(mtime)

    def _out(self, data: bytes) -> bytes:
        self.offset += len(data)
        return data

    def header(self, name: str, size: int) -> bytes:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mtime = self.mtime
        info.mode = 0o644
        return self._out(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def padding(self, size: int) -> bytes:
        return self._out(b"\0" * (-size % self.BLOCK))

    def member(self, name: str, data: bytes) -> bytes:
        return self.header(name, len(data)) + self._out(data) + self.padding(len(data))

    def member_from(self, name: str, f: IO[bytes], size: int) -> Iterator[bytes]:
        """A member whose `size` bytes are read from `f`, in pieces."""
        yield self.header(name, size)
        left = size
        while left > 0:
            chunk = f.read(min(SPOOL_CHUNK, left))
            if not chunk:
                raise OSError(f"{name}: the file ended early")
            left -= len(chunk)
            yield self._out(chunk)
        yield self.padding(size)

    def end(self) -> bytes:
        # Two zero blocks, then zeros up to a whole record, as tar(1) and tarfile write.
        closing = self._out(b"\0" * (2 * self.BLOCK))
        return closing + self._out(b"\0" * (-self.offset % self.RECORD))


def yolo_line(box: dict[str, Any], cls: int, width: int, height: int) -> str | None:
    """`cls cx cy w h`, normalised to the image size and clipped to it; None if empty."""
    x0 = min(max(float(box["x"]), 0.0), width)
    y0 = min(max(float(box["y"]), 0.0), height)
    x1 = min(max(float(box["x"]) + float(box["width"]), 0.0), width)
    y1 = min(max(float(box["y"]) + float(box["height"]), 0.0), height)
    if x1 <= x0 or y1 <= y0:
        return None
    cx, cy = (x0 + x1) / 2 / width, (y0 + y1) / 2 / height
    w, h = (x1 - x0) / width, (y1 - y0) / height
    return f"{cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"


def _csv_field(value: str) -> str:
    if any(c in value for c in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _media_member(tar: _Tar, name: str, key: str) -> Iterator[bytes]:
    """The stored image as a tar member; nothing if it cannot be read."""
    try:
        size = default_storage.size(key)
        f = default_storage.open(key, "rb")
    except OSError:
        return  # missing media: media.csv still lists its URL
    with f:
        yield from tar.member_from(name, f, size)


def yolo_stem(row: Row, renamed: set[int]) -> str:
    """What the item's label and image files are called: the stem of the image's file name
    as ingested ("scene-00144" for scene-00144.jpg), `<stem>-<item id>` for an item whose
    stem an item with a smaller id already has (so the names are unique and the same in
    every export of a version), the item id where the name has no usable stem and in
    versions frozen before file names were kept (as they were exported then)."""
    if row.file_name is None:
        return str(row.item_id)
    stem = file_stem(row.file_name)
    if stem in ("", ".", ".."):
        return str(row.item_id)
    return f"{stem}-{row.item_id}" if row.item_id in renamed else stem


def yolo_chunks(
    source: ExportSource,
    *,
    urls: MediaUrls,
    include_media: bool = False,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> Iterator[bytes]:
    """A tar stream: labels/<stem>.txt per item (see yolo_stem), media.csv, data.yaml (and
    with `include_media`, images/<stem><ext> read from storage).

    Only boxes become YOLO labels; classes are the box labels sorted by name. Items
    without a known width and height cannot be normalised: they are listed in
    skipped.txt instead.
    """
    names = {label: index for index, label in enumerate(source_labels(source, YOLO_KINDS))}
    renamed = source_renamed_stems(source)
    by_item_id = False
    tar = _Tar(mtime=source.timestamp())
    # media.csv and skipped.txt grow with the items: they wait on disk, not in memory.
    with tempfile.TemporaryFile() as media_list, tempfile.TemporaryFile() as skipped:
        media_list.write(b"image,label,reference_id,url\n")
        for batch in iter_rows(
            source, payload="annotations", batch_size=batch_size, progress=progress
        ):
            out: list[bytes] = []
            for row in batch:
                if not row.width or not row.height:
                    skipped.write(f"{row.item_id}\t{row.reference_id}\tno width/height\n".encode())
                    continue
                lines = []
                for shape in json.loads(row.payload):
                    if shape.get("kind") not in YOLO_KINDS:
                        continue
                    label = shape["label"]
                    if label not in names:
                        names[label] = len(names)
                    line = yolo_line(shape["geometry"], names[label], row.width, row.height)
                    if line is not None:
                        lines.append(line)
                stem = yolo_stem(row, renamed)
                by_item_id = by_item_id or row.file_name is None
                label_path = f"labels/{stem}.txt"
                out.append(
                    tar.member(label_path, ("\n".join(lines) + "\n" if lines else "").encode())
                )
                ext = PurePosixPath(row.media_key).suffix.lower() or ".jpg"
                image_path = f"images/{stem}{ext}"
                if include_media and row.media_key:
                    yield b"".join(out)
                    out = []
                    yield from _media_member(tar, image_path, row.media_key)
                url = urls.url(row.item_id, row.media_key) or ""
                fields = (image_path, label_path, row.reference_id, url)
                media_list.write(",".join(_csv_field(v) for v in fields).encode() + b"\n")
            yield b"".join(out)
        yield tar.member("data.yaml", _data_yaml(source, names, include_media, by_item_id).encode())
        for name, f in (("media.csv", media_list), ("skipped.txt", skipped)):
            size = f.tell()
            if size or name == "media.csv":
                f.seek(0)
                yield from tar.member_from(name, f, size)
    yield tar.end()


def _data_yaml(
    source: ExportSource, names: dict[str, int], include_media: bool, by_item_id: bool
) -> str:
    named = "<item id>" if by_item_id else "<image file stem>"
    lines = [
        f"# Exported from nucleus: {source.describe()}",
        f"# Boxes only. Labels are labels/{named}.txt; media.csv maps each to its image URL.",
    ]
    if not include_media:
        lines.append("# Download each url in media.csv to its `image` path before training.")
    lines += ["path: .", "train: images", "val: images", f"nc: {len(names)}", "names:"]
    # JSON strings are valid YAML double-quoted scalars: any label is written safely.
    lines += [
        f"  {index}: {json.dumps(label)}"
        for label, index in sorted(names.items(), key=lambda n: n[1])
    ]
    return "\n".join(lines) + "\n"
