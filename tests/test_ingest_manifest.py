"""Ingest from a JSONL manifest: local paths and URLs, metadata, annotations and
predictions, per-line errors, re-runs, resuming, and uploaded manifests."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from curation.errors import InvalidInput
from curation.ingest.services import ingest_enqueue, ingest_store_upload
from curation.jobs import job_run
from curation.media import media_process
from curation.models import Annotation, Dataset, Item, Job, JobStatus, Prediction
from tests.ingest_support import Served, image_bytes, s3_bucket_ensure, serve_http, write_image
from tests.s3 import S3Bucket, moto_server, s3_bucket, s3_client, s3_storage  # noqa: F401

BOX = {"x": 4, "y": 4, "width": 20, "height": 10}


@pytest.fixture
def http_server() -> Iterator[Served]:
    with serve_http() as served:
        yield served


def _manifest(path: Path, rows: list[Any]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(dataset: Dataset, user: Any, source: dict[str, Any]) -> Job:
    job = ingest_enqueue(dataset=dataset, user=user, source=source)
    finished = job_run(job_id=job.pk)
    assert finished is not None
    return finished


@pytest.fixture
def manifest(import_root: Path, http_server: Served, settings: Any) -> Path:
    settings.NUCLEUS_ALLOW_PRIVATE_URLS = True  # the test server is on loopback
    root = import_root / "set"
    write_image(root / "images" / "one.jpg")
    elsewhere = write_image(import_root / "shared" / "two.png")
    http_server.files["/three.jpg"] = image_bytes(seed="three")
    return _manifest(
        root / "manifest.jsonl",
        [
            {
                "reference_id": "one",
                "image": "images/one.jpg",
                "metadata": {"weather": "rain", "camera": 3},
                "annotations": [
                    {"id": "a1", "kind": "box", "label": "car", "geometry": BOX},
                    {
                        "kind": "polygon",
                        "label": "road",
                        "geometry": {"vertices": [[0, 40], [60, 40], [30, 20]]},
                    },
                ],
                "predictions": [
                    {
                        "model": "yolo",
                        "id": "p1",
                        "kind": "box",
                        "label": "car",
                        "confidence": 0.9,
                        "geometry": BOX,
                    },
                ],
            },
            {"reference_id": "two", "image": str(elsewhere), "metadata": {"weather": "sun"}},
            "",
            {
                "reference_id": "three",
                "image": http_server.url("/three.jpg"),
                "annotations": [{"kind": "category", "label": "night"}],
            },
        ],
    )


def test_it_ingests_a_manifest(
    dataset: Dataset, alice: Any, manifest: Path, http_server: Served
) -> None:
    job = _run(dataset, alice, {"type": "manifest", "path": str(manifest)})

    assert job.status == JobStatus.SUCCEEDED, job.message
    assert (job.progress_total, job.error_count, job.result["created"]) == (3, 0, 3)
    items = {i.reference_id: i for i in Item.objects.filter(dataset=dataset)}
    assert sorted(items) == ["one", "three", "two"]
    assert items["one"].metadata == {"weather": "rain", "camera": 3}
    assert items["one"].source_uri == str(manifest.parent / "images" / "one.jpg")
    assert items["two"].width == 64
    assert items["three"].source_uri == http_server.url("/three.jpg")
    anns = {
        (a.item.reference_id, a.kind, a.label) for a in Annotation.objects.select_related("item")
    }
    assert anns == {
        ("one", "box", "car"),
        ("one", "polygon", "road"),
        ("three", "category", "night"),
    }
    assert Annotation.objects.get(annotation_id="a1").geometry == {
        "x": 4.0,
        "y": 4.0,
        "width": 20.0,
        "height": 10.0,
    }
    prediction = Prediction.objects.get()
    assert (prediction.model.name, prediction.prediction_id, prediction.confidence) == (
        "yolo",
        "p1",
        0.9,
    )


def test_a_rerun_changes_nothing(dataset: Dataset, alice: Any, manifest: Path) -> None:
    source = {"type": "manifest", "path": str(manifest)}
    _run(dataset, alice, source)

    def snapshot() -> list[list[Any]]:
        return [
            list(model.objects.order_by("id").values_list("id", "updated"))
            for model in (Item, Annotation, Prediction)
        ]

    before = snapshot()
    job = _run(dataset, alice, source)

    assert job.status == JobStatus.SUCCEEDED, job.message
    assert snapshot() == before
    assert [len(rows) for rows in before] == [3, 3, 1]
    assert (job.result["created"], job.result["updated"], job.result["unchanged"]) == (0, 0, 3)
    assert (job.result["annotations_written"], job.result["predictions_written"]) == (0, 0)


def test_it_records_bad_lines_and_lands_the_rest(
    dataset: Dataset,
    alice: Any,
    import_root: Path,
    http_server: Served,
    settings: Any,
    tmp_path: Path,
) -> None:
    settings.NUCLEUS_ALLOW_PRIVATE_URLS = False
    write_image(import_root / "ok.jpg")
    write_image(tmp_path / "secret.jpg")
    path = _manifest(
        import_root / "m.jsonl",
        [
            {"reference_id": "ok", "image": "ok.jpg"},
            '{"reference_id": "broken", "image": ',
            {
                "reference_id": "outside",
                "image": "ok.jpg",
                "annotations": [
                    {
                        "kind": "box",
                        "label": "car",
                        "geometry": {"x": 100, "y": 100, "width": 5, "height": 5},
                    }
                ],
            },
            {"reference_id": "private", "image": http_server.url("/ok.jpg")},
            {"reference_id": "escape", "image": "../secret.jpg"},
            {"reference_id": "missing", "image": "nope.jpg"},
            ["not", "an", "object"],
            {"image": "ok.jpg"},
        ],
    )

    job = _run(dataset, alice, {"type": "manifest", "path": str(path)})

    assert job.status == JobStatus.SUCCEEDED, job.message
    assert list(Item.objects.values_list("reference_id", flat=True)) == ["ok"]
    assert job.error_count == 7
    by_line = {e["line"]: e for e in job.errors}
    assert sorted(by_line) == [2, 3, 4, 5, 6, 7, 8]
    assert "not valid JSON" in by_line[2]["message"]
    assert by_line[2]["source"] == f"{path}:2"
    assert by_line[3]["reference_id"] == "outside"
    assert "annotations[0].geometry" in by_line[3]["message"]
    assert "outside the 64x48 image" in by_line[3]["message"]
    assert "NUCLEUS_ALLOW_PRIVATE_URLS" in by_line[4]["message"]
    assert "outside the import roots" in by_line[5]["message"]
    assert "does not exist" in by_line[6]["message"]
    assert "must be a JSON object" in by_line[7]["message"]
    assert "reference_id" in by_line[8]["message"]
    assert http_server.requests == []


def test_it_records_an_unreachable_url(
    dataset: Dataset, alice: Any, import_root: Path, http_server: Served, settings: Any
) -> None:
    settings.NUCLEUS_ALLOW_PRIVATE_URLS = True
    write_image(import_root / "ok.jpg")
    path = _manifest(
        import_root / "m.jsonl",
        [
            {"reference_id": "gone", "image": http_server.url("/gone.jpg")},
            {"reference_id": "ok", "image": "ok.jpg"},
        ],
    )

    job = _run(dataset, alice, {"type": "manifest", "path": str(path)})

    assert [(e["reference_id"], e["line"]) for e in job.errors] == [("gone", 1)]
    assert "HTTP 404" in job.errors[0]["message"]
    assert list(Item.objects.values_list("reference_id", flat=True)) == ["ok"]


def test_a_row_without_image_updates_a_stored_item(
    dataset: Dataset, alice: Any, manifest: Path, import_root: Path
) -> None:
    _run(dataset, alice, {"type": "manifest", "path": str(manifest)})
    path = _manifest(
        import_root / "labels.jsonl",
        [
            {
                "reference_id": "two",
                "annotations": [{"kind": "box", "label": "dog", "geometry": BOX}],
            },
            {
                "reference_id": "two",
                "annotations": [
                    {
                        "kind": "box",
                        "label": "dog",
                        "geometry": {"x": 70, "y": 0, "width": 5, "height": 5},
                    }
                ],
            },
        ],
    )

    job = _run(dataset, alice, {"type": "manifest", "path": str(path)})

    # The second row's box lies outside the stored 64x48 image, so it is refused.
    assert [e["line"] for e in job.errors] == [2]
    assert Annotation.objects.filter(item__reference_id="two", label="dog").count() == 1
    assert Item.objects.get(reference_id="two").metadata == {"weather": "sun"}


@pytest.fixture
def s3_reads(s3_storage: S3Bucket, settings: Any) -> str:  # noqa: F811
    """Let ingest read s3:// URLs from the test server; returns a bucket to import from."""
    settings.NUCLEUS_S3_ENDPOINT_URL = s3_storage.endpoint_url
    settings.NUCLEUS_S3_ACCESS_KEY_ID = "nucleus-test-key"
    settings.NUCLEUS_S3_SECRET_ACCESS_KEY = "nucleus-test-secret"
    settings.NUCLEUS_S3_REGION = "us-east-1"
    return s3_bucket_ensure(s3_storage.client, "nucleus-test-imports")


