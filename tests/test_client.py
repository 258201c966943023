"""The Python client (nucleus/client.py) against a real server: every method, error
mapping, lazy paging, chunked idempotent bulk uploads and retries on connection errors."""

from __future__ import annotations

import json
import socket
import tarfile
from pathlib import PurePosixPath

import numpy as np
import pytest
import requests
import urllib3
from requests.adapters import HTTPAdapter

from curation.models import Annotation, Dataset, Item, Job, Model, Prediction
from nucleus.client import NucleusAPIError, NucleusClient, NucleusConnectionError, NucleusError
from tests.api_helpers import add_items, box, evaluation_world
from tests.client_support import (  # noqa: F401  (fixtures)
    client_of_fixture,
    server_fixture,
    token_of_fixture,
)
from tests.embedding_factories import (  # noqa: F401  (fixtures)
    custom_model,
    items_with_images,
    items_with_vectors,
    jpeg_bytes,
    tiny_clip_fixture,
)

pytestmark = pytest.mark.django_db(transaction=True)


def rows(count: int, prefix: str = "img") -> list[dict]:
    return [
        {"reference_id": f"{prefix}-{i:03d}", "metadata": {"i": i, "even": i % 2 == 0}}
        for i in range(count)
    ]


# -------------------------------------------------------------------------- datasets


def test_it_creates_finds_updates_and_deletes_datasets(alice, client_of):
    client = client_of(alice)
    created = client.dataset_create("demo", description="dashcam")
    assert (created.name, created.description, created.role) == ("demo", "dashcam", "admin")
    assert client.datasets() == [created]
    assert client.dataset("demo") == created
    assert client.dataset(created.id) == created
    assert client.dataset(str(created.id)) == created  # no dataset has that name: an id
    renamed = client.dataset_update(created, name="demo 2")
    assert client.dataset("demo 2").id == created.id == renamed.id
    client.dataset_delete(renamed)
    assert not Dataset.objects.exists()
    with pytest.raises(NucleusAPIError) as caught:
        client.dataset(created.id)
    assert (caught.value.status, caught.value.code) == (404, "not_found")


def test_a_name_shared_by_two_visible_datasets_needs_an_id(alice, bob, client_of):
    mine = client_of(alice).dataset_create("shared name")
    bobs = client_of(bob).dataset_create("shared name")
    client_of(bob).request(
        "POST", f"datasets/{bobs.id}/members", json_body={"username": "alice", "role": "viewer"}
    )
    with pytest.raises(NucleusAPIError) as caught:
        client_of(alice).dataset("shared name")
    assert caught.value.code == "ambiguous"
    assert str(mine.id) in caught.value.message and str(bobs.id) in caught.value.message


# ---------------------------------------------------------------------------- errors


def test_a_400_carries_the_code_message_and_every_field(dataset, bob, client_of):
    bad = [{"reference_id": "ok"}, {"metadata": {}}, {"reference_id": "x", "metadata": 5}]
    with pytest.raises(NucleusAPIError) as caught:
        client_of(bob).items_upsert(dataset.pk, bad)
    error = caught.value
    assert (error.status, error.code) == (400, "invalid")
    assert error.message
    assert [f.path for f in error.fields] == ["items[1].reference_id", "items[2].metadata"]
    assert all(f.message for f in error.fields)
    assert "items[1].reference_id" in str(error)
    assert not Item.objects.exists()


def test_401_403_404_and_409_map_to_errors(dataset, alice, victor, charlie, server, client_of):
    with pytest.raises(NucleusAPIError) as caught:
        client_of(None, token="nuc_not-a-real-token").datasets()
    assert (caught.value.status, caught.value.code) == (401, "authentication_failed")
    with pytest.raises(NucleusAPIError) as caught:
        client_of(None).datasets()
    assert (caught.value.status, caught.value.code) == (401, "not_authenticated")
    with pytest.raises(NucleusAPIError) as caught:
        client_of(victor).items_upsert(dataset.pk, rows(1))
    assert (caught.value.status, caught.value.code) == (403, "permission_denied")
    with pytest.raises(NucleusAPIError) as caught:
        client_of(charlie).dataset(dataset.pk)
    assert (caught.value.status, caught.value.code) == (404, "not_found")
    with pytest.raises(NucleusAPIError) as caught:
        client_of(charlie).dataset("street scenes")  # by name: just as invisible
    assert caught.value.status == 404
    with pytest.raises(NucleusAPIError) as caught:
        client_of(alice).dataset_create("street scenes")
    assert (caught.value.status, caught.value.code) == (409, "conflict")
    assert [f.path for f in caught.value.fields] == ["name"]


def test_a_body_that_is_not_the_error_format_still_raises(alice, server, client_of):
    with pytest.raises(NucleusAPIError) as caught:
        client_of(alice).request("GET", f"{server}/no-such-page-at-all")
    assert caught.value.status == 404
    assert caught.value.fields == []


def test_an_unreachable_server_raises_a_connection_error():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))  # a port that nothing listens on while it is bound
    client = NucleusClient(f"http://127.0.0.1:{probe.getsockname()[1]}", token="x", backoff=0)
    try:
        with pytest.raises(NucleusConnectionError):
            client.datasets()
    finally:
        probe.close()


# ----------------------------------------------------------------------------- items


