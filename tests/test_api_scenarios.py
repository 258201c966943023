"""Scenario tests over the API: suites and their tests, evaluating a suite against a model
(one job running each test's evaluation in turn), the kept history, every bad request a
400 naming its field, and who may do what."""

from __future__ import annotations

from typing import Any

import pytest

from curation.jobs import job_run
from curation.models import Dataset, Job, JobStatus, Model, Slice
from evaluation.models import EvaluationRun, ScenarioResult
from evaluation.scenarios import SCENARIO_JOB, metric_value
from tests.api_helpers import add_items, box, error_paths, evaluation_world, url


def _suite(client: Any, dataset: Dataset, name: str = "gates") -> dict[str, Any]:
    response = client.post(url(dataset, "scenario-suites"), {"name": name}, format="json")
    assert response.status_code == 201, response.json()
    return dict(response.json())


def _test(client: Any, dataset: Dataset, suite: dict[str, Any], **body: Any) -> Any:
    return client.post(url(dataset, f"scenario-suites/{suite['id']}/tests"), body, format="json")


def _evaluate(client: Any, dataset: Dataset, suite: dict[str, Any], model: Model) -> Any:
    return client.post(
        url(dataset, f"scenario-suites/{suite['id']}/evaluations"),
        {"model": model.pk},
        format="json",
    )


def _finished(client: Any, dataset: Dataset, suite: dict[str, Any], response: Any) -> Any:
    assert response.status_code == 202, response.json()
    job = job_run(job_id=response.json()["job"])
    assert job is not None and job.status == JobStatus.SUCCEEDED, job and job.message
    path = f"scenario-suites/{suite['id']}/evaluations/{response.json()['id']}"
    return client.get(url(dataset, path)).json()


def test_a_suite_passes_and_fails_test_by_test_and_keeps_its_history(
    dataset: Dataset, bob: Any, victor: Any, client_for: Any
) -> None:
    evaluation_world(dataset)
    model = Model.objects.get(name="yolo")
    night = Slice.objects.create(dataset=dataset, name="b", query='reference_id = "b.jpg"')
    curator = client_for(bob)
    suite = _suite(curator, dataset)
    for body in (
        {"name": "cars", "metric": "ap.car", "threshold": 0.9},
        {"name": "buses", "metric": "ap.bus", "threshold": 0.5},
        {"name": "people on b", "metric": "map", "threshold": 0.99, "slice": night.pk},
    ):
        assert _test(curator, dataset, suite, **body).status_code == 201

    first = _finished(curator, dataset, suite, _evaluate(curator, dataset, suite, model))
    assert first["status"] == "succeeded" and first["passed"] is False
    outcome = {r["test_name"]: (r["passed"], r["value"], r["required"]) for r in first["results"]}
    assert outcome["cars"][0] is True and outcome["cars"][2] == 0.9
    assert outcome["buses"] == (False, 0.0, 0.5)
    assert outcome["people on b"][0] is True
    runs = {r["test_name"]: EvaluationRun.objects.get(pk=r["run"]) for r in first["results"]}
    assert (
        runs["people on b"].scope["slice_name"] == "b" and runs["people on b"].counts["items"] == 1
    )
    assert runs["cars"].scope == {"kind": "dataset"}
    # The runs were run by the suite's job, in process: no evaluate job waits in a queue.
    assert not Job.objects.filter(status=JobStatus.QUEUED).exists()

    # The model learns buses; the second evaluation passes, and the first stays.
    add_items(
        dataset,
        {
            "reference_id": "a.jpg",
            "predictions": [
                box(100, 100, 40, 40, id="p9", label="bus", model="yolo", confidence=0.8)
            ],
        },
    )
    second = _finished(curator, dataset, suite, _evaluate(curator, dataset, suite, model))
    assert second["passed"] is True and all(r["passed"] for r in second["results"])

    history = client_for(victor).get(url(dataset, f"scenario-suites/{suite['id']}/evaluations"))
    listed = history.json()["results"]
    assert [e["id"] for e in listed] == [second["id"], first["id"]]
    assert [e["passed"] for e in listed] == [True, False]
    assert [r["value"] for r in listed[1]["results"] if r["test_name"] == "buses"] == [0.0]