def test_it_copies_s3_images_into_s3_storage(
    dataset: Dataset,
    alice: Any,
    import_root: Path,
    s3_storage: S3Bucket,  # noqa: F811
    s3_reads: str,
) -> None:
    data = image_bytes(seed="in s3")
    source_key = f"{s3_storage.prefix}/incoming/cam1.jpg"
    s3_storage.client.put_object(Bucket=s3_reads, Key=source_key, Body=data)
    url = f"s3://{s3_reads}/{source_key}"
    path = _manifest(import_root / "m.jsonl", [{"reference_id": "cam1", "image": url}])

    job = _run(dataset, alice, {"type": "manifest", "path": str(path)})

    assert job.error_count == 0, job.errors
    item = Item.objects.get()
    assert item.source_uri == url
    assert s3_storage.read(item.media_key) == data
    assert {item.media_key, item.thumbnail_key} <= s3_storage.keys()


def test_it_refuses_another_datasets_media_from_its_own_bucket(
    dataset: Dataset,
    alice: Any,
    charlie: Any,
    import_root: Path,
    s3_storage: S3Bucket,  # noqa: F811
    s3_reads: str,
) -> None:
    private = media_process(dataset_id=dataset.pk, data=image_bytes(seed="private"), source_uri="x")
    mine = Dataset.objects.create(name="charlie's", owner=charlie)
    url = f"s3://{s3_storage.name}/{s3_storage.prefix}/{private.media_key}"
    path = _manifest(import_root / "m.jsonl", [{"reference_id": "stolen", "image": url}])

    job = _run(mine, charlie, {"type": "manifest", "path": str(path)})

    assert job.status == JobStatus.SUCCEEDED, job.message
    assert [e["reference_id"] for e in job.errors] == ["stolen"]
    assert "own media storage" in job.errors[0]["message"]
    assert not Item.objects.filter(dataset=mine).exists()


