"""Label-error candidates: each signal on constructed data whose answer is known, the job
(resumable, chunked), the query fields, the API's permissions, and model uncertainty."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from curation.jobs import JobContext, job_run
from curation.models import Dataset, Item, Job, JobStatus, Model
from curation.query import QueryError, validate_query
from evaluation.engine import Detection, GroundTruth
from insights import label_error_scan
from insights.label_error_scan import label_error_execute, label_error_scan_create
from insights.label_errors import Calibration, calibrate, item_candidates
from insights.models import ItemUncertainty, LabelErrorCandidate, LabelErrorScan
from insights.uncertainty import item_scores, prediction_uncertainty, uncertainty_start
from tests.api_helpers import add_items, box, error_paths, url
from tests.query_dataset import matching
from tests.ui_factories import evaluated

CAR = (100.0, 100.0, 60.0, 40.0)


def _world_calibration() -> Calibration:
    """A model that finds every car exactly, confidently, and says little else."""
    seen = []
    for i in range(200):
        gts = [GroundTruth(i, i, "car", CAR)]
        dets = [Detection(i, 1000 + i, "car", CAR, 0.9)]
        if i % 4 == 0:
            dets.append(Detection(i, 5000 + i, "truck", (400, 10, 30, 30), 0.1))
        seen.append((gts, dets))
    return calibrate(seen, iou_threshold=0.5, confidence_threshold=0.5)


def _types(found: list[Any]) -> dict[str, Any]:
    return {c.type: c for c in found}


def test_a_confident_other_class_on_a_box_is_a_wrong_label() -> None:
    cal = _world_calibration()
    moved = (CAR[0] + 3, CAR[1], CAR[2], CAR[3])  # IoU 0.9
    found = item_candidates(
        1, [GroundTruth(1, 11, "car", CAR)], [Detection(1, 21, "truck", moved, 0.9)], {}, cal
    )
    wrong = _types(found)["wrong_label"]
    assert (wrong.annotation_id, wrong.prediction_id) == (11, 21)
    assert wrong.evidence["prediction_label"] == "truck"
    assert wrong.evidence["confidence"] == 0.9
    assert wrong.evidence["iou"] == pytest.approx(0.9048, abs=1e-3)
    assert wrong.score > 0.5
    # The same box predicted as its own class is no candidate at all.
    same = item_candidates(
        1, [GroundTruth(1, 11, "car", CAR)], [Detection(1, 21, "car", moved, 0.9)], {21: 11}, cal
    )
    assert same == []


def test_a_box_moved_by_half_its_width_is_a_bad_box() -> None:
    cal = _world_calibration()
    shifted = (CAR[0] + CAR[2] / 2, CAR[1], CAR[2], CAR[3])  # the annotator's box, IoU 1/3
    found = item_candidates(
        1, [GroundTruth(1, 11, "car", shifted)], [Detection(1, 21, "car", CAR, 0.9)], {}, cal
    )
    bad = _types(found)["bad_box"]
    assert (bad.annotation_id, bad.prediction_id) == (11, 21)
    assert bad.evidence["iou"] == pytest.approx(1 / 3, abs=1e-3)
    assert bad.score > 0.2
    # The model's own fit of a well placed box (IoU 0.9 here) is no candidate.
    near = (CAR[0] + 3, CAR[1], CAR[2], CAR[3])
    assert (
        item_candidates(
            1, [GroundTruth(1, 11, "car", near)], [Detection(1, 21, "car", CAR, 0.9)], {21: 11}, cal
        )
        == []
    )
    assert "missing" not in _types(found)  # the prediction is about that box


def test_a_prediction_partly_over_another_class_is_a_missing_annotation() -> None:
    cal = _world_calibration()
    # A car in front of a labelled truck (IoU 0.33 with its box), itself unlabelled.
    truck = GroundTruth(1, 11, "truck", (CAR[0] + CAR[2] / 2, CAR[1], CAR[2], CAR[3]))
    found = item_candidates(1, [truck], [Detection(1, 21, "car", CAR, 0.9)], {}, cal)
    missing = _types(found)["missing"]
    assert (missing.prediction_id, missing.annotation_id) == (21, None)
    assert missing.score > 0.5
    # Over the truck's box by IoU 0.5 or more it is a claim about that box instead.
    on = GroundTruth(1, 11, "truck", (CAR[0] + 3, CAR[1], CAR[2], CAR[3]))
    found = item_candidates(1, [on], [Detection(1, 21, "car", CAR, 0.9)], {}, cal)
    assert "missing" not in _types(found)
    assert "wrong_label" in _types(found)
    # Over a box of its own class by IoU 0.2 or more it is about that box (bad_box).
    car = GroundTruth(1, 11, "car", (CAR[0] + CAR[2] / 2, CAR[1], CAR[2], CAR[3]))
    found = item_candidates(1, [car], [Detection(1, 21, "car", CAR, 0.9)], {}, cal)
    assert "missing" not in _types(found)


def test_a_confident_prediction_on_nothing_is_a_missing_annotation() -> None:
    cal = _world_calibration()
    found = item_candidates(1, [], [Detection(1, 21, "car", CAR, 0.9)], {}, cal)
    assert [(c.type, c.prediction_id, c.annotation_id) for c in found] == [("missing", 21, None)]
    assert found[0].score > 0.5
    # A low-confidence one (what this model's false alarms look like) scores low, or below
    # MIN_SCORE: not kept.
    weak = item_candidates(1, [], [Detection(1, 21, "truck", CAR, 0.1)], {}, cal)
    assert all(c.score < 0.05 for c in weak)


def test_a_box_nothing_supports_in_a_class_the_model_always_finds_is_spurious() -> None:
    cal = _world_calibration()
    found = item_candidates(1, [GroundTruth(1, 11, "car", CAR)], [], {}, cal)
    spurious = _types(found)["spurious"]
    assert spurious.annotation_id == 11 and spurious.evidence["recall"] == 1.0
    assert spurious.score > 0.9
    # In a class the sample never saw, a miss says nothing.
    assert item_candidates(1, [GroundTruth(1, 11, "bus", CAR)], [], {}, cal) == []


def test_the_calibration_survives_a_resume() -> None:
    cal = _world_calibration()
    again = Calibration.from_state(cal.to_state())
    args = (1, [GroundTruth(1, 11, "car", CAR)], [Detection(1, 21, "truck", CAR, 0.7)], {})
    assert item_candidates(*args, cal) == item_candidates(*args, again)


def test_uncertainty_from_confidence_and_from_class_scores() -> None:
    sure = prediction_uncertainty(0.99)
    unsure = prediction_uncertainty(0.5)
    assert unsure.entropy == pytest.approx(math.log(2))
    assert unsure.margin == pytest.approx(0.0) and sure.margin == pytest.approx(0.98)
    assert sure.least_confidence == pytest.approx(0.01)
    scored = prediction_uncertainty(0.6, {"car": 0.6, "truck": 0.3, "bus": 0.1})
    assert scored.margin == pytest.approx(0.3)
    assert scored.entropy == pytest.approx(-sum(p * math.log(p) for p in (0.6, 0.3, 0.1)))
    item = item_scores(7, [(0.99, None), (0.5, None), (0.3, None)])
    assert item is not None
    assert (item.predictions, item.low_confidence) == (3, 1)
    assert item.margin == pytest.approx(0.0) and item.entropy_max == pytest.approx(math.log(2))
    assert item_scores(7, []) is None


# --------------------------------------------------------------- through the database


def label_world(dataset: Dataset, clean: int = 30) -> dict[str, int]:
    """`clean` items where the model finds one car exactly, and four planted errors:
    wrong (a car labelled bus), moved (a box moved by half its width), missing (a car with
    no ground truth), spurious (a box with nothing there)."""

    def pred(*args: float, **extra: Any) -> dict[str, Any]:
        return box(*args, model="yolo", **extra)

    rows = [
        {
            "reference_id": "wrong",
            "annotations": [box(100, 100, 60, 40, label="bus")],
            "predictions": [pred(102, 100, 60, 40, confidence=0.9)],
        },
        {
            "reference_id": "moved",
            "annotations": [box(130, 100, 60, 40)],
            "predictions": [pred(100, 100, 60, 40, confidence=0.9)],
        },
        {
            "reference_id": "missing",
            "annotations": [],
            "predictions": [pred(100, 100, 60, 40, confidence=0.9)],
        },
        {"reference_id": "spurious", "annotations": [box(100, 100, 60, 40)], "predictions": []},
    ]
    rows += [
        {
            "reference_id": f"clean-{i:02d}",
            "annotations": [box(100, 100, 60, 40)],
            "predictions": [pred(100, 100, 60, 40, confidence=0.9)],
        }
        for i in range(clean)
    ]
    return add_items(dataset, *rows)


def scanned(dataset: Dataset, user: User) -> LabelErrorScan:
    run = evaluated(dataset, user, "base")
    scan = label_error_scan_create(dataset=dataset, user=user, run_id=run.pk)
    assert scan.job_id is not None
    job = job_run(job_id=scan.job_id)
    assert job is not None and job.status == JobStatus.SUCCEEDED, job and job.message
    scan.refresh_from_db()
    return scan


def best(scan: LabelErrorScan) -> dict[str, tuple[str, float]]:
    """Each item's best candidate: (type, score)."""
    out: dict[str, tuple[str, float]] = {}
    for c in LabelErrorCandidate.objects.filter(scan=scan).select_related("item"):
        ref = c.item.reference_id
        if ref not in out or c.score > out[ref][1]:
            out[ref] = (c.type, c.score)
    return out