def test_a_test_against_a_baseline_run_allows_delta(
    dataset: Dataset, bob: Any, client_for: Any
) -> None:
    evaluation_world(dataset)
    model = Model.objects.get(name="yolo")
    curator = client_for(bob)
    started = curator.post(
        url(dataset, "evaluations"), {"name": "base", "model": model.pk}, format="json"
    ).json()
    job_run(job_id=started["job"])
    baseline = EvaluationRun.objects.get(pk=started["id"])
    base_map = baseline.metrics["map"]
    # A worse model: the person is no longer found.
    worse = Model.objects.create(dataset=dataset, name="worse")
    add_items(
        dataset,
        {
            "reference_id": "a.jpg",
            "predictions": [box(0, 0, 50, 50, id="w1", model="worse", confidence=0.9)],
        },
    )
    suite = _suite(curator, dataset)
    for name, delta in (("strict", 0.0), ("lenient", 0.5)):
        created = _test(
            curator, dataset, suite, name=name, metric="map", baseline=baseline.pk, delta=delta
        )
        assert created.status_code == 201 and created.json()["comparison"] == "baseline"
    result = _finished(curator, dataset, suite, _evaluate(curator, dataset, suite, worse))
    by_name = {r["test_name"]: r for r in result["results"]}
    assert by_name["strict"]["passed"] is False and by_name["lenient"]["passed"] is True
    assert by_name["strict"]["required"] == pytest.approx(base_map)
    assert by_name["lenient"]["required"] == pytest.approx(base_map - 0.5)
    assert by_name["strict"]["value"] < base_map
    # The baseline itself passes the strict test.
    same = _finished(curator, dataset, suite, _evaluate(curator, dataset, suite, model))
    assert same["passed"] is True


def test_bad_tests_are_a_400_naming_the_field(
    dataset: Dataset, alice: Any, client_for: Any
) -> None:
    evaluation_world(dataset)
    other = Dataset.objects.create(name="other", owner=alice)
    foreign_model = Model.objects.create(dataset=other, name="theirs")
    foreign_run = EvaluationRun.objects.create(dataset=other, model=foreign_model, name="r")
    client = client_for(alice)
    suite = _suite(client, dataset)
    cases = [
        ({"name": "t", "metric": "mAP", "threshold": 0.5}, "metric"),
        ({"name": "t", "metric": "ap.", "threshold": 0.5}, "metric"),
        ({"name": "t", "metric": "map", "threshold": "high"}, "threshold"),
        ({"name": "t", "metric": "map"}, "threshold"),
        ({"name": "t", "metric": "map", "baseline": foreign_run.pk}, "baseline"),
        ({"name": "t", "metric": "map", "threshold": 0.5, "baseline": foreign_run.pk}, "threshold"),
        ({"name": "t", "metric": "map", "threshold": 0.5, "slice": 999999}, "slice"),
        ({"name": "t", "metric": "map", "threshold": 0.5, "options": {"x": 1}}, "options.x"),
        ({"name": " ", "metric": "map", "threshold": 0.5}, "name"),
    ]
    for body, field in cases:
        response = _test(client, dataset, suite, **body)
        assert response.status_code == 400, body
        assert error_paths(response) == [field], (body, response.json())
    assert (
        _test(client, dataset, suite, name="t", metric="f1.car", threshold=0.5).status_code == 201
    )
    assert _test(client, dataset, suite, name="t", metric="map", threshold=0.5).status_code == 409
    assert (
        client.post(url(dataset, "scenario-suites"), {"name": "gates"}, format="json").status_code
        == 409
    )
    bad_model = _evaluate(client, dataset, suite, foreign_model)
    assert bad_model.status_code == 400 and error_paths(bad_model) == ["model"]
    empty = _suite(client, dataset, "empty")
    nothing = _evaluate(client, dataset, empty, Model.objects.get(name="yolo"))
    assert nothing.status_code == 400 and error_paths(nothing) == ["suite"]


