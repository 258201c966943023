"""The scenario suites' pages: viewers read, curators create and change suites and tests
and run them, strangers get 404; a run's results show pass or fail per test, and the
suite's history keeps every evaluation."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from curation.jobs import job_run
from curation.models import Dataset, JobStatus, Model
from evaluation.models import Comparison, ScenarioEvaluation, ScenarioSuite, ScenarioTest
from tests.api_helpers import evaluation_world
from tests.ui_factories import evaluated


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def suite(dataset: Dataset, alice: User) -> ScenarioSuite:
    evaluation_world(dataset)  # car AP 1, person AP 1, bus AP 0 for model yolo
    return ScenarioSuite.objects.create(dataset=dataset, name="gates")


def base(dataset: Dataset) -> str:
    return f"/datasets/{dataset.pk}/evaluations/suites/"


def test_viewers_read_curators_change_strangers_get_404(
    dataset: Dataset, suite: ScenarioSuite, bob: User, victor: User, charlie: User
) -> None:
    page = f"{base(dataset)}{suite.pk}/"
    viewer, stranger = logged_in(victor), logged_in(charlie)
    listing = viewer.get(base(dataset)).content.decode()
    assert f'href="{page}"' in listing and 'data-testid="suite-create"' not in listing
    body = viewer.get(page).content.decode()
    assert 'data-testid="suite-name">gates<' in body and 'data-testid="suite-run"' not in body
    posts = [
        (f"{base(dataset)}new", {"name": "mine"}),
        (f"{page}edit", {"name": "renamed"}),
        (f"{page}tests/new", {"name": "t", "metric": "map", "comparison": "at_least"}),
        (f"{page}run", {"model": Model.objects.get(name="yolo").pk}),
        (f"{page}delete", {}),
    ]
    for path, data in posts:
        assert viewer.post(path, data).status_code == 403, path
        assert stranger.post(path, data).status_code == 404, path
    assert stranger.get(base(dataset)).status_code == 404
    assert stranger.get(page).status_code == 404
    assert ScenarioSuite.objects.get().name == "gates" and not ScenarioTest.objects.exists()
    # A suite of another dataset is not found under this one.
    other = Dataset.objects.create(name="other", owner=charlie)
    foreign = ScenarioSuite.objects.create(dataset=other, name="theirs")
    assert logged_in(bob).get(f"{base(dataset)}{foreign.pk}/").status_code == 404


def test_a_curator_builds_a_suite_and_runs_it(
    dataset: Dataset, suite: ScenarioSuite, alice: User, bob: User, victor: User
) -> None:
    curator = logged_in(bob)
    created = curator.post(f"{base(dataset)}new", {"name": "release", "description": "gates"})
    new = ScenarioSuite.objects.get(name="release")
    page = f"{base(dataset)}{new.pk}/"
    assert created.status_code == 302 and created["Location"] == page
    baseline = evaluated(dataset, alice, "baseline")
    for data in (
        {"name": "cars", "metric": "ap.car", "comparison": "at_least", "threshold": "0.9"},
        {"name": "buses", "metric": "ap.bus", "comparison": "at_least", "threshold": "0.5"},
        {
            "name": "no worse",
            "metric": "map",
            "comparison": "baseline",
            "baseline": str(baseline.pk),
            "delta": "0.01",
            "threshold": "0.3",  # ignored: the comparison is the baseline's
        },
    ):
        assert curator.post(f"{page}tests/new", data).status_code == 302
    tests = {t.name: t for t in ScenarioTest.objects.filter(suite=new)}
    assert tests["no worse"].comparison == Comparison.BASELINE
    assert tests["no worse"].baseline_id == baseline.pk and tests["no worse"].threshold is None
    # A bad test is refused, saying which field.
    bad = curator.post(
        f"{page}tests/new", {"name": "x", "metric": "nope", "comparison": "at_least"}, follow=True
    )
    assert "metric" in bad.content.decode() and not ScenarioTest.objects.filter(name="x").exists()
    # Edit one: buses needs 0 now.
    edit = {"name": "buses", "metric": "ap.bus", "comparison": "at_least", "threshold": "0"}
    assert curator.post(f"{page}tests/{tests['buses'].pk}/edit", edit).status_code == 302
    assert ScenarioTest.objects.get(pk=tests["buses"].pk).threshold == 0.0

    model = Model.objects.get(name="yolo")
    assert curator.post(f"{page}run", {"model": model.pk}).status_code == 302
    evaluation = ScenarioEvaluation.objects.get(suite=new)
    assert evaluation.job is not None and evaluation.job.created_by == bob
    job = job_run(job_id=evaluation.job.pk)
    assert job is not None and job.status == JobStatus.SUCCEEDED

    body = logged_in(victor).get(page).content.decode()
    latest = dict(
        re.findall(r'<tr data-test="\d+">\s*<td>([^<]+)</td>.*?data-passed="(\w+)"', body, re.S)
    )
    assert latest == {"cars": "true", "buses": "true", "no worse": "true"}
    history = re.findall(r'data-testid="history-cell" data-passed="(\w+)"', body)
    assert history == ["true", "true", "true"]
    assert "3 / 3" in body

    # Stricter now: buses fail on the second evaluation; the history keeps both.
    edit["threshold"] = "0.5"
    curator.post(f"{page}tests/{tests['buses'].pk}/edit", edit)
    curator.post(f"{page}run", {"model": model.pk})
    second = ScenarioEvaluation.objects.filter(suite=new).latest("id")
    assert second.job is not None
    job_run(job_id=second.job.pk)
    body = logged_in(victor).get(page).content.decode()
    rows = re.findall(r'<tr data-evaluation="(\d+)">(.*?)</tr>', body, re.S)
    assert [int(pk) for pk, _ in rows] == [second.pk, evaluation.pk]  # newest first
    cells = [re.findall(r'data-passed="(\w+)"', row) for _, row in rows]
    assert cells == [["true", "false", "true"], ["true", "true", "true"]]

    # Delete a test, rename and delete the suite.
    assert curator.post(f"{page}tests/{tests['cars'].pk}/delete").status_code == 302
    assert not ScenarioTest.objects.filter(pk=tests["cars"].pk).exists()
    curator.post(f"{page}edit", {"name": "release 2", "description": ""})
    assert ScenarioSuite.objects.get(pk=new.pk).name == "release 2"
    taken = curator.post(f"{page}edit", {"name": "gates"}, follow=True)
    assert "already exists" in taken.content.decode()
    assert curator.post(f"{page}delete").status_code == 302
    assert not ScenarioSuite.objects.filter(pk=new.pk).exists()


def test_the_evaluations_tab_links_to_the_suites(
    dataset: Dataset, suite: ScenarioSuite, victor: User
) -> None:
    body = logged_in(victor).get(f"/datasets/{dataset.pk}/evaluations/").content.decode()
    assert f'href="{base(dataset)}" data-testid="suites-link"' in body


def test_running_a_suite_counts_in_the_evaluation_jobs_limit(
    dataset: Dataset, suite: ScenarioSuite, bob: User, monkeypatch: Any
) -> None:
    from evaluation import services

    monkeypatch.setattr(services, "MAX_ACTIVE_EVALUATION_JOBS", 1)
    ScenarioTest.objects.create(
        suite=suite, name="t", metric="map", comparison=Comparison.AT_LEAST, threshold=0.1
    )
    curator = logged_in(bob)
    model = Model.objects.get(name="yolo").pk
    page = f"{base(dataset)}{suite.pk}/"
    curator.post(f"{page}run", {"model": model})
    refused = curator.post(f"{page}run", {"model": model}, follow=True).content.decode()
    assert "evaluation jobs queued or running (at most 1)" in refused
    assert ScenarioEvaluation.objects.filter(suite=suite).count() == 1