def test_it_upserts_items_in_chunks_and_a_second_upload_changes_nothing(dataset, bob, client_of):
    client = client_of(bob)
    first = client.items_upsert(dataset.pk, iter(rows(10)), chunk_size=3)
    assert first["items_created"] == 10
    assert first["items_unchanged"] == 0
    again = client.items_upsert(dataset.pk, iter(rows(10)), chunk_size=4)
    assert (again["items_created"], again["items_updated"], again["items_unchanged"]) == (0, 0, 10)
    assert Item.objects.filter(dataset=dataset).count() == 10


def test_items_are_iterated_lazily_page_by_page_in_id_order(dataset, victor, client_of):
    add_items(dataset, *rows(7))
    client = client_of(victor)
    pages_fetched = []
    original = client.request

    def counting(method, path, **kwargs):
        pages_fetched.append(path)
        return original(method, path, **kwargs)

    client.request = counting
    items = client.items(dataset.pk, page_size=3)
    assert pages_fetched == []  # nothing is fetched before the first item is asked for
    first = next(items)
    assert first["reference_id"] == "img-000"
    assert len(pages_fetched) == 1
    rest = [i["reference_id"] for i in items]
    assert rest == [f"img-{i:03d}" for i in range(1, 7)]
    assert len(pages_fetched) == 3


def test_items_take_filters_with_typed_and_repeated_values(dataset, bob, client_of):
    client = client_of(bob)
    client.items_upsert(dataset.pk, rows(6))
    client.tag_add(dataset.pk, "night", ["img-001", "img-002", "img-003"])
    client.tag_add(dataset.pk, "blurry", ["img-003", "img-004"])

    def refs(filters):
        return [i["reference_id"] for i in client.items(dataset.pk, filters=filters)]

    assert refs({"metadata.even": True}) == ["img-000", "img-002", "img-004"]
    assert refs({"metadata.i__gte": 4}) == ["img-004", "img-005"]
    assert refs({"tag": ["night", "blurry"]}) == ["img-003"]
    assert refs({"reference_id": ["img-005", "img-001"]}) == ["img-001", "img-005"]
    with pytest.raises(NucleusAPIError) as caught:
        refs({"metadata.i__near": 3})
    assert [f.path for f in caught.value.fields] == ["metadata.i__near"]
    queried = client.items(dataset.pk, query="metadata.i >= 2 AND tag = night")
    assert [i["reference_id"] for i in queried] == ["img-002", "img-003"]
    with pytest.raises(NucleusAPIError) as caught:
        list(client.items(dataset.pk, query="metadata.i >="))
    assert caught.value.status == 400 and caught.value.fields


def test_it_checks_a_query(dataset, bob, client_of):
    client = client_of(bob)
    client.items_upsert(dataset.pk, [{"reference_id": "a", "annotations": [box(label="bus")]}])
    [warning] = client.query_check(dataset.pk, "annotations.buss >= 1")
    assert warning["suggestion"] == "bus"
    assert client.query_check(dataset.pk, "annotations.bus >= 1") == []
    with pytest.raises(NucleusAPIError) as caught:
        client.query_check(dataset.pk, "annotations.bus >=")
    assert caught.value.status == 400 and [f.path for f in caught.value.fields] == ["query"]


def test_it_gets_an_item_and_deletes_items(dataset, bob, client_of):
    client = client_of(bob)
    client.items_upsert(
        dataset.pk,
        [
            {
                "reference_id": "a",
                "annotations": [{"id": "a-1", **box()}],
                "predictions": [{"model": "yolo", "confidence": 0.5, **box()}],
            },
            {"reference_id": "b"},
        ],
    )
    item_id = Item.objects.get(reference_id="a").pk
    detail = client.item(dataset.pk, item_id, include_predictions=True)
    assert [a["id"] for a in detail["annotations"]] == ["a-1"]
    assert len(detail["predictions"]) == 1
    assert client.item(dataset.pk, item_id)["predictions"] is None
    assert client.items_delete(dataset.pk, ["a", "zzz"]) == {"deleted": 1, "missing": ["zzz"]}
    assert list(Item.objects.values_list("reference_id", flat=True)) == ["b"]


def test_a_bad_row_in_a_later_chunk_is_named_by_its_index_in_the_whole_upload(
    dataset, bob, client_of
):
    upload = rows(7)
    upload[4]["metadata"] = "not an object"
    with pytest.raises(NucleusAPIError) as caught:
        client_of(bob).items_upsert(dataset.pk, upload, chunk_size=3)
    assert [f.path for f in caught.value.fields] == ["items[4].metadata"]
    assert "chunk from row 3" in caught.value.message
    # The first chunk landed; the bad one wrote nothing (all-or-nothing per request).
    assert sorted(Item.objects.values_list("reference_id", flat=True)) == [
        "img-000",
        "img-001",
        "img-002",
    ]


class FlakyAdapter(HTTPAdapter):
    """Loses connections: before sending (`lose="request"`) or after the server answered."""

    def __init__(self, failures: int, lose: str) -> None:
        super().__init__()
        self.failures = failures
        self.lose = lose
        self.sent = 0

    def send(self, request, **kwargs):
        if self.failures and self.lose == "request":
            self.failures -= 1
            raise requests.ConnectionError("connection reset by peer")
        response = super().send(request, **kwargs)
        self.sent += 1
        if self.failures:
            self.failures -= 1
            raise requests.ConnectionError("connection reset before the answer was read")
        return response


