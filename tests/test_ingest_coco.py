"""Ingest from a COCO detection file: images, categories, boxes, polygons, crowd RLE,
where images are found, per-image errors and re-runs."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from curation.bulk.validate import MAX_ID_LENGTH
from curation.ingest.services import ingest_enqueue, ingest_store_upload
from curation.ingest.sources import coco_annotation_id
from curation.jobs import job_run
from curation.models import Annotation, Dataset, Item, Job, JobStatus
from tests.ingest_support import Served, image_bytes, serve_http, write_image


@pytest.fixture
def http_server() -> Iterator[Served]:
    with serve_http() as served:
        yield served


def _run(dataset: Dataset, user: Any, source: dict[str, Any]) -> Job:
    job = ingest_enqueue(dataset=dataset, user=user, source=source)
    finished = job_run(job_id=job.pk)
    assert finished is not None
    return finished


def _coco(images: list[Any], annotations: list[Any]) -> dict[str, Any]:
    return {
        "info": {"description": "test"},
        "images": images,
        "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}],
        "annotations": annotations,
    }


# A 64x48 image: an uncompressed RLE of it has runs adding up to 48 * 64.
RLE = {"size": [48, 64], "counts": [100, 20, 48 * 64 - 120]}


@pytest.fixture
def coco_file(import_root: Path) -> Path:
    root = import_root / "coco"
    write_image(root / "a.jpg")
    write_image(root / "val" / "b.jpg")
    write_image(root / "c.jpg")
    data = _coco(
        images=[
            {"id": 10, "file_name": "a.jpg", "width": 64, "height": 48},
            {"id": 11, "file_name": "val/b.jpg", "width": 64, "height": 48},
            {"id": 12, "file_name": "c.jpg", "width": 64, "height": 48},
        ],
        annotations=[
            {
                "id": 1,
                "image_id": 10,
                "category_id": 1,
                "bbox": [2, 3, 20, 10],
                "iscrowd": 0,
                "segmentation": [[2, 3, 22, 3, 22, 13], [30, 30, 40, 30, 40, 40, 30, 40]],
            },
            {
                "id": 2,
                "image_id": 10,
                "category_id": 2,
                "bbox": [0, 0, 64, 48],
                "iscrowd": 1,
                "segmentation": RLE,
            },
            {"id": 3, "image_id": 11, "category_id": 2, "bbox": [10, 10, 5, 5]},
        ],
    )
    path = root / "instances.json"
    path.write_text(json.dumps(data))
    return path


def test_it_ingests_a_coco_file(dataset: Dataset, alice: Any, coco_file: Path) -> None:
    job = _run(dataset, alice, {"type": "coco", "path": str(coco_file)})

    assert job.status == JobStatus.SUCCEEDED, job.message
    assert (job.progress_total, job.error_count, job.result["created"]) == (3, 0, 3)
    items = {i.reference_id: i for i in Item.objects.filter(dataset=dataset)}
    assert sorted(items) == ["a.jpg", "c.jpg", "val/b.jpg"]
    assert items["val/b.jpg"].metadata == {"coco_image_id": 11}
    assert items["val/b.jpg"].source_uri == str(coco_file.parent / "val" / "b.jpg")
    anns = {a.annotation_id: a for a in Annotation.objects.filter(dataset=dataset)}
    assert sorted(anns) == [
        "coco:a.jpg#1",
        "coco:a.jpg#1:polygon:0",
        "coco:a.jpg#1:polygon:1",
        "coco:a.jpg#2",
        "coco:a.jpg#2:mask",
        "coco:val/b.jpg#3",
    ]
    box = anns["coco:a.jpg#1"]
    assert (box.kind, box.label, box.item.reference_id) == ("box", "car", "a.jpg")
    assert box.geometry == {"x": 2.0, "y": 3.0, "width": 20.0, "height": 10.0}
    assert box.metadata == {"coco_id": 1, "iscrowd": 0}
    assert anns["coco:a.jpg#1:polygon:1"].geometry == {
        "vertices": [[30.0, 30.0], [40.0, 30.0], [40.0, 40.0], [30.0, 40.0]]
    }
    mask = anns["coco:a.jpg#2:mask"]
    assert (mask.kind, mask.label, mask.geometry) == ("segmentation", "person", {"rle": RLE})
    assert mask.metadata == {"coco_id": 2, "iscrowd": 1}
    assert not Annotation.objects.filter(item__reference_id="c.jpg").exists()


def test_a_rerun_changes_nothing(dataset: Dataset, alice: Any, coco_file: Path) -> None:
    source = {"type": "coco", "path": str(coco_file)}
    _run(dataset, alice, source)

    def snapshot() -> list[list[Any]]:
        return [
            list(model.objects.order_by("id").values_list("id", "updated"))
            for model in (Item, Annotation)
        ]

    before = snapshot()
    job = _run(dataset, alice, source)

    assert snapshot() == before
    assert [len(rows) for rows in before] == [3, 6]
    assert (job.result["created"], job.result["updated"], job.result["annotations_written"]) == (
        0,
        0,
        0,
    )


def test_two_coco_files_in_one_dataset_keep_each_others_annotations(
    dataset: Dataset, alice: Any, import_root: Path
) -> None:
    # COCO annotation ids restart at 1 in every file: train's annotation 1 and val's
    # annotation 1 are different annotations on different images.
    write_image(import_root / "a.jpg")
    write_image(import_root / "b.jpg")
    for name, file_name, category in (("train.json", "a.jpg", 1), ("val.json", "b.jpg", 2)):
        data = _coco(
            [{"id": 1, "file_name": file_name}],
            [{"id": 1, "image_id": 1, "category_id": category, "bbox": [1, 1, 5, 5]}],
        )
        (import_root / name).write_text(json.dumps(data))
        job = _run(dataset, alice, {"type": "coco", "path": str(import_root / name)})
        assert job.error_count == 0, job.errors

    shapes = set(Annotation.objects.values_list("item__reference_id", "label", "annotation_id"))
    assert shapes == {("a.jpg", "car", "coco:a.jpg#1"), ("b.jpg", "person", "coco:b.jpg#1")}

    job = _run(dataset, alice, {"type": "coco", "path": str(import_root / "train.json")})
    assert (job.result["annotations_written"], Annotation.objects.count()) == (0, 2)


def test_an_annotation_id_stays_within_the_id_column() -> None:
    long_name = "deep/" * 100 + "a.jpg"
    base = coco_annotation_id(long_name, 900100397133)
    assert base == coco_annotation_id(long_name, 900100397133)
    assert base.endswith("#900100397133")
    assert len(f"{base}:polygon:99") <= MAX_ID_LENGTH
    assert coco_annotation_id("a.jpg", 1) != coco_annotation_id("b.jpg", 1)


def test_it_records_bad_images_and_annotations(
    dataset: Dataset, alice: Any, import_root: Path
) -> None:
    root = import_root / "coco"
    write_image(root / "ok.jpg")
    write_image(root / "outside.jpg")
    write_image(root / "nocat.jpg")
    (root / "broken.jpg").write_bytes(b"not an image")
    data = _coco(
        images=[
            {"id": 1, "file_name": "ok.jpg"},
            {"id": 2, "file_name": "outside.jpg"},
            {"id": 3, "file_name": "nocat.jpg"},
            {"id": 4, "file_name": "broken.jpg"},
            {"id": 5},
        ],
        annotations=[
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]},
            {"id": 2, "image_id": 2, "category_id": 1, "bbox": [100, 100, 5, 5]},
            {"id": 3, "image_id": 3, "category_id": 9, "bbox": [1, 1, 5, 5]},
            {"id": 4, "image_id": 99, "category_id": 1, "bbox": [1, 1, 5, 5]},
        ],
    )
    path = root / "instances.json"
    path.write_text(json.dumps(data))

    job = _run(dataset, alice, {"type": "coco", "path": str(path)})

    assert job.status == JobStatus.SUCCEEDED, job.message
    assert list(Item.objects.values_list("reference_id", flat=True)) == ["ok.jpg"]
    assert job.error_count == 5
    by_ref = {e["reference_id"]: e["message"] for e in job.errors}
    assert "outside the 64x48 image" in by_ref["outside.jpg"]
    assert "category_id 9 is not in categories" in by_ref["nocat.jpg"]
    assert "not an image" in by_ref["broken.jpg"]
    unnamed = {e["source"]: e["message"] for e in job.errors if e["reference_id"] is None}
    assert unnamed == {
        f"{path}: annotations[3]": "image_id 99 is not in images; annotation skipped",
        f"{path}: images[4]": "must be an object with file_name",
    }


def test_images_are_found_under_images_root(
    dataset: Dataset, alice: Any, import_root: Path
) -> None:
    write_image(import_root / "pixels" / "a.jpg")
    path = import_root / "labels" / "instances.json"
    path.parent.mkdir()
    path.write_text(json.dumps(_coco([{"id": 1, "file_name": "a.jpg"}], [])))

    job = _run(
        dataset,
        alice,
        {"type": "coco", "path": str(path), "images_root": str(import_root / "pixels")},
    )

    assert job.error_count == 0, job.errors
    assert Item.objects.get().source_uri == str(import_root / "pixels" / "a.jpg")


def test_images_come_from_coco_url_when_not_on_disk(
    dataset: Dataset, alice: Any, import_root: Path, http_server: Served, settings: Any
) -> None:
    settings.NUCLEUS_ALLOW_PRIVATE_URLS = True
    http_server.files["/remote.jpg"] = image_bytes(seed="remote")
    images = [{"id": 1, "file_name": "remote.jpg", "coco_url": http_server.url("/remote.jpg")}]
    key = ingest_store_upload(
        dataset=dataset,
        filename="instances.json",
        fileobj=io.BytesIO(json.dumps(_coco(images, [])).encode()),
    )

    job = _run(dataset, alice, {"type": "coco", "upload_key": key})

    assert job.error_count == 0, job.errors
    item = Item.objects.get()
    assert (item.reference_id, item.source_uri) == ("remote.jpg", http_server.url("/remote.jpg"))


def test_images_come_from_a_url_prefix(
    dataset: Dataset, alice: Any, import_root: Path, http_server: Served, settings: Any
) -> None:
    settings.NUCLEUS_ALLOW_PRIVATE_URLS = True
    http_server.files["/bucket/dir/my%20pic.jpg"] = image_bytes(seed="pic")
    path = import_root / "instances.json"
    path.write_text(json.dumps(_coco([{"id": 1, "file_name": "dir/my pic.jpg"}], [])))

    job = _run(
        dataset,
        alice,
        {"type": "coco", "path": str(path), "images_root": http_server.url("/bucket/")},
    )

    assert job.error_count == 0, job.errors
    assert Item.objects.get().reference_id == "dir/my pic.jpg"


def test_a_file_that_is_not_coco_fails_the_job(
    dataset: Dataset, alice: Any, import_root: Path
) -> None:
    path = import_root / "instances.json"
    path.write_text('{"images": ')

    job = _run(dataset, alice, {"type": "coco", "path": str(path)})

    assert job.status == JobStatus.FAILED
    assert "is not valid JSON" in job.message
    assert not Item.objects.exists()


def test_an_image_postgresql_cannot_store_is_an_item_error_and_the_rest_land(
    dataset: Dataset, alice: Any, import_root: Path
) -> None:
    root = import_root / "coco"
    write_image(root / "a.jpg")
    data = _coco(
        images=[
            {"id": 1, "file_name": "a\ud800.jpg", "width": 64, "height": 48},
            {"id": 2, "file_name": "a.jpg", "width": 64, "height": 48},
        ],
        annotations=[{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 3, 20, 10]}],
    )
    path = root / "annotations.json"
    path.write_text(json.dumps(data))  # the surrogate as JSON's \ud800 escape

    job = _run(dataset, alice, {"type": "coco", "path": str(path)})

    assert job.status == JobStatus.SUCCEEDED, job.message
    assert list(Item.objects.values_list("reference_id", flat=True)) == ["a.jpg"]
    surrogate = "must not contain lone UTF-16 surrogates (\\ud800-\\udfff)"
    assert [(e["reference_id"], e["message"]) for e in job.errors] == [
        # Every place is named: the annotation's id is made from the file name.
        ("a\\ud800.jpg", f"reference_id: {surrogate}; annotations[0].id: {surrogate}")
    ]


def test_a_coco_file_nested_too_deep_for_the_parser_fails_with_a_clear_message(
    dataset: Dataset, alice: Any, import_root: Path
) -> None:
    path = import_root / "deep.json"
    path.write_text('{"images": ' + "[" * 5000 + "]" * 5000 + "}")

    job = _run(dataset, alice, {"type": "coco", "path": str(path)})

    assert job.status == JobStatus.FAILED
    assert job.message.endswith("deep.json: is nested deeper than 64 levels")
