"""Labels and boxes unlike their look (insights/label_look.py, object_features.py): on
drawn street scenes whose answer is known (tests/ui_factories.scene: cars, people,
bicycles and traffic lights), a relabelled object and a moved box come first, consistent
labels score low, windows on objects look like objects and windows on the road do not,
and the job scores a dataset's stored images (an unlabelled object a prediction found is
the first `missing` candidate)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from curation.jobs import job_run
from curation.media import stored_upright
from curation.models import Annotation, Dataset, JobStatus
from insights.label_error_scan import label_error_scan_create
from insights.label_errors import Candidate
from insights.label_look import LookModel, corroborated, look_fit
from insights.models import LabelErrorCandidate
from insights.object_features import (
    background_boxes,
    fit_features,
    object_features,
    prepare,
    shifted_boxes,
)
from tests.api_helpers import add_items, box, url
from tests.ui_factories import MODEL, evaluated, populate, scene

SCENES = 80


def _world(relabel: dict[int, str] | None = None, move: int | None = None) -> dict[str, Any]:
    """The objects of SCENES drawn scenes with their features; object k is relabelled
    as relabel[k], and object `move` moved by half its width."""
    world = dict(_features(move))
    world["labels"] = [(relabel or {}).get(k, label) for k, label in enumerate(world["labels"])]
    return world


@functools.cache
def _features(move: int | None) -> dict[str, Any]:
    items, labels, look, fit, moved_fit = [], [], [], [], []
    rng = np.random.default_rng(0)
    k = 0
    for index in range(SCENES):
        data, boxes, _ = scene(index)
        decoded = stored_upright(data, long_side=320)
        assert decoded is not None
        image = prepare(np.asarray(decoded[0], dtype=np.float32) / 255)
        xywh = []
        for b in boxes:
            g = b["geometry"]
            box = [g["x"], g["y"], g["width"], g["height"]]
            if k == move:
                box[0] += box[2] / 2
            xywh.append(box)
            labels.append(b["label"])
            items.append(index)
            k += 1
        array = np.array(xywh)
        look.append(object_features(image, array))
        fit.append(fit_features(image, array))
        moved = shifted_boxes(array, image.width, image.height, rng)
        moved_fit.append(fit_features(image, moved))
    return {
        "item_ids": np.array(items),
        "annotation_ids": np.arange(len(labels)),
        "labels": labels,
        "look": np.concatenate(look),
        "fit": np.concatenate(fit),
        "moved_fit": np.concatenate(moved_fit),
    }


@functools.cache
def _windows(first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
    """object_features of the objects of scenes first..last-1, and of background windows
    (boxes of the same size on the same rows, overlapping no object) in them."""
    objects, background = [], []
    rng = np.random.default_rng(1)
    for index in range(first, last):
        data, boxes, _ = scene(index)
        decoded = stored_upright(data, long_side=320)
        assert decoded is not None
        image = prepare(np.asarray(decoded[0], dtype=np.float32) / 255)
        xywh = np.array([[b["geometry"][k] for k in ("x", "y", "width", "height")] for b in boxes])
        objects.append(object_features(image, xywh))
        background.append(
            object_features(image, background_boxes(xywh, image.width, image.height, rng))
        )
    return np.concatenate(objects), np.concatenate(background)


def test_windows_on_objects_look_like_objects() -> None:
    world = _world()
    _, background = _windows(0, SCENES)
    model, reason = look_fit(
        annotation_ids=world["annotation_ids"],
        labels=world["labels"],
        look=world["look"],
        fit=world["fit"],
        moved_fit=world["moved_fit"],
        background=background,
    )
    assert model is not None and model.objectness, reason
    # Scenes the classifier never saw: their objects against windows on their road.
    objects, empty = _windows(SCENES, SCENES + 30)
    on_objects, on_background = model.object_ratios(objects), model.object_ratios(empty)
    assert np.median(on_objects) > 1 > np.median(on_background)
    # Nearly every object outranks nearly every background window (AUC).
    wins = (on_objects[:, None] > on_background[None, :]).mean()
    assert wins > 0.9, wins
    # The ratios were measured on windows the networks did not see, and grow with the
    # logit; they survive a resume.
    assert model.object_ratios_by_bin == sorted(model.object_ratios_by_bin)
    again = LookModel.from_state(model.to_state())
    assert np.allclose(again.object_ratios(objects), on_objects)


def _scored(world: dict[str, Any]) -> tuple[LookModel, dict[str, list[Any]]]:
    model, reason = look_fit(
        annotation_ids=world["annotation_ids"],
        labels=world["labels"],
        look=world["look"],
        fit=world["fit"],
        moved_fit=world["moved_fit"],
    )
    assert model is not None, reason
    found = model.score(
        item_ids=world["item_ids"],
        annotation_ids=world["annotation_ids"],
        labels=world["labels"],
        look=world["look"],
        fit=world["fit"],
    )
    by_type: dict[str, list[Any]] = {"odd_label": [], "odd_box": []}
    for c in found:
        by_type[c.type].append(c)
    for rows in by_type.values():
        rows.sort(key=lambda c: -c.score)
    return model, by_type


def _first(labels: list[str], label: str) -> int:
    return labels.index(label)


def test_a_relabelled_object_gets_the_top_label_score() -> None:
    plain = _world()
    car = _first(plain["labels"], "car")
    _, found = _scored(_world(relabel={car: "person"}))
    top = found["odd_label"][0]
    assert top.annotation_id == car, [(c.annotation_id, c.score) for c in found["odd_label"][:5]]
    assert top.evidence["label"] == "person"
    assert top.evidence["looks_like"] == "car"
    assert top.evidence["p_looks_like"] > top.evidence["p_label"]
    assert top.evidence["margin"] < 0
    assert top.score > 0.5


def test_consistent_labels_score_low() -> None:
    _, found = _scored(_world())
    assert max((c.score for c in found["odd_label"]), default=0.0) < 0.2


def test_a_box_moved_by_half_its_width_gets_the_top_box_score() -> None:
    plain = _world()
    car = _first(plain["labels"], "car")
    _, found = _scored(_world(move=car))
    ranked = [c.annotation_id for c in found["odd_box"]]
    assert ranked[:1] == [car], [(c.annotation_id, c.score) for c in found["odd_box"][:5]]
    assert found["odd_box"][0].evidence["p_moved"] > 0.5


def test_the_model_survives_a_resume() -> None:
    world = _world(relabel={0: "bicycle"})
    model, found = _scored(world)
    again = LookModel.from_state(model.to_state())
    rescored = again.score(
        item_ids=world["item_ids"],
        annotation_ids=world["annotation_ids"],
        labels=world["labels"],
        look=world["look"],
        fit=world["fit"],
    )
    assert sorted((c.annotation_id, c.type, c.score) for c in rescored) == sorted(
        (c.annotation_id, c.type, c.score) for rows in found.values() for c in rows
    )


def test_too_few_objects_is_off() -> None:
    world = _world()
    model, reason = look_fit(
        annotation_ids=world["annotation_ids"][:20],
        labels=world["labels"][:20],
        look=world["look"][:20],
        fit=world["fit"][:20],
        moved_fit=world["moved_fit"][:20],
    )
    assert model is None
    assert reason.startswith("off: 20 objects")


def _scan(dataset: Dataset, user: User) -> Any:
    run = evaluated(dataset, user, "run", model=MODEL)
    scan = label_error_scan_create(dataset=dataset, user=user, run_id=run.pk, enqueue=False)
    assert scan.job_id is not None
    job = job_run(job_id=scan.job_id)
    assert job is not None and job.status == JobStatus.SUCCEEDED, job and job.message
    scan.refresh_from_db()
    return scan


@pytest.mark.django_db
def test_the_scan_reads_the_stored_images(dataset: Dataset, alice: User, victor: User) -> None:
    populate(dataset, 60)
    car = Annotation.objects.filter(item__dataset=dataset, label="car").order_by("id").first()
    assert car is not None
    Annotation.objects.filter(pk=car.pk).update(label="person")
    scan = _scan(dataset, alice)
    assert str(scan.calibration["look"]).startswith("on: ")
    top = LabelErrorCandidate.objects.filter(scan=scan, type="odd_label").order_by("-score")[0]
    assert (top.annotation_id, top.prediction_id) == (car.pk, None)
    assert top.evidence["looks_like"] == "car"
    # The API lists them with their evidence, to a viewer, and says the signal was on.
    client = APIClient()
    client.force_authenticate(victor)
    response = client.get(url(dataset, "label-errors?type=odd_label&limit=3"))
    assert response.status_code == 200
    body = response.json()
    assert body["look"]["enabled"] is True
    first = body["results"][0]
    assert (first["type"], first["annotation"]) == ("odd_label", car.pk)
    assert set(first["evidence"]) == {"label", "p_label", "looks_like", "p_looks_like", "margin"}


@pytest.mark.django_db
def test_a_scan_without_the_look_reads_no_image(
    dataset: Dataset, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    populate(dataset, 60)
    car = Annotation.objects.filter(item__dataset=dataset, label="car").order_by("id").first()
    assert car is not None
    Annotation.objects.filter(pk=car.pk).update(label="person")
    run = evaluated(dataset, alice, "run", model=MODEL)
    client = APIClient()
    client.force_authenticate(alice)
    scans = url(dataset, "label-errors/scans")
    response = client.post(scans, {"run": run.pk, "look": "maybe"}, format="json")
    assert response.status_code == 400
    assert [f["path"] for f in response.json()["error"]["fields"]] == ["look"]
    response = client.post(scans, {"run": run.pk, "look": False}, format="json")
    assert response.status_code == 202, response.content

    def no_reads(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the images were read")

    monkeypatch.setattr("insights.label_error_scan.look_objects", no_reads)
    job = job_run(job_id=response.json()["job"])
    assert job is not None and job.status == JobStatus.SUCCEEDED, job and job.message
    body = client.get(url(dataset, "label-errors?limit=100")).json()
    assert body["look"]["enabled"] is False
    assert "turned off for this scan" in body["look"]["reason"]
    assert {r["type"] for r in body["results"]}.isdisjoint({"odd_label", "odd_box"})


@pytest.mark.django_db
def test_an_unlabelled_object_with_a_prediction_is_missing(dataset: Dataset, alice: User) -> None:
    populate(dataset, 60)
    # A car's box removed (one its item's first box, which the model predicts at 0.9): the
    # prediction on it overlaps no ground truth now.
    firsts = [
        Annotation.objects.filter(item=item).order_by("id")[0]
        for item in dataset.items.order_by("id")
    ]
    car = [a for a in firsts if a.label == "car"][2]
    Annotation.objects.filter(pk=car.pk).delete()
    scan = _scan(dataset, alice)
    missing = LabelErrorCandidate.objects.filter(scan=scan, type="missing").order_by("-score")
    assert missing, scan.calibration
    top = missing[0]
    assert top.item_id == car.item_id, [(c.item_id, c.score, c.evidence) for c in missing[:3]]
    assert top.evidence["label"] == "car"
    # The look says the prediction's box holds an object, which raised the score.
    assert top.evidence["look_ratio"] > 1
    assert top.score > top.evidence["detector_score"]


@pytest.mark.django_db
def test_without_images_the_signal_says_it_is_off(dataset: Dataset, alice: User) -> None:
    add_items(
        dataset,
        *(
            {
                "reference_id": f"r{i}",
                "annotations": [box(10, 10, 20, 20, id=f"g{i}")],
                "predictions": [box(10, 10, 20, 20, id=f"p{i}", model=MODEL, confidence=0.9)],
            }
            for i in range(3)
        ),
    )
    scan = _scan(dataset, alice)
    assert str(scan.calibration["look"]).startswith("off: 0 objects")
    assert "3 sampled items with boxes had no readable image" in scan.calibration["look"]
    assert not LabelErrorCandidate.objects.filter(scan=scan, type__in=["odd_label", "odd_box"])


def test_the_detector_and_the_look_agreeing_raise_the_score() -> None:
    detector = [
        Candidate(1, "wrong_label", 0.3, 11, 21, {"label": "car", "prediction_label": "truck"}),
        Candidate(2, "wrong_label", 0.3, 12, 22, {"label": "car", "prediction_label": "truck"}),
        Candidate(3, "bad_box", 0.2, 13, 23, {"label": "car"}),
    ]
    look = [
        Candidate(1, "odd_label", 0.5, 11, None, {"label": "car", "looks_like": "truck"}),
        Candidate(2, "odd_label", 0.5, 12, None, {"label": "car", "looks_like": "bus"}),
        Candidate(3, "odd_box", 0.1, 13, None, {"label": "car", "p_moved": 0.92}),
    ]
    raised = {c.annotation_id: c for c in corroborated(detector, look)}
    # Odds 0.3/0.7 x 0.5/0.5 over the prior odds 0.01/0.99: 42.4, a posterior of 0.977.
    assert raised[11].score == pytest.approx(0.977, abs=1e-3)
    assert raised[11].evidence["look_score"] == 0.5
    assert raised[11].evidence["detector_score"] == 0.3
    # Another class than the prediction's is no corroboration.
    assert raised[12] == detector[1]
    # Odds 0.2/0.8 x 0.1/0.9 over 0.01/0.99: 2.75, a posterior of 0.733.
    assert raised[13].score == pytest.approx(0.7333, abs=1e-3)