def flaky_session(adapter: FlakyAdapter) -> requests.Session:
    session = requests.Session()
    session.mount("http://", adapter)
    return session


def test_a_chunk_is_resent_after_a_connection_error(dataset, bob, client_of):
    adapter = FlakyAdapter(failures=2, lose="request")
    client = client_of(bob, session=flaky_session(adapter))
    counts = client.items_upsert(dataset.pk, rows(5), chunk_size=2)
    assert counts["items_created"] == 5
    assert Item.objects.filter(dataset=dataset).count() == 5


def test_a_chunk_whose_answer_was_lost_is_resent_without_duplicates(dataset, bob, client_of):
    adapter = FlakyAdapter(failures=1, lose="answer")
    client = client_of(bob, session=flaky_session(adapter))
    counts = client.items_upsert(dataset.pk, rows(4), chunk_size=2)
    assert adapter.sent == 3  # the first chunk reached the server twice
    assert (counts["items_created"], counts["items_unchanged"]) == (2, 2)
    assert Item.objects.filter(dataset=dataset).count() == 4


def test_a_create_is_not_resent_after_a_connection_error(alice, client_of):
    adapter = FlakyAdapter(failures=1, lose="answer")
    client = client_of(alice, session=flaky_session(adapter))
    with pytest.raises(NucleusConnectionError):
        client.dataset_create("once")
    assert adapter.sent == 1
    assert Dataset.objects.filter(name="once").count() == 1


def test_a_delete_whose_answer_was_lost_is_not_an_error(alice, client_of):
    made = client_of(alice).dataset_create("gone")
    adapter = FlakyAdapter(failures=1, lose="answer")
    client_of(alice, session=flaky_session(adapter)).dataset_delete(made)
    assert adapter.sent == 2  # the retry found it already deleted (404)
    assert not Dataset.objects.filter(name="gone").exists()


def test_retries_give_up_after_the_configured_number(dataset, bob, client_of):
    adapter = FlakyAdapter(failures=10, lose="request")
    client = client_of(bob, session=flaky_session(adapter))
    client.retries = 2
    with pytest.raises(NucleusConnectionError):
        client.items_upsert(dataset.pk, rows(1))
    assert adapter.failures == 7  # one try and two retries


# ------------------------------------------------------- annotations and predictions


def test_annotations_upload_in_chunks_idempotently_and_delete(dataset, bob, client_of):
    client = client_of(bob)
    client.items_upsert(dataset.pk, rows(3))
    shapes = [
        {"reference_id": f"img-{i:03d}", **box(x=5 + n, label=label)}
        for i in range(3)
        for n, label in enumerate(("car", "bus"))
    ]
    assert client.annotations_upload(dataset.pk, shapes, chunk_size=4) == {
        "received": 6,
        "written": 6,
    }
    assert client.annotations_upload(dataset.pk, shapes, chunk_size=5) == {
        "received": 6,
        "written": 0,
    }
    assert Annotation.objects.count() == 6
    item_id = Item.objects.get(reference_id="img-001").pk
    listed = client.annotations(dataset.pk, item_id)
    assert sorted(a["label"] for a in listed) == ["bus", "car"]
    answer = client.annotations_delete(dataset.pk, [listed[0]["id"], "nope"])
    assert answer == {"deleted": 1, "missing": ["nope"]}
    assert Annotation.objects.count() == 5


def test_one_annotation_is_created_changed_and_deleted_with_its_version(
    dataset, alice, bob, client_of
):
    client = client_of(bob)
    client.items_upsert(dataset.pk, rows(1))
    item_id = Item.objects.get().pk
    made = client.annotation_create(dataset.pk, item_id, label="car", geometry=box()["geometry"])
    assert made["version"] == 1
    assert client.annotation(dataset.pk, made["pk"])["label"] == "car"
    changed = client.annotation_update(dataset.pk, made["pk"], version=1, label="bus")
    assert changed["version"] == 2
    client_of(alice).annotation_update(dataset.pk, made["pk"], version=2, label="van")
    with pytest.raises(NucleusAPIError) as caught:
        client.annotation_update(dataset.pk, made["pk"], version=2, label="truck")
    assert (caught.value.status, caught.value.code) == (409, "version_conflict")
    assert caught.value.body["current"]["label"] == "van"
    with pytest.raises(NucleusAPIError):
        client.annotation_delete(dataset.pk, made["pk"], version=2)
    client.annotation_delete(dataset.pk, made["pk"], version=3)
    assert not Annotation.objects.exists()