def test_strangers_see_nothing_and_viewers_only_read(
    dataset: Dataset, bob: Any, victor: Any, charlie: Any, client_for: Any
) -> None:
    evaluation_world(dataset)
    model = Model.objects.get(name="yolo")
    suite = _suite(client_for(bob), dataset)
    assert (
        _test(client_for(bob), dataset, suite, name="t", metric="map", threshold=0).status_code
        == 201
    )
    viewer, stranger = client_for(victor), client_for(charlie)
    base = f"scenario-suites/{suite['id']}"
    assert (
        viewer.get(url(dataset, "scenario-suites")).json()["results"][0]["tests"][0]["name"] == "t"
    )
    assert viewer.get(url(dataset, base)).status_code == 200
    assert viewer.get(url(dataset, f"{base}/evaluations")).status_code == 200
    assert (
        viewer.post(url(dataset, "scenario-suites"), {"name": "x"}, format="json").status_code
        == 403
    )
    assert _test(viewer, dataset, suite, name="u", metric="map", threshold=0).status_code == 403
    assert _evaluate(viewer, dataset, suite, model).status_code == 403
    assert viewer.delete(url(dataset, base)).status_code == 403
    for path in ("scenario-suites", base, f"{base}/evaluations"):
        assert stranger.get(url(dataset, path)).status_code == 404
    assert _evaluate(stranger, dataset, suite, model).status_code == 404
    assert stranger.delete(url(dataset, base)).status_code == 404


def test_a_test_whose_slice_is_gone_fails_saying_why_and_deleting_a_test_keeps_history(
    dataset: Dataset, bob: Any, client_for: Any
) -> None:
    evaluation_world(dataset)
    model = Model.objects.get(name="yolo")
    gone = Slice.objects.create(dataset=dataset, name="gone", query='reference_id = "a.jpg"')
    client = client_for(bob)
    suite = _suite(client, dataset)
    test = _test(client, dataset, suite, name="t", metric="map", threshold=0, slice=gone.pk).json()
    gone.delete()
    result = _finished(client, dataset, suite, _evaluate(client, dataset, suite, model))
    assert result["passed"] is False
    assert "could not start" in result["results"][0]["message"]
    assert (
        client.delete(url(dataset, f"scenario-suites/{suite['id']}/tests/{test['id']}")).status_code
        == 204
    )
    kept = ScenarioResult.objects.get()
    assert (kept.test_id, kept.test_name, kept.passed) == (None, "t", False)


def test_metric_values_are_read_from_a_runs_metrics() -> None:
    metrics = {
        "map": 0.5,
        "map_small": -1,
        "operating_point": {"precision": 0.75, "recall": None},
        "per_class": [{"label": "car", "ap": 0.25, "f1": 0.5}],
    }
    assert metric_value(metrics, "map") == (0.5, "")
    assert metric_value(metrics, "precision") == (0.75, "")
    assert metric_value(metrics, "ap.car") == (0.25, "")
    assert metric_value(metrics, "f1.car") == (0.5, "")
    assert metric_value(metrics, "map_small")[0] is None
    assert metric_value(metrics, "recall")[0] is None
    assert "no class 'bus'" in metric_value(metrics, "ap.bus")[1]
    assert metric_value({}, "map") == (None, "the run has no metrics")
    assert SCENARIO_JOB == "scenario"


def test_an_interrupted_suite_job_resumes_at_its_test_without_a_second_run(
    dataset: Dataset, bob: Any, client_for: Any
) -> None:
    evaluation_world(dataset)
    model = Model.objects.get(name="yolo")
    client = client_for(bob)
    suite = _suite(client, dataset)
    first = _test(client, dataset, suite, name="a", metric="map", threshold=0).json()
    second = _test(client, dataset, suite, name="b", metric="ap.bus", threshold=0.5).json()
    done = _finished(client, dataset, suite, _evaluate(client, dataset, suite, model))
    runs = {r["test"]: r["run"] for r in done["results"]}
    # As if the worker died after the second test's run was created and run, before its
    # result was recorded: the retry records it from that run and creates no other.
    job = Job.objects.get(kind=SCENARIO_JOB)
    ScenarioResult.objects.filter(test=second["id"]).delete()
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.QUEUED,
        finished=None,
        progress_done=1,
        state={"runs": {str(t): r for t, r in runs.items()}, "done": [first["id"]]},
    )
    assert job_run(job_id=job.pk).status == JobStatus.SUCCEEDED
    assert EvaluationRun.objects.count() == 2
    again = ScenarioResult.objects.get(test=second["id"])
    assert (again.run_id, again.passed, again.value) == (runs[second["id"]], False, 0.0)
    assert ScenarioResult.objects.filter(test=first["id"]).count() == 1


