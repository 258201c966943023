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

from curation.export.sources import export_source
from curation.export.yolo import yolo_chunks
from curation.models import Dataset, Item
from curation.storage import MediaUrls
from tests.slice_factories import box, polygon, write_items

pytestmark = pytest.mark.django_db


def yolo_export(dataset: Dataset, **kw: Any) -> dict[str, bytes]:
    source = export_source(dataset=dataset)
    body = b"".join(yolo_chunks(source, urls=MediaUrls(), batch_size=2, **kw))
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


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
    a = parse_labels(files[f"labels/{ids['a.jpg']}.txt"])
    expected = [(1, (64 + 64) / 640, (48 + 48) / 480, 128 / 640, 96 / 480), (0, 0.5, 0.5, 1.0, 1.0)]
    assert len(a) == 2
    for got, want in zip(sorted(a), sorted(expected), strict=True):
        assert got[0] == want[0]
        assert got[1:] == pytest.approx(want[1:], abs=1e-6)
    assert files[f"labels/{ids['b.jpg']}.txt"] == b""
    (c,) = parse_labels(files[f"labels/{ids['c.jpg']}.txt"])
    assert c == pytest.approx((1, 620 / 640, 440 / 480, 40 / 640, 80 / 480), abs=1e-6)

    rows = list(csv.DictReader(io.StringIO(files["media.csv"].decode())))
    assert [r["reference_id"] for r in rows] == ["a.jpg", "b.jpg", "c.jpg"]
    assert rows[0]["image"] == f"images/{ids['a.jpg']}.jpg"
    assert rows[0]["label"] == f"labels/{ids['a.jpg']}.txt"
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
    assert files[f"images/{ids['a.jpg']}.jpg"] == b"jpeg bytes"
    rows = list(csv.DictReader(io.StringIO(files["media.csv"].decode())))
    assert rows[0]["image"] == f"images/{ids['a.jpg']}.jpg"


def test_the_api_streams_a_tar(client_for: Any, dataset: Dataset, victor: Any) -> None:
    write_items(dataset, [{"reference_id": "a.jpg", "annotations": [box("car")]}])
    response = client_for(victor).get(f"/api/v1/datasets/{dataset.pk}/export?format=yolo")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "application/x-tar"
    body = b"".join(response.streaming_content)
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:") as tar:
        assert {"data.yaml", "media.csv"} <= set(tar.getnames())