@pytest.mark.django_db
def test_the_job_finds_each_planted_error_first(dataset: Dataset, alice: User) -> None:
    label_world(dataset)
    scan = scanned(dataset, alice)
    found = best(scan)
    assert found["wrong"][0] == "wrong_label"
    assert found["moved"][0] == "bad_box"
    assert found["missing"][0] == "missing"
    assert found["spurious"][0] == "spurious"
    ranked = sorted(found, key=lambda ref: -found[ref][1])
    assert set(ranked[:4]) == {"wrong", "moved", "missing", "spurious"}, found
    assert scan.counts == {"wrong_label": 1, "bad_box": 1, "missing": 1, "spurious": 1}


@pytest.mark.django_db
def test_an_interrupted_job_resumes_without_duplicates(
    dataset: Dataset, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    label_world(dataset)
    whole = best(scanned(dataset, alice))
    run = LabelErrorScan.objects.get().run
    scan = label_error_scan_create(dataset=dataset, user=alice, run_id=run.pk, enqueue=False)
    Job.objects.filter(pk=scan.job_id).update(status=JobStatus.RUNNING)
    monkeypatch.setattr("evaluation.scope.CHUNK_ITEMS", 5)
    calls: list[int] = []
    real = label_error_scan.item_candidates

    def failing(item_id: int, *args: Any) -> Any:
        calls.append(item_id)
        if len(calls) == 12:  # in the third chunk: two have committed
            raise RuntimeError("the worker died")
        return real(item_id, *args)

    monkeypatch.setattr(label_error_scan, "item_candidates", failing)
    job = Job.objects.get(pk=scan.job_id)
    with pytest.raises(RuntimeError):
        label_error_execute(JobContext(job))
    job.refresh_from_db()
    assert job.progress_done == 10
    assert LabelErrorCandidate.objects.filter(scan=scan).count() == 4  # the first chunk's
    monkeypatch.setattr(label_error_scan, "item_candidates", real)
    label_error_execute(JobContext(job))
    again = LabelErrorCandidate.objects.filter(scan=scan)
    assert again.count() == LabelErrorCandidate.objects.exclude(scan=scan).count()
    assert best(scan) == whole


@pytest.mark.django_db
def test_query_fields_read_the_newest_scan(dataset: Dataset, alice: User) -> None:
    label_world(dataset, clean=20)
    with pytest.raises(QueryError, match="no label-error candidates yet"):
        validate_query("label_error > 0.5", dataset=dataset)
    scan = scanned(dataset, alice)
    found = best(scan)
    planted = ("wrong", "moved", "missing", "spurious")
    t = round(min(found[ref][1] for ref in planted) / 2, 4)
    strong = sorted(ref for ref, (_, score) in found.items() if score > t)
    assert set(planted) <= set(strong)
    assert matching(dataset, f"label_error > {t}") == strong
    assert matching(dataset, f"label_error.wrong_label > {t}") == ["wrong"]
    assert matching(dataset, f"label_error.bad_box >= {t}") == ["moved"]
    everything = sorted(Item.objects.filter(dataset=dataset).values_list("reference_id", flat=True))
    assert matching(dataset, f"label_error <= {t}") == sorted(set(everything) - set(strong))
    for text, fragment in [
        ("label_error.typo > 0.5", "Expected label_error or label_error.<type>"),
        ("label_error = 0.5", "compare it with <, <=, > or >="),
        ('label_error > "high"', "compare it with a number"),
    ]:
        with pytest.raises(QueryError, match=fragment.replace(".", r"\.").replace("<t", "<t")):
            validate_query(text, dataset=dataset)


@pytest.mark.django_db
def test_uncertainty_job_and_query_fields(dataset: Dataset, alice: User) -> None:
    add_items(
        dataset,
        {
            "reference_id": "sure",
            "predictions": [box(model="yolo", confidence=0.99)],
        },
        {
            "reference_id": "unsure",
            "predictions": [
                box(model="yolo", confidence=0.5),
                box(50, 50, model="yolo", confidence=0.2),
            ],
        },
        {"reference_id": "nothing"},
    )
    model = Model.objects.get(dataset=dataset, name="yolo")
    job = uncertainty_start(dataset=dataset, user=alice, model_id=model.pk)
    done = job_run(job_id=job.pk)
    assert done is not None and done.status == JobStatus.SUCCEEDED, done and done.message
    assert ItemUncertainty.objects.filter(model=model).count() == 2
    assert matching(dataset, "uncertainty[yolo].margin < 0.1") == ["unsure"]
    assert matching(dataset, "uncertainty[yolo].entropy > 0.5") == ["unsure"]
    assert matching(dataset, "uncertainty[yolo].low_confidence >= 1") == ["unsure"]
    assert matching(dataset, "uncertainty[yolo].least_confidence < 0.05") == ["sure"]
    with pytest.raises(QueryError, match=r"No model named 'yolp'.*Did you mean 'yolo'"):
        validate_query("uncertainty[yolp].margin < 0.1", dataset=dataset)
    with pytest.raises(QueryError, match="Expected uncertainty"):
        validate_query("uncertainty[yolo].nope < 0.1", dataset=dataset)


@pytest.mark.django_db
def test_api_permissions_and_lists(
    dataset: Dataset,
    alice: User,
    bob: User,
    victor: User,
    charlie: User,
    client_for: Callable[[User | None], APIClient],
) -> None:
    label_world(dataset, clean=20)
    run = evaluated(dataset, alice, "base")
    viewer, curator, stranger = client_for(victor), client_for(bob), client_for(charlie)
    assert viewer.get(url(dataset, "label-errors")).status_code == 404  # no scan yet
    assert viewer.post(url(dataset, "label-errors/scans"), {"run": run.pk}).status_code == 403
    assert stranger.post(url(dataset, "label-errors/scans"), {"run": run.pk}).status_code == 404
    bad = curator.post(url(dataset, "label-errors/scans"), {"run": run.pk + 999}, format="json")
    assert error_paths(bad) == ["run"]
    started = curator.post(url(dataset, "label-errors/scans"), {"run": run.pk}, format="json")
    assert started.status_code == 202, started.content
    done = job_run(job_id=started.json()["job"])
    assert done is not None and done.status == JobStatus.SUCCEEDED
    listed = viewer.get(url(dataset, "label-errors"), {"type": "wrong_label"})
    assert listed.status_code == 200
    body = listed.json()
    assert body["neighbours"]["enabled"] is False
    assert [r["reference_id"] for r in body["results"]] == ["wrong"]
    assert body["results"][0]["evidence"]["prediction_label"] == "car"
    assert body["results"][0]["item_url"].startswith(f"/datasets/{dataset.pk}/items/")
    assert stranger.get(url(dataset, "label-errors")).status_code == 404
    wrong_type = viewer.get(url(dataset, "label-errors"), {"type": "nope"})
    assert wrong_type.status_code == 400
    assert [s["id"] for s in viewer.get(url(dataset, "label-errors/scans")).json()] == [
        started.json()["id"]
    ]
    model = Model.objects.get(dataset=dataset, name="yolo")
    assert viewer.post(url(dataset, "uncertainty"), {"model": model.pk}).status_code == 403
    job = curator.post(url(dataset, "uncertainty"), {"model": model.pk}, format="json")
    assert job.status_code == 202
    job_run(job_id=job.json()["job"])
    rows = viewer.get(url(dataset, "uncertainty"), {"model": model.pk, "sort": "margin"})
    assert rows.status_code == 200 and len(rows.json()) == 23  # items with predictions
    assert stranger.get(url(dataset, "uncertainty"), {"model": model.pk}).status_code == 404


@pytest.mark.django_db
def test_neighbour_disagreement_says_why_it_is_off(dataset: Dataset) -> None:
    from insights.label_error_selectors import neighbours_status
    from tests.embedding_factories import custom_model

    assert "no embeddings" in neighbours_status(dataset=dataset)["reason"]
    model = custom_model(dataset, 8)
    on = neighbours_status(dataset=dataset)
    assert on["enabled"] is True and "nearest items under constructed" in on["reason"]
    model.random_weights = True
    model.save()
    off = neighbours_status(dataset=dataset)
    assert off["enabled"] is False and "random weights" in off["reason"]


@pytest.mark.django_db
def test_an_item_labelled_unlike_its_neighbours_is_a_candidate(
    dataset: Dataset, alice: User
) -> None:
    """Two tight clusters of items, cats and dogs; one dog among the cats."""
    import numpy as np

    from curation.models import Annotation
    from tests.embedding_factories import custom_model, items_with_vectors

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, 16))
    vectors = np.concatenate(
        [
            centres[0] + 0.05 * rng.normal(size=(12, 16)),
            centres[1] + 0.05 * rng.normal(size=(12, 16)),
        ]
    ).astype(np.float32)
    model = custom_model(dataset, 16)
    items = items_with_vectors(dataset, model, vectors)
    for k, item in enumerate(items):
        label = "cat" if k < 12 else "dog"
        if k == 3:
            label = "dog"
        Annotation.objects.create(
            dataset=dataset,
            item=item,
            annotation_id=f"a{k}",
            kind="box",
            label=label,
            geometry={"x": 1, "y": 1, "width": 10, "height": 10},
        )
    Model.objects.create(dataset=dataset, name="yolo")
    scan = scanned(dataset, alice)
    rows = list(
        LabelErrorCandidate.objects.filter(scan=scan, type="neighbour").order_by("-score", "id")
    )
    assert rows and rows[0].item_id == items[3].pk, [(r.item_id, r.score) for r in rows]
    assert rows[0].evidence["label"] == "dog" and rows[0].evidence["neighbours_with_label"] < 0.1
    assert items[3].pk not in rows[0].evidence["neighbours"]
    assert all(r.score < rows[0].score for r in rows[1:])
    assert scan.calibration["neighbours"].startswith("on:")


