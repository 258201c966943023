"""Ingest from a local folder: the job, its per-item errors, re-runs, resuming, the checks
on the source path, and the `manage.py ingest` command that runs it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from curation.errors import InvalidInput
from curation.ingest import jobs as ingest
from curation.ingest.services import ingest_enqueue
from curation.jobs import job_run
from curation.models import Annotation, Dataset, Item, Job, JobStatus
from tests.ingest_support import image_bytes, noisy_png, png_bomb, truncated_jpeg, write_image

GOOD = ["a.jpg", "cats/d.jpg", "sub/b.png", "sub/deeper/c.jpg"]


@pytest.fixture
def folder(import_root: Path) -> Path:
    root = import_root / "photos"
    for rel in GOOD:
        write_image(root / rel)
    (root / "notes.txt").write_text("not an image extension: skipped")
    write_image(root / ".hidden.jpg")  # dot-files are skipped
    return root


def _run(dataset: Dataset, user: Any, source: dict[str, Any]) -> Job:
    job = ingest_enqueue(dataset=dataset, user=user, source=source)
    finished = job_run(job_id=job.pk)
    assert finished is not None
    return finished


def _snapshot(dataset: Dataset) -> tuple[list[Any], list[Any]]:
    items = list(Item.objects.filter(dataset=dataset).order_by("id").values_list("id", "updated"))
    anns = list(
        Annotation.objects.filter(dataset=dataset).order_by("id").values_list("id", "updated")
    )
    return items, anns


def test_it_ingests_a_nested_folder(dataset: Dataset, alice: Any, folder: Path) -> None:
    job = _run(dataset, alice, {"type": "folder", "path": str(folder)})

    assert job.status == JobStatus.SUCCEEDED, job.message
    assert (job.progress_done, job.progress_total, job.error_count) == (4, 4, 0)
    assert job.result["created"] == 4
    items = {i.reference_id: i for i in Item.objects.filter(dataset=dataset)}
    assert sorted(items) == GOOD
    item = items["sub/deeper/c.jpg"]
    assert (item.width, item.height) == (64, 48)
    assert item.source_uri == str(folder / "sub/deeper/c.jpg")
    assert item.media_key.startswith(f"datasets/{dataset.pk}/media/")
    assert item.thumbnail_key == f"datasets/{dataset.pk}/thumbs/{item.sha256}.webp"
    assert not Annotation.objects.filter(dataset=dataset).exists()


def test_it_labels_items_from_their_folders(dataset: Dataset, alice: Any, folder: Path) -> None:
    source = {"type": "folder", "path": str(folder), "labels_from_folders": True}
    job = _run(dataset, alice, source)

    assert job.status == JobStatus.SUCCEEDED, job.message
    labels = {
        (a.item.reference_id, a.kind, a.label)
        for a in Annotation.objects.filter(dataset=dataset).select_related("item")
    }
    assert labels == {
        ("cats/d.jpg", "category", "cats"),
        ("sub/b.png", "category", "sub"),
        ("sub/deeper/c.jpg", "category", "deeper"),
    }


def test_it_records_bad_files_and_lands_the_rest(
    dataset: Dataset, alice: Any, folder: Path, settings: Any
) -> None:
    (folder / "bad/truncated.jpg").parent.mkdir()
    (folder / "bad/truncated.jpg").write_bytes(truncated_jpeg())
    (folder / "bad/notes.jpg").write_text("a text file renamed .jpg")
    (folder / "bad/bomb.png").write_bytes(png_bomb())
    big = noisy_png((200, 200))
    (folder / "bad/big.png").write_bytes(big)
    settings.NUCLEUS_MAX_IMAGE_BYTES = len(big) - 1

    job = _run(dataset, alice, {"type": "folder", "path": str(folder)})

    assert job.status == JobStatus.SUCCEEDED, job.message
    assert (
        sorted(Item.objects.filter(dataset=dataset).values_list("reference_id", flat=True)) == GOOD
    )
    assert job.error_count == 4
    errors = {e["reference_id"]: e for e in job.errors}
    assert set(errors) == {"bad/truncated.jpg", "bad/notes.jpg", "bad/bomb.png", "bad/big.png"}
    assert "corrupt" in errors["bad/truncated.jpg"]["message"]
    assert "not an image" in errors["bad/notes.jpg"]["message"]
    assert "decompression bomb" in errors["bad/bomb.png"]["message"]
    assert "over the limit" in errors["bad/big.png"]["message"]
    assert errors["bad/big.png"]["source"] == str(folder / "bad/big.png")
    assert (job.result["created"], job.result["errors"]) == (4, 4)


def test_it_records_a_symlink_out_of_the_import_root(
    dataset: Dataset, alice: Any, folder: Path, tmp_path: Path
) -> None:
    write_image(tmp_path / "outside.jpg")
    os.symlink(tmp_path / "outside.jpg", folder / "link.jpg")

    job = _run(dataset, alice, {"type": "folder", "path": str(folder)})

    assert [e["reference_id"] for e in job.errors] == ["link.jpg"]
    assert "outside the import roots" in job.errors[0]["message"]
    assert not Item.objects.filter(reference_id="link.jpg").exists()


def test_a_rerun_changes_nothing(
    dataset: Dataset, alice: Any, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = {"type": "folder", "path": str(folder), "labels_from_folders": True}
    _run(dataset, alice, source)
    before = _snapshot(dataset)

    def no_processing(**kwargs: Any) -> None:
        raise AssertionError(f"re-processed {kwargs['source_uri']}")

    # Unchanged files are recognised by their hash: no decoding, thumbnailing or upload.
    monkeypatch.setattr(ingest, "media_process", no_processing)
    job = _run(dataset, alice, source)

    assert job.status == JobStatus.SUCCEEDED, job.message
    assert _snapshot(dataset) == before
    assert len(before[0]) == 4
    assert len(before[1]) == 3
    assert (job.result["created"], job.result["updated"], job.result["unchanged"]) == (0, 0, 4)
    assert job.result["annotations_written"] == 0


def test_a_changed_file_is_processed_again(dataset: Dataset, alice: Any, folder: Path) -> None:
    _run(dataset, alice, {"type": "folder", "path": str(folder)})
    old = Item.objects.get(dataset=dataset, reference_id="a.jpg")
    write_image(folder / "a.jpg", size=(32, 32))

    job = _run(dataset, alice, {"type": "folder", "path": str(folder)})

    new = Item.objects.get(dataset=dataset, reference_id="a.jpg")
    assert (job.result["updated"], job.result["unchanged"]) == (1, 3)
    assert new.sha256 != old.sha256
    assert (new.width, new.height) == (32, 32)


class Crash(BaseException):
    """Stands for the worker being killed: not an Exception, so job_run does not catch it."""


def test_an_interrupted_job_resumes_and_lands_everything_once(
    dataset: Dataset, alice: Any, folder: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.NUCLEUS_INGEST_CHUNK = 2
    write_image(folder / "z.jpg")  # 5 files: chunks of 2, 2 and 1
    source = {"type": "folder", "path": str(folder), "labels_from_folders": True}
    job = ingest_enqueue(dataset=dataset, user=alice, source=source)
    real_write = ingest.records_write
    processed: list[str] = []
    real_process = ingest.media_process

    def write_then_crash(**kwargs: Any) -> Any:
        if Job.objects.get(pk=job.pk).progress_done == 2:
            raise Crash()  # the second chunk's write dies; the first one is committed
        return real_write(**kwargs)

    def counting_process(**kwargs: Any) -> Any:
        processed.append(kwargs["source_uri"])
        return real_process(**kwargs)

    monkeypatch.setattr(ingest, "records_write", write_then_crash)
    monkeypatch.setattr(ingest, "media_process", counting_process)
    with pytest.raises(Crash):
        job_run(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.progress_done, job.state["position"]) == ("running", 2, 2)
    assert Item.objects.filter(dataset=dataset).count() == 2

    monkeypatch.setattr(ingest, "records_write", real_write)
    processed.clear()
    finished = job_run(job_id=job.pk)

    assert finished is not None and finished.status == JobStatus.SUCCEEDED, finished
    first_chunk = [str(folder / "a.jpg"), str(folder / "cats/d.jpg")]
    assert not set(processed) & set(first_chunk)
    assert sorted(processed) == sorted(
        str(folder / r) for r in ["sub/b.png", "sub/deeper/c.jpg", "z.jpg"]
    )
    assert Item.objects.filter(dataset=dataset).count() == 5
    assert Annotation.objects.filter(dataset=dataset).count() == 3
    assert (finished.attempts, finished.progress_done) == (2, 5)
    assert finished.result["created"] == 5


def test_a_resumed_job_goes_on_after_the_last_file_it_committed(
    dataset: Dataset, alice: Any, folder: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.NUCLEUS_INGEST_CHUNK = 2
    # Sorted: a.jpg, cats/d.jpg | sub/b.png, sub/deeper/c.jpg
    job = ingest_enqueue(
        dataset=dataset, user=alice, source={"type": "folder", "path": str(folder)}
    )
    real_write = ingest.records_write

    def write_then_crash(**kwargs: Any) -> Any:
        if Job.objects.get(pk=job.pk).progress_done == 2:
            raise Crash()
        return real_write(**kwargs)

    monkeypatch.setattr(ingest, "records_write", write_then_crash)
    with pytest.raises(Crash):
        job_run(job_id=job.pk)
    monkeypatch.setattr(ingest, "records_write", real_write)
    # Before the retry, a file the first attempt had already ingested is deleted: the
    # folder, listed again, is one file shorter before the point the job had reached.
    (folder / "a.jpg").unlink()

    finished = job_run(job_id=job.pk)

    assert finished is not None and finished.status == JobStatus.SUCCEEDED, finished
    assert sorted(Item.objects.filter(dataset=dataset).values_list("reference_id", flat=True)) == [
        "a.jpg",
        "cats/d.jpg",
        "sub/b.png",
        "sub/deeper/c.jpg",
    ]
    assert (finished.progress_done, finished.progress_total) == (3, 3)


# ---------------------------------------------------------------- checks on the source


@pytest.mark.parametrize(
    ("source", "path"),
    [
        ("not an object", "source"),
        ({"type": "zip", "path": "x"}, "source.type"),
        ({"type": "folder"}, "source.path"),
        ({"type": "folder", "path": "photos", "recursive": True}, "source.recursive"),
        (
            {"type": "folder", "path": "photos", "labels_from_folders": "yes"},
            "source.labels_from_folders",
        ),
        ({"type": "folder", "path": "photos/a.jpg"}, "source.path"),
        ({"type": "folder", "path": "nope"}, "source.path"),
        ({"type": "folder", "path": "pho\x00tos"}, "source.path"),
    ],
)
def test_it_refuses_a_bad_source(
    dataset: Dataset, alice: Any, folder: Path, source: Any, path: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        ingest_enqueue(dataset=dataset, user=alice, source=source)
    assert caught.value.status_code == 400
    assert [f["path"] for f in caught.value.fields] == [path]
    assert not Job.objects.exists()


def test_a_relative_path_is_inside_the_first_import_root(
    dataset: Dataset, alice: Any, folder: Path
) -> None:
    job = ingest_enqueue(dataset=dataset, user=alice, source={"type": "folder", "path": "photos"})
    assert job.params["source"]["path"] == str(folder)


@pytest.mark.parametrize("escape", ["dotdot", "absolute", "symlink"])
def test_it_refuses_a_folder_outside_the_import_roots(
    dataset: Dataset, alice: Any, import_root: Path, tmp_path: Path, escape: str
) -> None:
    outside = tmp_path / "outside"
    write_image(outside / "secret.jpg")
    os.symlink(outside, import_root / "link")
    path = {
        "dotdot": "../outside",
        "absolute": str(outside),
        "symlink": str(import_root / "link"),
    }[escape]

    with pytest.raises(InvalidInput) as caught:
        ingest_enqueue(dataset=dataset, user=alice, source={"type": "folder", "path": path})

    assert caught.value.status_code == 400
    assert caught.value.fields == [
        {"path": "source.path", "message": "is outside the import roots (NUCLEUS_IMPORT_ROOTS)"}
    ]
    assert not Job.objects.exists()


def test_it_refuses_media_storage_even_inside_an_import_root(
    dataset: Dataset, alice: Any, folder: Path, tmp_path: Path, _media_in_tmp: Path, settings: Any
) -> None:
    _run(dataset, alice, {"type": "folder", "path": str(folder)})  # media of this dataset
    settings.NUCLEUS_IMPORT_ROOTS = [tmp_path]  # an import root that holds the media folder

    with pytest.raises(InvalidInput) as caught:
        ingest_enqueue(dataset=dataset, user=alice, source={"type": "folder", "path": "media"})

    assert caught.value.fields == [
        {
            "path": "source.path",
            "message": "is inside the service's media storage (NUCLEUS_MEDIA_ROOT)",
        }
    ]


# -------------------------------------------------------------------------- the command


def test_the_command_ingests_a_folder(
    dataset: Dataset, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    call_command("ingest", str(dataset.pk), str(folder), "--labels-from-folders")

    out = capsys.readouterr().out
    assert "4 created, 0 updated, 0 unchanged, 0 errors" in out
    assert Item.objects.filter(dataset=dataset).count() == 4
    job = Job.objects.get()
    assert (job.status, job.params["trusted"]) == ("succeeded", True)


def test_the_command_shows_the_first_errors(
    dataset: Dataset, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder / "broken.jpg").write_text("not a jpeg")
    call_command("ingest", dataset.name, str(folder), "--owner", "alice")

    captured = capsys.readouterr()
    assert "4 created, 0 updated, 0 unchanged, 1 errors" in captured.out
    assert "broken.jpg: is not an image" in captured.err


def test_the_command_trusts_the_operators_path(
    dataset: Dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_image(tmp_path / "elsewhere" / "x.jpg")
    call_command("ingest", str(dataset.pk), str(tmp_path / "elsewhere"))
    assert Item.objects.filter(dataset=dataset, reference_id="x.jpg").exists()


def test_the_command_creates_the_dataset(alice: Any, folder: Path) -> None:
    call_command("ingest", "new photos", str(folder), "--owner", "alice", "--create")
    created = Dataset.objects.get(name="new photos")
    assert created.owner == alice
    assert created.items.count() == 4


def test_the_command_needs_create_for_a_new_dataset(alice: Any, folder: Path) -> None:
    with pytest.raises(CommandError, match="--create"):
        call_command("ingest", "new photos", str(folder), "--owner", "alice")
    assert not Dataset.objects.exists()


def test_the_command_only_queues_in_the_background(
    dataset: Dataset, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    call_command("ingest", str(dataset.pk), str(folder), "--background")

    job = Job.objects.get()
    assert f"Queued ingest job {job.pk}" in capsys.readouterr().out
    assert job.status == JobStatus.QUEUED
    assert not Item.objects.exists()


def test_an_ingest_that_adds_items_queues_their_embedding(
    dataset: Dataset, alice: Any, import_root: Path, settings: Any
) -> None:
    settings.NUCLEUS_EMBEDDING_WEIGHTS = "random"
    folder = import_root / "few"
    folder.mkdir()
    Image.new("RGB", (40, 30), (10, 20, 30)).save(folder / "a.jpg")
    job = ingest_enqueue(
        dataset=dataset, user=alice, source={"type": "folder", "path": str(folder)}
    )
    job_run(job_id=job.pk)

    embed = Job.objects.filter(dataset=dataset, kind="embed")
    assert embed.count() == 1
    assert embed.get().params["mode"] == "missing"

    again = ingest_enqueue(
        dataset=dataset, user=alice, source={"type": "folder", "path": str(folder)}
    )
    job_run(job_id=again.pk)  # nothing new: no second embedding job
    assert Job.objects.filter(dataset=dataset, kind="embed").count() == 1


def test_a_file_name_that_is_not_utf8_is_an_item_error_and_the_rest_land(
    dataset: Dataset, alice: Any, import_root: Path
) -> None:
    root = import_root / "mixed"
    write_image(root / "good.jpg")
    # Python names an undecodable byte with a lone surrogate, which PostgreSQL cannot store.
    (root / os.fsdecode(b"bad\xff.jpg")).write_bytes(image_bytes(seed="bad"))

    job = _run(dataset, alice, {"type": "folder", "path": str(root)})

    assert job.status == JobStatus.SUCCEEDED, job.message
    assert list(Item.objects.values_list("reference_id", flat=True)) == ["good.jpg"]
    assert [(e["reference_id"], e["message"]) for e in job.errors] == [
        (
            "bad\\udcff.jpg",
            "reference_id: must not contain lone UTF-16 surrogates (\\ud800-\\udfff)",
        )
    ]