def test_models_and_predictions(dataset, bob, victor, client_of):
    client = client_of(bob)
    client.items_upsert(dataset.pk, rows(2))
    created = client.model_create(dataset.pk, "yolo-v9", metadata={"epochs": 30})
    assert (created["name"], created["metadata"]) == ("yolo-v9", {"epochs": 30})
    predictions = [
        {"reference_id": "img-000", "confidence": 0.9, **box()},
        {"reference_id": "img-001", "confidence": 0.4, **box(label="bus")},
        {"reference_id": "img-001", "confidence": 0.3, **box(x=50)},
    ]
    assert client.predictions_upload(dataset.pk, "yolo-v9", predictions, chunk_size=2) == {
        "received": 3,
        "written": 3,
    }
    assert client.predictions_upload(dataset.pk, created["id"], predictions)["written"] == 0
    assert Prediction.objects.count() == 3
    viewer = client_of(victor)
    assert [(m["name"], m["prediction_count"]) for m in viewer.models(dataset.pk)] == [
        ("yolo-v9", 3)
    ]
    assert viewer.model(dataset.pk, "yolo-v9")["id"] == created["id"]
    assert viewer.model(dataset.pk, created["id"])["name"] == "yolo-v9"
    with pytest.raises(NucleusAPIError) as caught:
        client.model_create(dataset.pk, "yolo-v9")
    assert caught.value.status == 409
    client.model_delete(dataset.pk, "yolo-v9")
    assert not Model.objects.exists()
    assert not Prediction.objects.exists()


# ---------------------------------------------------------------------------- slices


def test_slices_from_reference_ids_append_remove_items_and_delete(dataset, bob, client_of):
    client = client_of(bob)
    client.items_upsert(dataset.pk, rows(6))
    made = client.slice_create(dataset.pk, "night rain", reference_ids=["img-000", "img-003"])
    assert (made.name, made.item_count) == ("night rain", 2)
    assert client.slice_append(dataset.pk, "night rain", ["img-003", "img-004", "img-005"]) == 2
    assert client.slice_remove(dataset.pk, made, ["img-000", "img-001"]) == 1
    assert [s.name for s in client.slices(dataset.pk)] == ["night rain"]
    assert client.slice(dataset.pk, made.id).item_count == 3
    items = client.slice_items(dataset.pk, "night rain", page_size=2)
    assert [i["reference_id"] for i in items] == ["img-003", "img-004", "img-005"]
    with pytest.raises(NucleusAPIError) as caught:
        client.slice_append(dataset.pk, made, ["img-001", "ghost"])
    assert [f.path for f in caught.value.fields] == ["reference_ids[1]"]
    client.slice_delete(dataset.pk, "night rain")
    assert client.slices(dataset.pk) == []
    with pytest.raises(NucleusAPIError) as caught:
        client.slice(dataset.pk, "night rain")
    assert caught.value.status == 404


def test_a_slice_is_created_from_more_reference_ids_than_one_request_holds(
    dataset, bob, client_of, monkeypatch
):
    monkeypatch.setattr("nucleus.client.REFERENCE_ID_CHUNK", 2)
    client = client_of(bob)
    client.items_upsert(dataset.pk, rows(5))
    made = client.slice_create(
        dataset.pk, "all", reference_ids=(r["reference_id"] for r in rows(5))
    )
    assert made.item_count == 5


def test_tags_add_and_remove(dataset, bob, client_of):
    client = client_of(bob)
    client.items_upsert(dataset.pk, rows(3))
    assert client.tag_add(dataset.pk, "blurry", ["img-000", "img-001"]) == 2
    assert client.tag_add(dataset.pk, "blurry", ["img-001", "img-002"]) == 1
    assert client.tag_remove(dataset.pk, "blurry", ["img-000"]) == 1
    assert [(t["name"], t["item_count"]) for t in client.tags(dataset.pk)] == [("blurry", 2)]


# ------------------------------------------------------------------- ingest and jobs

MANIFEST = "\n".join(
    json.dumps({"reference_id": ref, "metadata": {"weather": weather}})
    for ref, weather in (("a", "rain"), ("b", "sun"), ("c", "fog"))
)


def test_it_uploads_a_manifest_and_waits_for_the_job_with_progress(
    dataset, bob, client_of, tmp_path
):
    from curation.jobs import job_run

    manifest = tmp_path / "items.jsonl"
    manifest.write_text(MANIFEST)
    client = client_of(bob)
    job = client.ingest_file(dataset.pk, manifest, type="manifest")
    assert (job.kind, job.status, job.dataset_id) == ("ingest", "queued", dataset.pk)
    seen = []

    def progress(current):
        seen.append(current.status)
        if current.status == "queued":
            job_run(job_id=current.id)  # what a worker does, between two polls

    done = client.job_wait(dataset.pk, job, poll=0.01, progress=progress)
    assert seen == ["queued", "succeeded"]
    assert (done.status, done.done, done.error_count, done.finished) == ("succeeded", 3, 0, True)
    assert sorted(Item.objects.values_list("reference_id", flat=True)) == ["a", "b", "c"]
    assert [j.id for j in client.jobs(dataset.pk)] == [job.id]


def test_it_starts_an_ingest_of_a_server_side_source(dataset, bob, client_of, import_root):
    (import_root / "m.jsonl").write_text(MANIFEST)
    client = client_of(bob)
    job = client.ingest(dataset.pk, {"type": "manifest", "path": "m.jsonl"})
    assert Job.objects.get().params["source"]["type"] == "manifest"
    assert client.job(dataset.pk, job.id).status == "queued"
    with pytest.raises(NucleusAPIError) as caught:
        client.ingest(dataset.pk, {"type": "manifest", "path": "missing.jsonl"})
    assert [f.path for f in caught.value.fields] == ["source.path"]