@pytest.mark.django_db
def test_neighbour_disagreement_is_off_past_its_cap(
    dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    from insights.label_error_selectors import neighbours_status
    from tests.embedding_factories import custom_model

    custom_model(dataset, 8)
    add_items(dataset, {"reference_id": "a"}, {"reference_id": "b"})
    monkeypatch.setattr("insights.neighbours.NEIGHBOUR_MAX_ITEMS", 2)
    assert neighbours_status(dataset=dataset)["enabled"] is True
    add_items(dataset, {"reference_id": "c"})
    off = neighbours_status(dataset=dataset)
    assert off["enabled"] is False and "more than 2 items" in off["reason"]


@pytest.mark.django_db
def test_label_error_and_uncertainty_sort_the_item_list(
    dataset: Dataset, alice: User, client_for: Any
) -> None:
    label_world(dataset, clean=6)
    scan = scanned(dataset, alice)
    found = best(scan)
    api = client_for(alice)
    url = f"/api/v1/datasets/{dataset.pk}/items"
    body = api.get(url, {"sort": "label_error", "order": "desc", "limit": 100}).json()
    rows = [(r["reference_id"], r["sort_value"]) for r in body["results"]]
    # Each item's value is its best candidate's score (0 without one), highest first.
    assert [v for _, v in rows] == sorted((v for _, v in rows), reverse=True)
    assert {ref: v for ref, v in rows} == {
        ref: pytest.approx(found[ref][1]) if ref in found else 0.0 for ref, _ in rows
    }
    wrong = api.get(url, {"sort": "label_error.wrong_label", "order": "desc", "limit": 1}).json()
    assert [r["reference_id"] for r in wrong["results"]] == ["wrong"]
    model = Model.objects.get(dataset=dataset, name="yolo")
    assert job_run(job_id=uncertainty_start(dataset=dataset, user=alice, model_id=model.pk).pk)
    unsure = api.get(url, {"sort": "uncertainty[yolo].least_confidence", "limit": 100}).json()
    values = [r["sort_value"] for r in unsure["results"]]
    known = [v for v in values if v is not None]
    assert known == sorted(known) and values[: len(known)] == known  # missing ones last
    refused = api.get(url, {"sort": "label_error.typo"})
    assert refused.status_code == 400
    assert [f["path"] for f in refused.json()["error"]["fields"]] == ["sort"]


@pytest.mark.django_db
def test_label_error_and_uncertainty_are_grid_facets(dataset: Dataset, alice: User) -> None:
    from django.test import Client

    from tests.ui_factories import check_score_facet, facet_panel

    label_world(dataset, clean=6)
    client = Client()
    client.force_login(alice)
    panel = facet_panel(client, client.get(f"/datasets/{dataset.pk}/"))
    assert 'data-score-facet="label_error"' not in panel  # nothing scanned yet
    scan = scanned(dataset, alice)
    model = Model.objects.get(dataset=dataset, name="yolo")
    assert job_run(job_id=uncertainty_start(dataset=dataset, user=alice, model_id=model.pk).pk)
    ids = dict(Item.objects.filter(dataset=dataset).values_list("reference_id", "pk"))
    found = best(scan)
    check_score_facet(
        client,
        dataset,
        "label_error",
        {pk: found[ref][1] if ref in found else 0.0 for ref, pk in ids.items()},
    )
    candidates = LabelErrorCandidate.objects.filter(scan=scan, type="wrong_label")
    wrong = {c.item_id: c.score for c in candidates}
    check_score_facet(
        client, dataset, "label_error.wrong_label", {pk: wrong.get(pk, 0.0) for pk in ids.values()}
    )
    rows = ItemUncertainty.objects.filter(model=model)
    for field in ("least_confidence", "entropy_max", "low_confidence"):
        values = {pk: None for pk in ids.values()} | dict(rows.values_list("item_id", field))
        check_score_facet(client, dataset, f'uncertainty["yolo"].{field}', values)