def test_an_images_root_in_its_own_media_storage_is_refused(
    dataset: Dataset,
    alice: Any,
    import_root: Path,
    s3_storage: S3Bucket,  # noqa: F811
    s3_reads: str,
) -> None:
    (import_root / "m.jsonl").write_text("")
    root = f"s3://{s3_storage.name}/{s3_storage.prefix}/datasets/"

    with pytest.raises(InvalidInput) as caught:
        ingest_enqueue(
            dataset=dataset,
            user=alice,
            source={"type": "manifest", "path": "m.jsonl", "images_root": root},
        )

    assert caught.value.fields == [
        {"path": "source.images_root", "message": "is in the service's own media storage"}
    ]
    job = ingest_enqueue(
        dataset=dataset,
        user=alice,
        source={"type": "manifest", "path": "m.jsonl", "images_root": f"s3://{s3_reads}/set/"},
    )
    assert job.params["source"]["images_root"] == f"s3://{s3_reads}/set/"


def test_it_refuses_local_media_inside_an_import_root(
    dataset: Dataset, alice: Any, charlie: Any, tmp_path: Path, settings: Any
) -> None:
    private = media_process(dataset_id=dataset.pk, data=image_bytes(seed="private"), source_uri="x")
    settings.NUCLEUS_IMPORT_ROOTS = [tmp_path]  # holds the media folder as well as import/
    mine = Dataset.objects.create(name="charlie's", owner=charlie)
    stored = str(tmp_path / "media" / private.media_key)
    path = _manifest(tmp_path / "import" / "m.jsonl", [{"reference_id": "r", "image": stored}])

    job = _run(mine, charlie, {"type": "manifest", "path": str(path)})

    assert [e["reference_id"] for e in job.errors] == ["r"]
    assert "media storage" in job.errors[0]["message"]
    assert not Item.objects.filter(dataset=mine).exists()


