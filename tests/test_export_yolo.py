"""The YOLO export: a tar stream of normalised box labels, data.yaml and a media list."""

from __future__ import annotations

import csv
import io
import tarfile
from typing import Any

import pytest
import yaml
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from curation import versions
from curation.export.sources import export_source
from curation.export.yolo import yolo_chunks
from curation.models import Dataset, Item, SliceVersionItem
from curation.services import slice_create
from curation.storage import MediaUrls
from tests.slice_factories import box, polygon, write_items

pytestmark = pytest.mark.django_db


def yolo_body(dataset: Dataset, *, slice: Any = None, version: Any = None, **kw: Any) -> bytes:
    source = export_source(dataset=dataset, slice=slice, version=version)
    return b"".join(yolo_chunks(source, urls=MediaUrls(), batch_size=2, **kw))


def untar(body: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def unsigned(media_csv: bytes) -> bytes:
    """media.csv without the signatures of its URLs (they carry an expiry)."""
    import re

    return re.sub(rb"\?sig=[^,\n]*", b"?sig=", media_csv)


def yolo_export(dataset: Dataset, **kw: Any) -> dict[str, bytes]:
    return untar(yolo_body(dataset, **kw))


def parse_labels(text: bytes) -> list[tuple[int, float, float, float, float]]:
    rows = []
    for line in text.decode().splitlines():
        cls, *numbers = line.split()
        rows.append((int(cls), *(float(n) for n in numbers)))
    return rows  # type: ignore[return-value]


def test_labels_hold_normalised_boxes_matching_the_annotations(dataset: Dataset) -> None:
    ids = write_items(
        dataset,
        [
            {
                "reference_id": "a.jpg",
                "annotations": [
                    box("car", 64, 48, 128, 96),
                    box("bus", 0, 0, 640, 480),
                    polygon("person", [[1, 1], [5, 1], [5, 5]]),  # not a box: not a label
                ],
            },
            {"reference_id": "b.jpg", "annotations": []},
            {"reference_id": "c.jpg", "annotations": [box("car", 600, 400, 40, 80)]},
        ],
    )
    files = yolo_export(dataset)

    config = yaml.safe_load(files["data.yaml"])
    assert config["names"] == {0: "bus", 1: "car"} and config["nc"] == 2
    a = parse_labels(files["labels/a.txt"])
    expected = [(1, (64 + 64) / 640, (48 + 48) / 480, 128 / 640, 96 / 480), (0, 0.5, 0.5, 1.0, 1.0)]
    assert len(a) == 2
    for got, want in zip(sorted(a), sorted(expected), strict=True):
        assert got[0] == want[0]
        assert got[1:] == pytest.approx(want[1:], abs=1e-6)
    assert files["labels/b.txt"] == b""
    (c,) = parse_labels(files["labels/c.txt"])
    assert c == pytest.approx((1, 620 / 640, 440 / 480, 40 / 640, 80 / 480), abs=1e-6)

    rows = list(csv.DictReader(io.StringIO(files["media.csv"].decode())))
    assert [r["reference_id"] for r in rows] == ["a.jpg", "b.jpg", "c.jpg"]
    assert rows[0]["image"] == "images/a.jpg"
    assert rows[0]["label"] == "labels/a.txt"
    assert f"/media/items/{ids['a.jpg']}/original?sig=" in rows[0]["url"]
    assert "skipped.txt" not in files


def test_items_without_a_size_are_listed_as_skipped(dataset: Dataset) -> None:
    ref = 'odd, "name"'
    ids = write_items(dataset, [{"reference_id": ref, "annotations": [box("car")]}], size=None)
    files = yolo_export(dataset)
    assert files["skipped.txt"].decode() == f"{ids[ref]}\t{ref}\tno width/height\n"
    assert not any(name.startswith("labels/") for name in files)


def test_it_can_include_the_images(dataset: Dataset) -> None:
    ids = write_items(dataset, [{"reference_id": "a.jpg", "annotations": [box("car")]}])
    default_storage.save(Item.objects.get(pk=ids["a.jpg"]).media_key, ContentFile(b"jpeg bytes"))
    files = yolo_export(dataset, include_media=True)
    assert files["images/a.jpg"] == b"jpeg bytes"
    rows = list(csv.DictReader(io.StringIO(files["media.csv"].decode())))
    assert rows[0]["image"] == "images/a.jpg"


def test_the_api_streams_a_tar(client_for: Any, dataset: Dataset, victor: Any) -> None:
    write_items(dataset, [{"reference_id": "a.jpg", "annotations": [box("car")]}])
    response = client_for(victor).get(f"/api/v1/datasets/{dataset.pk}/export?format=yolo")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "application/x-tar"
    body = b"".join(response.streaming_content)
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:") as tar:
        assert {"data.yaml", "media.csv"} <= set(tar.getnames())


def _sourced(dataset: Dataset, sources: dict[str, str]) -> dict[str, int]:
    """Items (each with a box) read from these image sources, by reference id."""
    ids = write_items(
        dataset, [{"reference_id": ref, "annotations": [box("car")]} for ref in sources]
    )
    for ref, uri in sources.items():
        Item.objects.filter(pk=ids[ref]).update(source_uri=uri)
    return ids


SOURCES = {
    "scene-00144": "/import/demo/images/scene-00144.jpg",
    "car/0001.jpg": "/import/cars/car/0001.jpg",
    "person/0001.jpg": "/import/cars/person/0001.jpg",  # the same stem as the one above
    "0001-x": "https://cdn.example.com/0001.png?sig=1",  # and again, from a URL
    "archive.tar.gz": "",  # no source: its reference id, less the last extension
}


def test_label_files_are_named_by_the_image_stem_and_collisions_by_item_id(
    dataset: Dataset,
) -> None:
    ids = _sourced(dataset, SOURCES)
    files = yolo_export(dataset)
    labels = sorted(name for name in files if name.startswith("labels/"))
    assert labels == sorted(
        [
            "labels/scene-00144.txt",
            "labels/0001.txt",  # the smallest item id keeps the plain name
            f"labels/0001-{ids['person/0001.jpg']}.txt",
            f"labels/0001-{ids['0001-x']}.txt",
            "labels/archive.tar.txt",
        ]
    )
    rows = {r["reference_id"]: r for r in csv.DictReader(io.StringIO(files["media.csv"].decode()))}
    assert rows["car/0001.jpg"]["label"] == "labels/0001.txt"
    assert rows["car/0001.jpg"]["image"] == "images/0001.jpg"
    assert rows["0001-x"]["image"] == f"images/0001-{ids['0001-x']}.jpg"
    assert "labels/<image file stem>.txt" in files["data.yaml"].decode()


def test_stems_in_sql_and_python_agree() -> None:
    from django.db import connection

    from curation.file_names import file_stem, stem_sql

    names = ["a.jpg", "dir/a.b.jpg", ".hidden", "..", ".", "a.", "no-ext", "x/y/z.tar.gz", ""]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT n, {stem_sql('n')} FROM unnest(%s::text[]) n", [names])
        assert dict(cursor.fetchall()) == {n: file_stem(n) for n in names}


def test_a_version_names_its_files_the_same_every_time(dataset: Dataset, alice: Any) -> None:
    ids = _sourced(dataset, SOURCES)
    chosen, _ = slice_create(dataset=dataset, user=alice, name="s", reference_ids=list(SOURCES))
    version = versions.slice_version_create(slice=chosen, user=alice)
    before = yolo_body(dataset, slice=chosen, version=version)
    # A new item that would take "0001" from a live export, and a renamed source.
    _sourced(dataset, {"aaa": "/import/first/0001.jpg"})
    Item.objects.filter(pk=ids["scene-00144"]).update(source_uri="/elsewhere/renamed.jpg")
    # media.csv's URLs are signed with an expiry counted from now, so two exports a second
    # apart differ there; its other columns and every other file are the same bytes.
    again, first = untar(yolo_body(dataset, slice=chosen, version=version)), untar(before)
    assert {k: v for k, v in again.items() if k != "media.csv"} == {
        k: v for k, v in first.items() if k != "media.csv"
    }
    assert unsigned(again["media.csv"]) == unsigned(first["media.csv"])
    assert "labels/scene-00144.txt" in first


def test_a_version_frozen_before_file_names_were_kept_names_files_by_item_id(
    dataset: Dataset, alice: Any
) -> None:
    ids = _sourced(dataset, SOURCES)
    chosen, _ = slice_create(dataset=dataset, user=alice, name="s", reference_ids=list(SOURCES))
    version = versions.slice_version_create(slice=chosen, user=alice)
    SliceVersionItem.objects.filter(version=version).update(file_name="")  # as migrated
    files = untar(yolo_body(dataset, slice=chosen, version=version))
    assert sorted(n for n in files if n.startswith("labels/")) == sorted(
        f"labels/{i}.txt" for i in ids.values()
    )
    assert "labels/<item id>.txt" in files["data.yaml"].decode()