def test_waiting_gives_up_after_the_timeout_and_cancel_stops_a_job(
    dataset, bob, client_of, import_root
):
    (import_root / "m.jsonl").write_text(MANIFEST)
    client = client_of(bob)
    job = client.ingest(dataset.pk, {"type": "manifest", "path": "m.jsonl"})
    with pytest.raises(TimeoutError):
        client.job_wait(dataset.pk, job, poll=0.01, timeout=0.05)
    cancelled = client.job_cancel(dataset.pk, job)
    assert cancelled.status == "cancelled"
    assert client.job_wait(dataset.pk, job, poll=0.01).status == "cancelled"


# ------------------------------------------------------------------- slice versions


@pytest.fixture
def versioned(dataset, bob, client_of):
    """Slice "train": version 1 holds a (box at x=10) and b; version 2 holds a (x=30) and c."""
    client = client_of(bob)
    client.items_upsert(
        dataset.pk,
        [
            {"reference_id": "a", "annotations": [{"id": "a1", **box(x=10)}]},
            {"reference_id": "b", "annotations": [{"id": "b1", **box(label="bus")}]},
            {"reference_id": "c"},
        ],
    )
    client.slice_create(dataset.pk, "train", reference_ids=["a", "b"])
    client.slice_freeze(dataset.pk, "train", note="first cut")
    client.slice_append(dataset.pk, "train", ["c"])
    client.slice_remove(dataset.pk, "train", ["b"])
    client.annotations_upload(dataset.pk, [{"reference_id": "a", "id": "a1", **box(x=30)}])
    client.slice_freeze(dataset.pk, "train")
    return client


def test_slice_versions_are_frozen_listed_and_diffed(dataset, versioned):
    client = versioned
    versions = client.slice_versions(dataset.pk, "train")
    assert [(v["number"], v["item_count"], v["note"]) for v in versions] == [
        (1, 2, "first cut"),
        (2, 2, ""),
    ]
    assert client.slice_version(dataset.pk, "train", 1)["annotation_count"] == 2
    diff = client.slice_diff(dataset.pk, "train", 1, 2)
    assert diff["counts"] == {"added": 1, "removed": 1, "changed": 1}
    assert [e["reference_id"] for e in diff["added"]] == ["c"]
    assert [e["reference_id"] for e in diff["removed"]] == ["b"]
    assert [(e["reference_id"], e["annotations_changed"]) for e in diff["changed"]] == [("a", True)]
    assert client.slice_diff(dataset.pk, "train", 1, 2, limit=1)["counts"]["added"] == 1
    with pytest.raises(NucleusAPIError) as caught:
        client.slice_version(dataset.pk, "train", 9)
    assert caught.value.status == 404


def test_a_versions_records_keep_the_annotations_it_froze(dataset, versioned):
    client = versioned
    first = list(client.slice_records(dataset.pk, "train", version=1, page_size=1))
    assert [r["reference_id"] for r in first] == ["a", "b"]
    assert first[0]["annotations"][0]["geometry"]["x"] == 10
    live = list(client.slice_records(dataset.pk, "train", page_size=1))
    assert [r["reference_id"] for r in live] == ["a", "c"]
    assert live[0]["annotations"][0]["geometry"]["x"] == 30


def test_restoring_a_version_brings_back_its_items(dataset, versioned):
    result = versioned.slice_restore(dataset.pk, "train", 1)
    assert (result["added"], result["removed"], result["missing"]) == (1, 1, 0)
    items = versioned.slice_items(dataset.pk, "train")
    assert [i["reference_id"] for i in items] == ["a", "b"]


def test_slices_from_a_query_and_samples(dataset, bob, client_of):
    client = client_of(bob)
    client.items_upsert(dataset.pk, rows(10))
    dynamic = client.slice_create_from_query(dataset.pk, "even", "metadata.even = true")
    assert dynamic.item_count == 5
    assert dynamic.data["is_dynamic"] is True
    client.items_upsert(dataset.pk, [{"reference_id": "img-010", "metadata": {"even": True}}])
    # A dynamic slice is evaluated at read time.
    assert client.slice(dataset.pk, "even").item_count == 6
    assert len(list(client.slice_records(dataset.pk, "even", page_size=4))) == 6
    assert len(list(client.slice_items(dataset.pk, "even", page_size=4))) == 6
    static = client.slice_create_from_query(dataset.pk, "low", "metadata.i < 3", dynamic=False)
    assert static.item_count == 3
    one = client.slice_sample(dataset.pk, "s1", 4, seed=7, source="even")
    two = client.slice_sample(dataset.pk, "s2", 4, seed=7, source="even")

    def refs(found):
        return [i["reference_id"] for i in client.slice_items(dataset.pk, found)]

    assert one.item_count == 4
    assert refs(one) == refs(two)
    assert {r[-3:] for r in refs(one)} <= {"000", "002", "004", "006", "008", "010"}
    with pytest.raises(NucleusAPIError) as caught:
        client.slice_create_from_query(dataset.pk, "bad", "metadata.i <")
    assert caught.value.status == 400 and caught.value.fields


# ---------------------------------------------------------------------------- export