def test_an_image_path_with_a_nul_character_is_an_item_error(
    dataset: Dataset, alice: Any, import_root: Path
) -> None:
    write_image(import_root / "ok.jpg")
    path = _manifest(
        import_root / "m.jsonl",
        [
            {"reference_id": "nul", "image": "o\x00k.jpg"},
            {"reference_id": "ok", "image": "ok.jpg"},
        ],
    )

    job = _run(dataset, alice, {"type": "manifest", "path": str(path)})

    assert job.status == JobStatus.SUCCEEDED, job.message
    assert [e["reference_id"] for e in job.errors] == ["nul"]
    assert job.errors[0]["message"] == "image: must not contain NUL characters"
    assert list(Item.objects.values_list("reference_id", flat=True)) == ["ok"]


def test_a_resumed_job_starts_at_its_saved_position(
    dataset: Dataset, alice: Any, manifest: Path
) -> None:
    job = ingest_enqueue(
        dataset=dataset, user=alice, source={"type": "manifest", "path": str(manifest)}
    )
    # As if an earlier attempt had committed the first two records and then died.
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, state={"position": 2, "counts": {"created": 2}}, progress_done=2
    )

    finished = job_run(job_id=job.pk)

    assert finished is not None and finished.status == JobStatus.SUCCEEDED
    assert list(Item.objects.values_list("reference_id", flat=True)) == ["three"]
    assert (finished.progress_done, finished.result["created"]) == (3, 3)


def test_it_ingests_an_uploaded_manifest(dataset: Dataset, alice: Any, import_root: Path) -> None:
    image = write_image(import_root / "pics" / "u.jpg")
    body = "\n".join(
        [
            json.dumps({"reference_id": "abs", "image": str(image)}),
            json.dumps({"reference_id": "rel", "image": "pics/u.jpg"}),
        ]
    )
    key = ingest_store_upload(
        dataset=dataset, filename="../../my manifest.jsonl", fileobj=io.BytesIO(body.encode())
    )
    assert key.startswith(f"datasets/{dataset.pk}/uploads/")
    assert key.endswith("/my_manifest.jsonl")

    job = _run(dataset, alice, {"type": "manifest", "upload_key": key})

    assert list(Item.objects.values_list("reference_id", flat=True)) == ["abs"]
    assert [(e["reference_id"], e["line"]) for e in job.errors] == [("rel", 2)]
    assert "images_root" in job.errors[0]["message"]

    job = _run(
        dataset, alice, {"type": "manifest", "upload_key": key, "images_root": str(import_root)}
    )
    assert job.error_count == 0
    assert sorted(Item.objects.values_list("reference_id", flat=True)) == ["abs", "rel"]


