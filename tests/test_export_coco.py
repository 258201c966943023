"""The COCO export: valid for pycocotools, and a round trip through our COCO import."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from curation import versions
from curation.export.coco import coco_chunks
from curation.export.sources import export_source
from curation.ingest.services import ingest_enqueue
from curation.jobs import job_run
from curation.models import Annotation, Dataset, Item, JobStatus, SliceVersionItem
from curation.services import slice_create
from curation.storage import MediaUrls
from tests.api_helpers import error_paths
from tests.slice_factories import box, polygon, write_items

pytestmark = [
    pytest.mark.django_db,
    # pycocotools 2.0.11 with numpy 2: a DeprecationWarning inside its mask decoder.
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]


def coco_export(dataset: Dataset, **kw: Any) -> dict[str, Any]:
    source = export_source(dataset=dataset, **kw)
    return json.loads(b"".join(coco_chunks(source, urls=MediaUrls(), batch_size=2)))


def load_with_pycocotools(data: dict[str, Any], tmp_path: Path) -> COCO:
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(data))
    return COCO(str(path))


ROWS = [
    {
        "reference_id": "a.jpg",
        "annotations": [
            box("car", 10, 10, 100, 50),
            box("person", 200, 100, 20, 60),
            polygon("person", [[0, 0], [40, 0], [40, 30], [0, 30]]),
            {"kind": "category", "label": "daytime", "geometry": {}},
        ],
    },
    {"reference_id": "b.jpg", "annotations": []},
    {"reference_id": "c.jpg", "annotations": [box("bus", 1, 2, 3, 4)]},
]


def test_it_writes_images_categories_and_annotations_pycocotools_loads(
    dataset: Dataset, tmp_path: Path
) -> None:
    ids = write_items(dataset, ROWS)
    data = coco_export(dataset)
    coco = load_with_pycocotools(data, tmp_path)

    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["bus", "car", "person"]
    assert sorted(coco.getImgIds()) == sorted(ids.values())
    image = coco.loadImgs(ids["a.jpg"])[0]
    assert (image["file_name"], image["width"], image["height"]) == ("a.jpg", 640, 480)
    assert "/media/items/" in image["coco_url"]

    anns = coco.loadAnns(coco.getAnnIds(imgIds=[ids["a.jpg"]]))
    by_shape = {(coco.cats[a["category_id"]]["name"], tuple(a["bbox"])): a for a in anns}
    assert set(by_shape) == {
        ("car", (10, 10, 100, 50)),
        ("person", (200, 100, 20, 60)),
        ("person", (0, 0, 40, 30)),  # the polygon's own bbox
    }
    assert by_shape[("car", (10, 10, 100, 50))]["area"] == 5000
    assert by_shape[("car", (10, 10, 100, 50))]["segmentation"] == []
    poly = by_shape[("person", (0, 0, 40, 30))]
    assert poly["area"] == 1200 and poly["iscrowd"] == 0
    assert poly["segmentation"] == [[0, 0, 40, 0, 40, 30, 0, 30]]
    mask = coco.annToMask(poly)
    assert mask.shape == (480, 640) and abs(int(mask.sum()) - 1200) < 100
    assert len({a["id"] for a in coco.dataset["annotations"]}) == 4  # the category is not exported
    assert coco.getAnnIds(imgIds=[ids["b.jpg"]]) == []


def test_masks_get_their_area_and_bbox_from_the_rle(dataset: Dataset, tmp_path: Path) -> None:
    mask = np.zeros((480, 640), dtype=np.uint8, order="F")
    mask[100:150, 200:260] = 1
    mask[300, 10] = 1
    rle = mask_utils.encode(mask)
    counts = rle["counts"].decode()
    write_items(
        dataset,
        [
            {
                "reference_id": "m.jpg",
                "annotations": [
                    {
                        "kind": "segmentation",
                        "label": "blob",
                        "geometry": {"rle": {"size": [480, 640], "counts": counts}},
                    }
                ],
            }
        ],
    )
    (ann,) = coco_export(dataset)["annotations"]
    assert ann["area"] == float(mask_utils.area(rle))
    assert ann["bbox"] == [float(v) for v in mask_utils.toBbox(rle)]
    assert ann["iscrowd"] == 1 and ann["segmentation"] == {"size": [480, 640], "counts": counts}
    coco = load_with_pycocotools(coco_export(dataset), tmp_path)
    assert int(coco.annToMask(coco.loadAnns(coco.getAnnIds())[0]).sum()) == int(mask.sum())


def test_a_version_exports_its_frozen_annotations(dataset: Dataset, alice: Any) -> None:
    write_items(dataset, ROWS)
    chosen, _ = slice_create(dataset=dataset, user=alice, name="s", reference_ids=["a.jpg"])
    version = versions.slice_version_create(slice=chosen, user=alice)
    before = coco_export(dataset, slice=chosen, version=version)
    Annotation.objects.filter(dataset=dataset, label="car").delete()
    after = coco_export(dataset, slice=chosen, version=version)
    for data in (before, after):
        data.pop("info")
        for image in data["images"]:
            image.pop("coco_url")
    assert before == after
    assert [c["name"] for c in after["categories"]] == ["car", "person"]
    assert len(coco_export(dataset, slice=chosen)["annotations"]) == 2


def _image(path: Path, size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 120, 150)).save(path, "JPEG")


def _ingest(dataset: Dataset, user: Any, source: dict[str, Any]) -> None:
    job = ingest_enqueue(dataset=dataset, user=user, source=source)
    job = job_run(job_id=job.pk)
    assert job is not None and job.status == JobStatus.SUCCEEDED, (job.message, job.errors)
    assert job.error_count == 0, job.errors


def _shapes(dataset: Dataset, kind: str) -> list[tuple[str, str, Any]]:
    rows = Annotation.objects.filter(dataset=dataset, kind=kind).select_related("item")
    return sorted(
        (a.item.reference_id, a.label, json.dumps(a.geometry, sort_keys=True)) for a in rows
    )


def test_it_round_trips_through_our_coco_import(
    dataset: Dataset, alice: Any, import_root: Path
) -> None:
    _image(import_root / "imgs" / "a.jpg", (320, 240))
    _image(import_root / "imgs" / "b.jpg", (200, 100))
    manifest = [
        {
            "reference_id": "imgs/a.jpg",
            "image": "imgs/a.jpg",
            "annotations": [
                box("car", 10.5, 20, 100, 50),
                box("truck", 0, 0, 320, 240),
                polygon("person", [[5, 5], [60, 5], [60, 90], [5, 90]]),
            ],
        },
        {
            "reference_id": "imgs/b.jpg",
            "image": "imgs/b.jpg",
            "annotations": [box("car", 1, 1, 10, 10)],
        },
    ]
    (import_root / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in manifest))
    _ingest(dataset, alice, {"type": "manifest", "path": str(import_root / "manifest.jsonl")})

    exported = coco_export(dataset)
    (import_root / "export.json").write_text(json.dumps(exported))
    copy = Dataset.objects.create(name="copy", owner=alice)
    _ingest(copy, alice, {"type": "coco", "path": str(import_root / "export.json")})

    # Every box and polygon came back on the same image with the same label and geometry.
    assert set(_shapes(dataset, "box")) <= set(_shapes(copy, "box"))
    assert _shapes(copy, "polygon") == _shapes(dataset, "polygon")
    # The polygon's computed bbox came back as a box of its own: exporting the copy gives
    # the same COCO annotations (but for image ids, which are item ids).
    again = coco_export(copy)

    def normal(data: dict[str, Any]) -> list[Any]:
        names = {c["id"]: c["name"] for c in data["categories"]}
        files = {i["id"]: i["file_name"] for i in data["images"]}
        return sorted(
            (
                files[a["image_id"]],
                names[a["category_id"]],
                a["bbox"],
                a["area"],
                a["segmentation"],
                a["iscrowd"],
            )
            for a in data["annotations"]
        )

    assert normal(again) == normal(exported)
    assert [(i["file_name"], i["width"], i["height"]) for i in again["images"]] == [
        (i["file_name"], i["width"], i["height"]) for i in exported["images"]
    ]


def _named_items(dataset: Dataset) -> dict[str, int]:
    """Items as ingests leave them: with where the image was read from, or with none."""
    ids = write_items(
        dataset,
        [
            {"reference_id": "scene-00144", "annotations": []},  # the demo's manifest
            {"reference_id": "car/0001.jpg", "annotations": []},  # a folder ingest
            {"reference_id": "frame-7", "annotations": []},  # an http(s) image
            {"reference_id": "pushed", "annotations": []},  # by the API, no image
        ],
    )
    Item.objects.filter(pk=ids["scene-00144"]).update(
        source_uri="/srv/import/demo/images/scene-00144.jpg"
    )
    Item.objects.filter(pk=ids["car/0001.jpg"]).update(source_uri="/srv/import/cars/car/0001.jpg")
    Item.objects.filter(pk=ids["frame-7"]).update(
        source_uri="https://cdn.example.com/run%204/frame-7.png?X-Amz-Signature=ab#top"
    )
    return ids


NAMED = {
    "scene-00144": "scene-00144.jpg",
    "car/0001.jpg": "car/0001.jpg",
    "frame-7": "frame-7.png",
    "pushed": "pushed",
}


def test_file_name_is_the_image_file_as_ingested_not_the_reference_id(dataset: Dataset) -> None:
    ids = _named_items(dataset)
    files = {i["id"]: i["file_name"] for i in coco_export(dataset)["images"]}
    assert files == {ids[ref]: name for ref, name in NAMED.items()}


def test_a_version_keeps_the_file_names_it_was_frozen_with(dataset: Dataset, alice: Any) -> None:
    ids = _named_items(dataset)
    chosen, _ = slice_create(dataset=dataset, user=alice, name="s", reference_ids=list(NAMED))
    version = versions.slice_version_create(slice=chosen, user=alice)
    # Plain media URLs, as a version exports by default: signed ones carry an expiry
    # counted from now, so two files made a second apart would differ in their coco_url.
    before = b"".join(
        coco_chunks(
            export_source(dataset=dataset, slice=chosen, version=version),
            urls=MediaUrls(mode="plain"),
        )
    )
    Item.objects.filter(pk=ids["scene-00144"]).update(source_uri="/elsewhere/renamed.jpg")
    source = export_source(dataset=dataset, slice=chosen, version=version)
    after = b"".join(coco_chunks(source, urls=MediaUrls(mode="plain")))
    assert before == after
    files = {i["id"]: i["file_name"] for i in json.loads(after)["images"]}
    assert files[ids["scene-00144"]] == "scene-00144.jpg"
    assert coco_export(dataset, slice=chosen)["images"][0]["file_name"] == "renamed.jpg"


def test_a_version_frozen_before_names_were_kept_still_names_reference_ids(
    dataset: Dataset, alice: Any
) -> None:
    ids = _named_items(dataset)
    chosen, _ = slice_create(dataset=dataset, user=alice, name="s", reference_ids=list(NAMED))
    version = versions.slice_version_create(slice=chosen, user=alice)
    SliceVersionItem.objects.filter(version=version).update(file_name="")  # as migrated
    files = {
        i["id"]: i["file_name"]
        for i in coco_export(dataset, slice=chosen, version=version)["images"]
    }
    assert files == {ids[ref]: ref for ref in NAMED}


def _predicted(
    label: str, confidence: float, *, vertices: Any = None, **at: float
) -> dict[str, Any]:
    """A prediction of the model "det": a box (x, y, w, h) or a polygon (vertices)."""
    shape = polygon(label, vertices) if vertices is not None else box(label, **at)
    return {"model": "det", "confidence": confidence, **shape}


PREDICTED = [
    {
        "reference_id": "a.jpg",
        "annotations": [box("car", 10, 10, 100, 50), box("person", 200, 100, 20, 60)],
        "predictions": [
            _predicted("car", 0.9, x=12, y=11, w=98, h=50),
            _predicted("person", 0.4, x=0, y=0, w=5, h=5),
            _predicted("dog", 0.3, x=1, y=1, w=2, h=2),  # no annotation has it
        ],
    },
    {
        "reference_id": "b.jpg",
        "annotations": [box("bus", 1, 2, 3, 4)],
        "predictions": [_predicted("bus", 0.8, vertices=[[1, 2], [4, 2], [4, 6], [1, 6]])],
    },
    {"reference_id": "c.jpg", "annotations": []},
]


def test_a_models_predictions_export_as_coco_results_pycocotools_evaluates(
    client_for: Any, dataset: Dataset, victor: Any, tmp_path: Path
) -> None:
    from pycocotools.cocoeval import COCOeval

    ids = write_items(dataset, PREDICTED)
    client = client_for(victor)
    base = f"/api/v1/datasets/{dataset.pk}/export"
    response = client.get(base, {"format": "coco_results", "predictions": "det"})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == 'attachment; filename="street_scenes.results.json"'
    results = json.loads(b"".join(response.streaming_content))
    truth = json.loads(b"".join(client.get(base, {"format": "coco"}).streaming_content))
    names = {c["name"]: c["id"] for c in truth["categories"]}
    assert names == {"bus": 1, "car": 2, "person": 3}
    assert sorted(results, key=lambda r: r["score"]) == [
        {"image_id": ids["a.jpg"], "category_id": 4, "bbox": [1.0, 1.0, 2.0, 2.0], "score": 0.3},
        {"image_id": ids["a.jpg"], "category_id": 3, "bbox": [0.0, 0.0, 5.0, 5.0], "score": 0.4},
        {
            "image_id": ids["b.jpg"],
            "category_id": 1,
            "bbox": [1.0, 2.0, 3.0, 4.0],
            "score": 0.8,
            "segmentation": [[1.0, 2.0, 4.0, 2.0, 4.0, 6.0, 1.0, 6.0]],
        },
        {
            "image_id": ids["a.jpg"],
            "category_id": 2,
            "bbox": [12.0, 11.0, 98.0, 50.0],
            "score": 0.9,
        },
    ]
    coco = load_with_pycocotools(truth, tmp_path)
    detections = coco.loadRes([r for r in results if r["category_id"] in names.values()])
    evaluation = COCOeval(coco, detections, "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    # Paired by image and category id: car and bus found exactly, person missed.
    assert evaluation.stats[1] == pytest.approx(2 / 3, abs=1e-3)  # AP at IoU 0.5


def test_coco_results_of_a_model_nobody_has_is_a_400_naming_predictions(
    client_for: Any, dataset: Dataset, victor: Any
) -> None:
    write_items(dataset, PREDICTED)
    client = client_for(victor)
    base = f"/api/v1/datasets/{dataset.pk}/export"
    assert error_paths(client.get(base + "?format=coco_results&predictions=nope")) == [
        "predictions"
    ]
    assert error_paths(client.get(base + "?format=coco_results")) == ["predictions"]
    assert error_paths(client.get(base + "?format=yolo&predictions=det")) == ["predictions"]
    jobs = f"/api/v1/datasets/{dataset.pk}/exports"
    started = client.post(jobs, {"format": "coco_results", "predictions": "nope"}, format="json")
    assert error_paths(started) == ["predictions"]


def test_an_export_job_writes_coco_results(client_for: Any, dataset: Dataset, alice: Any) -> None:
    ids = write_items(dataset, PREDICTED)
    client = client_for(alice)
    started = client.post(
        f"/api/v1/datasets/{dataset.pk}/exports",
        {"format": "coco_results", "predictions": "det"},
        format="json",
    )
    assert started.status_code == 202, started.json()
    job = job_run(job_id=started.json()["id"])
    assert job is not None and job.status == JobStatus.SUCCEEDED, job.message
    assert job.result["filename"] == "street_scenes.results.json"
    download = client.get(f"/api/v1/datasets/{dataset.pk}/exports/{job.pk}/download")
    results = json.loads(b"".join(download.streaming_content))
    assert sorted(r["image_id"] for r in results) == sorted([ids["a.jpg"]] * 3 + [ids["b.jpg"]])