def test_a_query_narrows_a_test_and_a_run_to_the_items_it_matches(
    dataset: Dataset, bob: Any, client_for: Any
) -> None:
    evaluation_world(dataset)
    model = Model.objects.get(name="yolo")
    client = client_for(bob)
    # A run over b.jpg only (the person, found): everything it sees is right.
    started = client.post(
        url(dataset, "evaluations"),
        {"name": "b only", "model": model.pk, "query": 'reference_id = "b.jpg"'},
        format="json",
    )
    assert started.status_code == 202 and started.json()["scope"] == {
        "kind": "dataset",
        "query": 'reference_id = "b.jpg"',
    }
    job_run(job_id=started.json()["job"])
    run = EvaluationRun.objects.get(pk=started.json()["id"])
    assert run.counts == {"items": 1, "ground_truth": 1, "predictions": 1, "matches": 1}
    bad = client.post(
        url(dataset, "evaluations"),
        {"name": "bad", "model": model.pk, "query": "reference_id ="},
        format="json",
    )
    assert bad.status_code == 400 and error_paths(bad) == ["query"]

    suite = _suite(client, dataset)
    created = _test(
        client,
        dataset,
        suite,
        name="a",
        metric="recall",
        threshold=1,
        query='reference_id = "a.jpg"',
    )
    assert (
        created.status_code == 201 and created.json()["scope"]["query"] == 'reference_id = "a.jpg"'
    )
    assert (
        _test(client, dataset, suite, name="x", metric="map", threshold=0, query="(").status_code
        == 400
    )
    done = _finished(client, dataset, suite, _evaluate(client, dataset, suite, model))
    (result,) = done["results"]
    # On a.jpg the car is found and the bus missed: recall 0.5, below 1.
    assert (result["passed"], result["value"]) == (False, 0.5)
    assert EvaluationRun.objects.get(pk=result["run"]).counts["items"] == 1


def test_a_query_narrows_a_versions_frozen_items_and_ground_truth(
    dataset: Dataset, alice: Any, client_for: Any
) -> None:
    from curation.versions import slice_version_create

    evaluation_world(dataset)
    model = Model.objects.get(name="yolo")
    both = Slice.objects.create(dataset=dataset, name="both", query='reference_id != "x"')
    slice_version_create(slice=both, user=alice)
    started = client_for(alice).post(
        url(dataset, "evaluations"),
        {
            "name": "v1 b",
            "model": model.pk,
            "slice": both.pk,
            "version": 1,
            "query": 'reference_id = "b.jpg"',
        },
        format="json",
    )
    assert started.status_code == 202, started.json()
    assert started.json()["scope"]["kind"] == "version"
    job_run(job_id=started.json()["job"])
    run = EvaluationRun.objects.get(pk=started.json()["id"])
    assert run.counts == {"items": 1, "ground_truth": 1, "predictions": 1, "matches": 1}
    assert [c["label"] for c in run.metrics["per_class"]] == ["person"]


def test_the_admin_shows_suites_and_their_evaluations_read_only(
    dataset: Dataset, bob: Any, client_for: Any
) -> None:
    from django.contrib.auth.models import User
    from django.test import Client

    evaluation_world(dataset)
    api = client_for(bob)
    suite = _suite(api, dataset, "shown suite")
    _test(api, dataset, suite, name="shown test", metric="ap.car", threshold=0.5)
    done = _finished(api, dataset, suite, _evaluate(api, dataset, suite, Model.objects.get()))
    root = User.objects.create_superuser("root", "root@example.com", "root-password-1")
    client = Client()
    client.force_login(root)
    listed = client.get("/admin/evaluation/scenariosuite/")
    assert listed.status_code == 200 and b"shown suite" in listed.content
    page = client.get(f"/admin/evaluation/scenariosuite/{suite['id']}/change/")
    assert page.status_code == 200 and b"shown test" in page.content
    result = client.get(f"/admin/evaluation/scenarioevaluation/{done['id']}/change/")
    assert result.status_code == 200 and b"ap.car" in result.content
    assert client.get("/admin/evaluation/scenariosuite/add/").status_code == 403