@pytest.mark.parametrize(
    ("source", "path"),
    [
        ({"type": "manifest"}, "source.path"),
        ({"type": "manifest", "path": "m.jsonl", "upload_key": "x"}, "source.path"),
        ({"type": "manifest", "upload_key": "datasets/999/uploads/x/m.jsonl"}, "source.upload_key"),
        (
            {"type": "manifest", "upload_key": "{prefix}../../999/uploads/m.jsonl"},
            "source.upload_key",
        ),
        ({"type": "manifest", "upload_key": "{prefix}nope/m.jsonl"}, "source.upload_key"),
        ({"type": "manifest", "path": "/etc/passwd"}, "source.path"),
        ({"type": "manifest", "path": "m.jsonl", "images_root": "/etc"}, "source.images_root"),
        (
            {"type": "manifest", "path": "m.jsonl", "images_root": "ftp://host/x"},
            "source.images_root",
        ),
        ({"type": "manifest", "path": "m\x00.jsonl"}, "source.path"),
        ({"type": "manifest", "path": "m.jsonl", "images_root": "/tm\x00p"}, "source.images_root"),
        (
            {"type": "manifest", "path": "m.jsonl", "images_root": "s3://b/x\x00/"},
            "source.images_root",
        ),
        (
            {"type": "manifest", "path": "m.jsonl", "images_root": "s3://b/../other/"},
            "source.images_root",
        ),
        ({"type": "manifest", "upload_key": "{prefix}x\x00/m.jsonl"}, "source.upload_key"),
    ],
)
def test_it_refuses_a_bad_source(
    dataset: Dataset, alice: Any, import_root: Path, source: dict[str, Any], path: str
) -> None:
    (import_root / "m.jsonl").write_text("")
    if "upload_key" in source:
        source = {
            **source,
            "upload_key": source["upload_key"].format(prefix=f"datasets/{dataset.pk}/uploads/"),
        }
    with pytest.raises(InvalidInput) as caught:
        ingest_enqueue(dataset=dataset, user=alice, source=source)
    assert caught.value.status_code == 400
    assert [f["path"] for f in caught.value.fields] == [path]


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_a_line_postgresql_cannot_store_is_an_item_error_and_the_rest_land(
    dataset: Dataset, alice: Any, import_root: Path
) -> None:
    # Lines as a client would write them: JSON's \u escapes give NUL and lone surrogates.
    path = _manifest(
        import_root / "m.jsonl",
        [
            {"reference_id": "first", "metadata": {"n": 1}},
            '{"reference_id": "\\ud800"}',
            '{"reference_id": "nul\\u0000"}',
            '{"reference_id": "meta-value", "metadata": {"w": "a\\udfffb"}}',
            '{"reference_id": "meta-key", "metadata": {"k\\u0000": 1}}',
            '{"reference_id": "model", "predictions": [{"model": "m\\ud800", "label": "car",'
            ' "confidence": 0.5, "geometry": {"x": 1, "y": 1, "width": 2, "height": 2}}]}',
            '{"reference_id": "deep", "metadata": {"x": ' + _nested(200) + "}}",
            '{"reference_id": "deeper", "metadata": {"x": ' + _nested(5000) + "}}",
            {"reference_id": "last", "metadata": {"n": 2}},
        ],
    )

    job = _run(dataset, alice, {"type": "manifest", "path": str(path)})

    assert job.status == JobStatus.SUCCEEDED, job.message
    assert sorted(Item.objects.values_list("reference_id", flat=True)) == ["first", "last"]
    assert [(e["line"], e["reference_id"], e["message"]) for e in job.errors] == [
        (2, "\\ud800", "reference_id: must not contain lone UTF-16 surrogates (\\ud800-\\udfff)"),
        (3, "nul\\x00", "reference_id: must not contain NUL characters"),
        (4, "meta-value", "metadata.w: must not contain lone UTF-16 surrogates (\\ud800-\\udfff)"),
        (5, "meta-key", "metadata: has a key that must not contain NUL characters"),
        (
            6,
            "model",
            "predictions[0].model: must not contain lone UTF-16 surrogates (\\ud800-\\udfff)",
        ),
        (7, "deep", "metadata.x" + "[0]" * 62 + ": is nested deeper than 64 levels"),
        (8, None, "is nested deeper than 64 levels"),
    ]


def test_chunks_read_ahead_all_land_and_a_rerun_changes_nothing(
    dataset: Dataset, alice: Any, import_root: Path, settings: Any
) -> None:
    # Two records a chunk: each chunk's images are read while the one before is written.
    settings.NUCLEUS_INGEST_CHUNK = 2
    rows = []
    for i in range(5):
        write_image(import_root / "ahead" / f"{i}.jpg")
        rows.append(
            {
                "reference_id": f"r{i}",
                "image": f"{i}.jpg",
                "annotations": [{"id": f"a{i}", "label": "car", "geometry": BOX}],
            }
        )
    source = {"type": "manifest", "path": str(_manifest(import_root / "ahead" / "m.jsonl", rows))}

    first = _run(dataset, alice, source)
    again = _run(dataset, alice, source)

    assert first.status == JobStatus.SUCCEEDED, first.message
    assert (first.result["created"], first.result["annotations_written"]) == (5, 5)
    assert sorted(Item.objects.filter(dataset=dataset).values_list("reference_id", flat=True)) == [
        f"r{i}" for i in range(5)
    ]
    assert all(item.media_key for item in Item.objects.filter(dataset=dataset))
    assert (again.result["created"], again.result["unchanged"]) == (0, 5)
    assert again.result["annotations_written"] == 0


def test_a_chunk_sees_what_the_chunk_before_it_wrote(
    dataset: Dataset, alice: Any, import_root: Path, settings: Any
) -> None:
    # One record a chunk: the second names the item the first one creates, so it is not
    # read ahead; its box is checked against the 64x48 image the first one stored.
    settings.NUCLEUS_INGEST_CHUNK = 1
    write_image(import_root / "seq" / "one.jpg")
    path = _manifest(
        import_root / "seq" / "m.jsonl",
        [
            {"reference_id": "one", "image": "one.jpg"},
            {
                "reference_id": "one",
                "annotations": [
                    {"label": "dog", "geometry": {"x": 70, "y": 0, "width": 5, "height": 5}}
                ],
            },
        ],
    )

    job = _run(dataset, alice, {"type": "manifest", "path": str(path)})

    assert [e["line"] for e in job.errors] == [2]
    assert not Annotation.objects.filter(dataset=dataset).exists()
