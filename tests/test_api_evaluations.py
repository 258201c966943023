"""Evaluation runs over the API: start, list, read, delete, browse matches; who may do
what; every bad request a 400 naming its field."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from curation.jobs import job_run
from curation.models import Dataset, JobStatus, Model, Slice
from curation.versions import slice_version_create
from evaluation.models import EvaluationMatch, EvaluationRun
from tests.api_helpers import add_items, box, error_of, error_paths, url


def _world(dataset: Dataset) -> Model:
    """Two images: on a, one car found and one bus missed; on b, a car predicted on
    nothing (a false positive) and a person found."""
    add_items(
        dataset,
        {
            "reference_id": "a.jpg",
            "annotations": [
                box(0, 0, 50, 50, id="g1"),
                box(100, 100, 40, 40, id="g2", label="bus"),
            ],
            "predictions": [box(0, 0, 50, 48, id="p1", model="yolo", confidence=0.9)],
        },
        {
            "reference_id": "b.jpg",
            "annotations": [box(10, 10, 30, 60, id="g3", label="person")],
            "predictions": [
                box(200, 200, 20, 20, id="p2", model="yolo", confidence=0.8),
                box(10, 10, 30, 60, id="p3", label="person", model="yolo", confidence=0.7),
                box(11, 11, 30, 60, id="p4", label="person", model="yolo", confidence=0.2),
            ],
        },
    )
    return Model.objects.get(dataset=dataset, name="yolo")


def _start(client: Any, dataset: Dataset, **body: Any) -> Any:
    return client.post(url(dataset, "evaluations"), body, format="json")


def _finished(response: Any) -> dict[str, Any]:
    assert response.status_code == 202, response.json()
    job = job_run(job_id=response.json()["job"])
    assert job is not None and job.status == JobStatus.SUCCEEDED, job and job.message
    return dict(response.json())


def test_a_curator_starts_a_run_and_a_viewer_reads_its_metrics_and_matches(
    dataset: Dataset, bob: Any, victor: Any, client_for: Any
) -> None:
    model = _world(dataset)
    started = _finished(_start(client_for(bob), dataset, name="first", model=model.pk))
    assert started["status"] == "queued" and started["scope"] == {"kind": "dataset"}
    viewer = client_for(victor)

    detail = viewer.get(url(dataset, f"evaluations/{started['id']}")).json()
    assert detail["status"] == "succeeded" and detail["model_name"] == "yolo"
    metrics = detail["metrics"]
    assert len(metrics["coco_stats"]) == 12 and metrics["map"] == metrics["coco_stats"][0]
    assert (
        metrics["operating_point"] | {"confidence": 0.5, "iou": 0.5} == metrics["operating_point"]
    )
    assert (metrics["operating_point"]["tp"], metrics["operating_point"]["fp"]) == (2, 1)
    assert metrics["operating_point"]["fn"] == 1
    by_class = {c["label"]: c for c in metrics["per_class"]}
    assert (by_class["bus"]["fn"], by_class["car"]["fp"], by_class["person"]["tp"]) == (1, 1, 1)
    assert detail["counts"] == {"items": 2, "ground_truth": 3, "predictions": 4, "matches": 4}

    listed = viewer.get(url(dataset, "evaluations")).json()["results"]
    assert [r["name"] for r in listed] == ["first"]
    assert "per_class" not in listed[0]["metrics"] and listed[0]["metrics"]["map"] == metrics["map"]

    base = url(dataset, f"evaluations/{started['id']}/matches")
    fps = viewer.get(base, {"outcome": "fp", "label": "car"}).json()["results"]
    assert [(m["outcome"], m["label"], m["confidence"]) for m in fps] == [("fp", "car", 0.8)]
    assert fps[0]["annotation"] is None and fps[0]["prediction"] is not None
    # b's car on nothing is a background error; a's bus is missed.
    background = viewer.get(base, {"error_type": "background"}).json()["results"]
    assert [(m["outcome"], m["label"]) for m in background] == [("fp", "car")]
    missed = viewer.get(base, {"error_type": "missed"}).json()["results"]
    assert [(m["outcome"], m["label"]) for m in missed] == [("fn", "bus")]
    tps = viewer.get(base, {"outcome": "tp"}).json()["results"]
    assert sorted(m["label"] for m in tps) == ["car", "person"]
    assert all(0.5 <= m["iou"] <= 1 for m in tps)

    first = viewer.get(base, {"limit": 3}).json()
    assert len(first["results"]) == 3 and first["next"]
    rest = viewer.get(first["next"]).json()
    assert len(rest["results"]) == 1 and rest["next"] is None
    seen = {m["id"] for m in first["results"] + rest["results"]}
    assert seen == set(EvaluationMatch.objects.values_list("id", flat=True))


def test_a_run_on_a_version_records_its_scope(
    dataset: Dataset, alice: Any, client_for: Any
) -> None:
    model = _world(dataset)
    chosen = Slice.objects.create(dataset=dataset, name="b", query='reference_id = "b.jpg"')
    slice_version_create(slice=chosen, user=alice)
    body = _finished(
        _start(client_for(alice), dataset, name="v", model=model.pk, slice=chosen.pk, version=1)
    )
    detail = client_for(alice).get(url(dataset, f"evaluations/{body['id']}")).json()
    assert detail["scope"] == {
        "kind": "version",
        "slice": chosen.pk,
        "slice_name": "b",
        "version": 1,
    }
    assert detail["counts"]["items"] == 1


def test_bad_requests_name_their_field(dataset: Dataset, alice: Any, client_for: Any) -> None:
    model = _world(dataset)
    other = Dataset.objects.create(name="other", owner=alice)
    foreign_model = Model.objects.create(dataset=other, name="theirs")
    foreign_slice = Slice.objects.create(dataset=other, name="theirs")
    slice_version_create(slice=foreign_slice, user=alice)
    mine = Slice.objects.create(dataset=dataset, name="mine")
    client = client_for(alice)
    cases = {
        "model": {"model": foreign_model.pk},
        "options.label_mapping.van": {
            "model": model.pk,
            "options": {"label_mapping": {"van": "car"}},
        },
        "options.label_mapping.car": {
            "model": model.pk,
            "options": {"label_mapping": {"car": "lorry"}},
        },
        "options.iou_thresholds[0]": {"model": model.pk, "options": {"iou_thresholds": [1.5]}},
        "options.iou_thresholds[1]": {"model": model.pk, "options": {"iou_thresholds": [0.5, 0]}},
        "slice": {"model": model.pk, "slice": foreign_slice.pk, "version": 1},
        "version": {"model": model.pk, "slice": mine.pk, "version": 1},
        "options": {"model": model.pk, "options": [1]},
        "name": {"name": "", "model": model.pk},
        "task": {"model": model.pk, "task": "keypoints"},
        # Options are the task's: a classification run has no IoU thresholds.
        "options.iou_thresholds": {
            "model": model.pk,
            "task": "classification",
            "options": {"iou_thresholds": [0.5]},
        },
        "options.top_k": {"model": model.pk, "task": "classification", "options": {"top_k": [0]}},
    }
    for path, body in cases.items():
        response = _start(client, dataset, **{"name": "r", **body})
        assert error_paths(response) == [path], (path, response.json())
    assert not EvaluationRun.objects.exists()

    _finished(_start(client, dataset, name="taken", model=model.pk))
    taken = _start(client, dataset, name="taken", model=model.pk)
    assert [f["path"] for f in error_of(taken, 409, "conflict")["fields"]] == ["name"]
    run = EvaluationRun.objects.get()
    matches = url(dataset, f"evaluations/{run.pk}/matches")
    assert error_paths(client.get(matches, {"outcome": "maybe"})) == ["outcome"]
    assert error_paths(client.get(matches, {"cursor": "junk"})) == ["cursor"]
    assert error_paths(client.get(matches, {"error_type": "typo"})) == ["error_type"]


@pytest.mark.parametrize("method", ["get", "delete"])
def test_strangers_see_nothing_and_viewers_only_read(
    dataset: Dataset, bob: Any, victor: Any, charlie: Any, client_for: Any, method: str
) -> None:
    model = _world(dataset)
    body = _finished(_start(client_for(bob), dataset, name="r", model=model.pk))
    detail = url(dataset, f"evaluations/{body['id']}")
    stranger, viewer = client_for(charlie), client_for(victor)
    for path in ("evaluations", f"evaluations/{body['id']}", f"evaluations/{body['id']}/matches"):
        error_of(stranger.get(url(dataset, path)), 404)
        assert viewer.get(url(dataset, path)).status_code == 200
    error_of(stranger.delete(detail), 404)
    error_of(_start(stranger, dataset, name="s", model=model.pk), 404)
    error_of(_start(viewer, dataset, name="v", model=model.pk), 403)
    error_of(viewer.delete(detail), 403)
    assert EvaluationRun.objects.count() == 1
    assert client_for(None).get(url(dataset, "evaluations")).status_code == 401


def test_deleting_a_run_deletes_its_matches_and_cancels_a_queued_job(
    dataset: Dataset, bob: Any, client_for: Any
) -> None:
    model = _world(dataset)
    client = client_for(bob)
    done = _finished(_start(client, dataset, name="done", model=model.pk))
    queued = _start(client, dataset, name="queued", model=model.pk).json()
    assert EvaluationMatch.objects.filter(run_id=done["id"]).count() == 4

    assert client.delete(url(dataset, f"evaluations/{done['id']}")).status_code == 204
    assert not EvaluationMatch.objects.exists()
    assert client.delete(url(dataset, f"evaluations/{queued['id']}")).status_code == 204
    job = job_run(job_id=queued["job"])
    assert job is not None and job.status == JobStatus.CANCELLED
    assert not EvaluationRun.objects.exists()
    error_of(client.get(url(dataset, f"evaluations/{done['id']}")), 404)


def test_deleting_the_dataset_deletes_its_runs(
    dataset: Dataset, alice: Any, client_for: Any
) -> None:
    model = _world(dataset)
    _finished(_start(client_for(alice), dataset, name="r", model=model.pk))
    assert client_for(alice).delete(url(dataset)).status_code == 204
    assert not EvaluationRun.objects.exists() and not EvaluationMatch.objects.exists()


def test_deleting_the_model_deletes_its_runs(dataset: Dataset, bob: Any, client_for: Any) -> None:
    model = _world(dataset)
    _finished(_start(client_for(bob), dataset, name="r", model=model.pk))
    assert client_for(bob).delete(url(dataset, f"models/{model.pk}")).status_code == 204
    assert not EvaluationRun.objects.exists() and not EvaluationMatch.objects.exists()


def test_the_admin_shows_runs_read_only(dataset: Dataset, bob: Any, client_for: Any) -> None:
    model = _world(dataset)
    run = _finished(_start(client_for(bob), dataset, name="shown", model=model.pk))
    root = User.objects.create_superuser("root", "root@example.com", "root-password-1")
    client = Client()
    client.force_login(root)
    listed = client.get("/admin/evaluation/evaluationrun/")
    assert listed.status_code == 200 and b"shown" in listed.content
    page = client.get(f"/admin/evaluation/evaluationrun/{run['id']}/change/")
    assert page.status_code == 200 and b"coco_stats" in page.content
    assert client.get("/admin/evaluation/evaluationrun/add/").status_code == 403


def _two_models(dataset: Dataset) -> tuple[Model, Model]:
    """Four images scored by two models: "yolo" gets c right and a, b, d wrong; "better"
    gets a and b right and c, d wrong."""

    def yolo(*args: float, **extra: Any) -> dict[str, Any]:
        return box(*args, model="yolo", **extra)

    def better(*args: float, **extra: Any) -> dict[str, Any]:
        return box(*args, model="better", **extra)

    add_items(
        dataset,
        {
            "reference_id": "a",
            "annotations": [box(0, 0, 50, 50), box(100, 100, 40, 40, label="bus")],
            "predictions": [
                yolo(0, 0, 50, 48, confidence=0.9),  # the bus is missed
                better(0, 0, 50, 50, confidence=0.9),
                better(100, 100, 40, 40, label="bus", confidence=0.8),
            ],
        },
        {
            "reference_id": "b",
            "annotations": [box(10, 10, 30, 60, label="person")],
            "predictions": [
                yolo(200, 200, 20, 20, confidence=0.8),  # a car on nothing
                yolo(10, 10, 30, 60, label="person", confidence=0.7),
                better(10, 10, 30, 60, label="person", confidence=0.7),
            ],
        },
        {
            "reference_id": "c",
            "annotations": [box(0, 0, 30, 30)],
            "predictions": [yolo(0, 0, 30, 30, confidence=0.9)],  # better misses it
        },
        {"reference_id": "d", "annotations": [box(0, 0, 20, 20)]},  # both miss it
    )
    return Model.objects.get(dataset=dataset, name="yolo"), Model.objects.get(
        dataset=dataset, name="better"
    )


def test_comparing_two_runs_gives_deltas_and_the_items_each_gets_right(
    dataset: Dataset, bob: Any, victor: Any, charlie: Any, client_for: Any
) -> None:
    from tests.query_dataset import matching

    yolo, better = _two_models(dataset)
    a = _finished(_start(client_for(bob), dataset, name="yolo run", model=yolo.pk))
    b = _finished(_start(client_for(bob), dataset, name="better", model=better.pk))
    compare = url(dataset, "evaluations/compare")
    body = client_for(victor).get(compare, {"a": a["id"], "b": b["id"]}).json()
    assert (body["a"]["name"], body["b"]["name"]) == ("yolo run", "better")
    assert body["warnings"] == []
    summary = {row["metric"]: row for row in body["summary"]}
    assert (summary["fp"]["a"], summary["fp"]["b"], summary["fp"]["delta"]) == (1, 0, -1)
    assert (summary["tp"]["a"], summary["tp"]["b"], summary["tp"]["delta"]) == (3, 3, 0)
    ra, rb = (EvaluationRun.objects.get(pk=r["id"]) for r in (a, b))
    assert summary["map"]["delta"] == pytest.approx(rb.metrics["map"] - ra.metrics["map"])
    by_class = {row["label"]: row for row in body["per_class"]}
    assert by_class["bus"]["ap"] == pytest.approx({"a": 0.0, "b": 1.0, "delta": 1.0})
    assert by_class["car"]["fn"] == {"a": 1, "b": 2, "delta": 1}
    missed = next(e for e in body["errors"] if e["type"] == "missed")
    assert (missed["count"]["a"], missed["count"]["b"]) == (2, 2)
    items = body["items"]
    assert items["right_in_a_only"]["count"] == 1
    assert matching(dataset, items["right_in_a_only"]["query"]) == ["c"]
    assert items["right_in_b_only"]["count"] == 2
    assert matching(dataset, items["right_in_b_only"]["query"]) == ["a", "b"]
    assert matching(dataset, items["wrong_in_both"]["query"]) == ["d"]
    assert items["wrong_in_both"]["count"] == 1

    # Who may: viewers read, strangers see nothing.
    error_of(client_for(charlie).get(compare, {"a": a["id"], "b": b["id"]}), 404)
    # Bad requests name their field.
    client = client_for(bob)
    assert error_paths(client.get(compare, {"a": a["id"]})) == ["b"]
    assert error_paths(client.get(compare, {"a": "x", "b": b["id"]})) == ["a"]
    other = Dataset.objects.create(name="other", owner=bob)
    theirs = Model.objects.create(dataset=other, name="theirs")
    foreign = EvaluationRun.objects.create(
        dataset=other, model=theirs, name="elsewhere", metrics={"map": 0.5}
    )
    assert error_paths(client.get(compare, {"a": a["id"], "b": foreign.pk})) == ["b"]
    queued = _start(client, dataset, name="queued", model=better.pk).json()
    assert error_paths(client.get(compare, {"a": queued["id"], "b": b["id"]})) == ["a"]
    EvaluationRun.objects.filter(pk=b["id"]).update(task="classification")
    assert error_paths(client.get(compare, {"a": a["id"], "b": b["id"]})) == ["b"]