def test_export_streams_a_versions_records_without_reading_them_all(dataset, versioned):
    records = versioned.export(dataset.pk, slice="train", version=1, format="jsonl")
    first = next(records)
    assert first["reference_id"] == "a"
    assert first["annotations"][0]["geometry"]["x"] == 10
    assert first["media_url"] is None  # no media was ingested for these items
    assert [r["reference_id"] for r in records] == ["b"]
    everything = versioned.export(dataset.pk)
    assert [r["reference_id"] for r in everything] == ["a", "b", "c"]


def test_exported_media_urls_work_without_credentials(dataset, victor, client_of):
    items_with_images(dataset, 2)
    records = list(client_of(victor).export(dataset.pk, url_ttl=60))
    assert len(records) == 2
    for record in records:
        response = requests.get(record["media_url"], timeout=30)
        assert response.status_code == 200
        assert response.content == jpeg_bytes(int(record["reference_id"][-1]) + 1000 * dataset.pk)


def test_export_writes_coco_yolo_and_jsonl_files(dataset, versioned, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    coco = versioned.export_to_file(
        dataset.pk, out / "train.json", slice="train", version=1, format="coco"
    )
    data = json.loads(coco.read_text())
    assert len(data["images"]) == 2 and len(data["annotations"]) == 2
    assert sorted(c["name"] for c in data["categories"]) == ["bus", "car"]
    yolo = versioned.export_to_file(
        dataset.pk, out / "train.tar", slice="train", version=2, format="yolo"
    )
    with tarfile.open(yolo) as archive:
        assert "data.yaml" in [PurePosixPath(n).name for n in archive.getnames()]
    lines = versioned.export_to_file(dataset.pk, out / "all.jsonl").read_text()
    assert len(lines.splitlines()) == 3
    assert sorted(p.name for p in out.iterdir()) == ["all.jsonl", "train.json", "train.tar"]


def test_a_refused_export_leaves_no_file(dataset, versioned, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(NucleusAPIError) as caught:
        versioned.export_to_file(dataset.pk, out / "x.json", slice="train", version=7)
    assert caught.value.status == 404
    with pytest.raises(NucleusAPIError) as caught:
        list(versioned.export(dataset.pk, predictions="no-such-model"))
    assert [f.path for f in caught.value.fields] == ["predictions"]
    assert list(out.iterdir()) == []
    with pytest.raises(ValueError):
        versioned.export(dataset.pk, format="coco")
    with pytest.raises(ValueError):
        versioned.export(dataset.pk, version=1)


class BreakingAdapter(HTTPAdapter):
    """Delivers the first chunk of each streamed body, then loses the connection."""

    def send(self, request, **kwargs):
        response = super().send(request, **kwargs)
        raw = response.raw

        class Broken:
            def stream(self, amt=None, decode_content=None):
                yield raw.read(64)
                raise urllib3.exceptions.ProtocolError("Connection broken: reset by peer")

            def close(self):
                raw.close()

            def release_conn(self):
                raw.release_conn()

        response.raw = Broken()
        return response


def test_a_broken_download_raises_and_leaves_no_file(dataset, versioned, bob, client_of, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    session = requests.Session()
    session.mount("http://", BreakingAdapter())
    client = client_of(bob, session=session)
    with pytest.raises(NucleusConnectionError):
        client.export_to_file(dataset.pk, out / "all.jsonl")
    with pytest.raises(NucleusConnectionError):
        list(client.export(dataset.pk))
    assert list(out.iterdir()) == []


def test_an_export_job_writes_a_file_to_download(dataset, versioned, tmp_path):
    from curation.jobs import job_run

    job = versioned.export_job_start(dataset.pk, slice="train", version=1, format="coco")
    assert (job.kind, job.status) == ("export", "queued")
    job_run(job_id=job.id)
    done = versioned.job_wait(dataset.pk, job, poll=0.01)
    assert done.status == "succeeded"
    path = versioned.export_job_download(dataset.pk, done, tmp_path / "job.json")
    assert len(json.loads(path.read_text())["images"]) == 2


# ---------------------------------------------------------------------------- search


@pytest.fixture
def vectors(dataset):
    model = custom_model(dataset, 8)
    data = np.eye(8, dtype=np.float32) + 0.1
    meta = [{"n": i, "weather": "rain" if i % 2 else "sun"} for i in range(8)]
    items_with_vectors(dataset, model, data, metadata=meta)
    return data


def test_search_by_vector_and_by_item_with_filters(dataset, victor, bob, client_of, vectors):
    client = client_of(victor)
    found = client.search(dataset.pk, vector=vectors[3].tolist(), k=3)
    assert len(found) == 3
    assert found.hits[0].reference_id == "v-00003"
    assert [h.score for h in found] == sorted((h.score for h in found), reverse=True)
    assert (found.model, found.random_weights) == ("constructed", False)
    like = client.search(dataset.pk, item="v-00003", k=10)
    assert len(like) == 7 and "v-00003" not in [h.reference_id for h in like]
    rainy = client.search(
        dataset.pk, vector=vectors[2].tolist(), k=10, metadata=[{"key": "weather", "value": "rain"}]
    )
    assert {h.item["metadata"]["n"] for h in rainy} == {1, 3, 5, 7}
    queried = client.search(dataset.pk, item="v-00000", query="metadata.n >= 6")
    assert {h.reference_id for h in queried} == {"v-00006", "v-00007"}
    client_of(bob).tag_add(dataset.pk, "keep", ["v-00004", "v-00005"])
    client_of(bob).slice_create(dataset.pk, "pair", reference_ids=["v-00001", "v-00002"])
    assert {h.reference_id for h in client.search(dataset.pk, item="v-00000", tags=["keep"])} == {
        "v-00004",
        "v-00005",
    }
    in_slice = client.search(dataset.pk, vector=vectors[0].tolist(), slice="pair")
    assert {h.reference_id for h in in_slice} == {"v-00001", "v-00002"}
    paged = client.search(dataset.pk, vector=vectors[0].tolist(), k=4, offset=4)
    assert len(paged) == 4
    with pytest.raises(NucleusAPIError) as caught:
        client.search(dataset.pk, vector=[1.0, 0.0])
    assert [f.path for f in caught.value.fields] == ["vector"]
    with pytest.raises(ValueError):
        client.search(dataset.pk, text="x", vector=[1.0])


def test_search_by_text_and_by_image_file(dataset, alice, victor, client_of, tiny_clip, tmp_path):
    from curation.jobs import job_run
    from embeddings.services import embed_job_start

    items = items_with_images(dataset, 4)
    job_run(job_id=embed_job_start(dataset=dataset, user=alice).pk)
    client = client_of(victor)
    by_text = client.search(dataset.pk, text="a red bus at night", k=2)
    assert len(by_text) == 2
    assert by_text.random_weights is True  # tests run a randomly initialised model
    picture = tmp_path / "query.jpg"
    picture.write_bytes(jpeg_bytes(2 + 1000 * dataset.pk))  # the bytes of item 2's image
    by_image = client.search(dataset.pk, image=picture, k=1)
    assert by_image.hits[0].reference_id == items[2].reference_id
    same = client.search(dataset.pk, image=picture.read_bytes(), k=1, tags=[])
    assert same.hits[0].reference_id == items[2].reference_id


# ----------------------------------------------------------------------- evaluations


def test_it_starts_an_evaluation_waits_for_it_and_reads_its_matches(
    dataset, bob, victor, client_of
):
    from curation.jobs import job_run

    evaluation_world(dataset)
    client = client_of(bob)
    started = client.evaluation_start(dataset.pk, "yolo", name="first")
    assert (started["status"], started["scope"]) == ("queued", {"kind": "dataset"})

    def progress(current):
        if current.status == "queued":
            job_run(job_id=current.id)  # what a worker does, between two polls

    run = client.evaluation_wait(dataset.pk, started, poll=0.01, progress=progress)
    assert run["status"] == "succeeded" and len(run["metrics"]["coco_stats"]) == 12
    by_class = {c["label"]: round(c["ap"], 9) for c in run["metrics"]["per_class"]}
    assert by_class == {"bus": 0.0, "car": 1.0, "person": 1.0}

    viewer = client_of(victor)
    assert [r["name"] for r in viewer.evaluations(dataset.pk)] == ["first"]
    assert viewer.evaluation(dataset.pk, run["id"])["metrics"] == run["metrics"]
    misses = list(viewer.evaluation_matches(dataset.pk, run, outcome="fn"))
    assert [(m["outcome"], m["label"]) for m in misses] == [("fn", "bus")]
    missed = viewer.evaluation_matches(dataset.pk, run, error_type="missed")
    assert [(m["label"], m["error_type"]) for m in missed] == [("bus", "missed")]
    assert [m["label"] for m in viewer.evaluation_matches(dataset.pk, run, label="person")] == [
        "person"
    ]
    with pytest.raises(NucleusAPIError) as caught:
        viewer.evaluation_delete(dataset.pk, run)
    assert caught.value.status == 403

    client.evaluation_delete(dataset.pk, run["id"])
    assert list(client.evaluations(dataset.pk)) == []


def test_it_compares_two_runs_named_or_by_id(dataset, bob, victor, client_of):
    from tests.ui_factories import evaluated, outcome_world

    outcome_world(dataset)
    base = evaluated(dataset, bob, "base")
    evaluated(dataset, bob, "strict run", confidence_threshold=0.85)
    viewer = client_of(victor)
    found = viewer.evaluation_compare(dataset.pk, base.pk, "strict run")
    assert (found["a"]["name"], found["b"]["name"]) == ("base", "strict run")
    fp = next(r for r in found["summary"] if r["metric"] == "fp")
    assert (fp["a"], fp["b"], fp["delta"]) == (3, 1, -2)
    assert found["items"]["wrong_in_both"]["count"] == 3
    with pytest.raises(NucleusError, match="No evaluation run named 'nope'"):
        viewer.evaluation_compare(dataset.pk, "base", "nope")
    with pytest.raises(NucleusAPIError) as caught:
        viewer.evaluation_compare(dataset.pk, base.pk, 10**6)
    assert caught.value.status == 400


def test_an_evaluation_of_a_slice_by_name_and_its_bad_input(dataset, bob, client_of):
    from curation.jobs import job_run

    evaluation_world(dataset)
    client = client_of(bob)
    client.slice_create(dataset.pk, "b", reference_ids=["b.jpg"])

    def progress(current):
        if current.status == "queued":
            job_run(job_id=current.id)

    run = client.evaluation_start(
        dataset.pk,
        "yolo",
        name="on b",
        slice="b",
        options={"confidence_threshold": 0.4},
        wait=True,
        poll=0.01,
        progress=progress,
    )
    assert run["status"] == "succeeded" and run["counts"]["items"] == 1
    assert run["scope"]["slice_name"] == "b" and run["options"]["confidence_threshold"] == 0.4
    with pytest.raises(NucleusAPIError) as caught:
        client.evaluation_start(dataset.pk, "yolo", name="x", options={"max_dets": [1]})
    assert [f.path for f in caught.value.fields] == ["options.max_dets"]
    with pytest.raises(NucleusAPIError) as caught:
        client.evaluation_start(dataset.pk, "yolo", name="on b")
    assert caught.value.status == 409
    # The task: a segmentation run of a model of boxes finishes, saying it had no masks.
    segm = client.evaluation_start(
        dataset.pk,
        "yolo",
        name="segm",
        task="segmentation",
        wait=True,
        poll=0.01,
        progress=progress,
    )
    assert segm["task"] == "segmentation" and segm["status"] == "succeeded"
    assert segm["metrics"]["coco_stats"] == [-1.0] * 12
    assert any("no polygon or mask predictions" in w for w in segm["warnings"])
    with pytest.raises(NucleusAPIError) as caught:
        client.evaluation_start(dataset.pk, "yolo", name="y", task="depth")
    assert [f.path for f in caught.value.fields] == ["task"]


def test_scenario_suites_tests_evaluations_and_their_history(dataset, bob, victor, client_of):
    from curation.jobs import job_run

    evaluation_world(dataset)
    client = client_of(bob)
    suite = client.scenario_suite_create(dataset.pk, "gates", description="release")
    client.slice_create(dataset.pk, "b", reference_ids=["b.jpg"])
    people = client.scenario_test_create(
        dataset.pk, "gates", "people on b", "recall", threshold=1.0, slice="b"
    )
    assert people["scope"]["slice_name"] == "b" and people["comparison"] == "at_least"
    buses = client.scenario_test_create(
        dataset.pk, suite, "buses", "ap.bus", threshold=0.5, query='reference_id = "a.jpg"'
    )
    assert buses["scope"] == {"kind": "dataset", "query": 'reference_id = "a.jpg"'}
    with pytest.raises(NucleusAPIError) as caught:
        client.scenario_test_create(dataset.pk, suite, "bad", "accuracy", threshold=0.5)
    assert [f.path for f in caught.value.fields] == ["metric"]

    def progress(current):
        if current.status == "queued":
            job_run(job_id=current.id)

    first = client.scenario_evaluate(
        dataset.pk, "gates", "yolo", wait=True, poll=0.01, progress=progress
    )
    assert first["status"] == "succeeded" and first["passed"] is False
    assert {r["test_name"]: r["passed"] for r in first["results"]} == {
        "people on b": True,
        "buses": False,
    }
    client.scenario_test_delete(dataset.pk, "gates", buses["id"])
    second = client.scenario_evaluate(
        dataset.pk, suite["id"], "yolo", wait=True, poll=0.01, progress=progress
    )
    assert second["passed"] is True and len(second["results"]) == 1

    viewer = client_of(victor)
    assert [s["name"] for s in viewer.scenario_suites(dataset.pk)] == ["gates"]
    assert [t["name"] for t in viewer.scenario_suite(dataset.pk, "gates")["tests"]] == [
        "people on b"
    ]
    history = list(viewer.scenario_evaluations(dataset.pk, "gates"))
    assert [(e["id"], e["passed"]) for e in history] == [(second["id"], True), (first["id"], False)]
    # The deleted test's result stays in the history, without its test.
    kept = viewer.scenario_evaluation(dataset.pk, "gates", first["id"])
    assert kept == history[1]
    assert [(r["test_name"], r["test"]) for r in kept["results"]] == [
        ("people on b", people["id"]),
        ("buses", None),
    ]
    with pytest.raises(NucleusAPIError) as caught:
        viewer.scenario_evaluate(dataset.pk, "gates", "yolo")
    assert caught.value.status == 403
    client.scenario_suite_delete(dataset.pk, "gates")
    assert client.scenario_suites(dataset.pk) == []


def test_history_lists_filters_and_reverts(dataset, bob, victor, client_of):
    ids = add_items(dataset, {"reference_id": "a"})
    client = client_of(bob)
    client.annotations_upload(dataset.pk, [{"reference_id": "a", "id": "a-1", **box()}])
    client.annotations_upload(dataset.pk, [{"reference_id": "a", "id": "a-1", **box(label="bus")}])
    item = client.item_history(dataset.pk, ids["a"])
    assert [(c["action"], c["user"], c["source"]) for c in item] == [
        ("changed", "bob", "api"),
        ("created", "bob", "api"),
    ]
    listed = list(client_of(victor).history(dataset.pk, user="bob", since=item[1]["id"]))
    assert [c["id"] for c in listed] == [item[0]["id"]]
    with pytest.raises(NucleusAPIError) as refused:
        client_of(victor).change_revert(dataset.pk, item[0]["id"])
    assert refused.value.status == 403
    made = client.change_revert(dataset.pk, item[0]["id"])
    assert (made["source"], made["reverts"], made["after"]["label"]) == (
        "revert",
        item[0]["id"],
        "car",
    )
