"""The Insights page: a tab of every dataset, one section per registered signal, and the
model-failures section's counts with links to exactly the items behind them."""

from __future__ import annotations

import html
import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from curation.models import Dataset, Item
from evaluation.models import EvaluationMatch, EvaluationRun
from tests.ui_factories import evaluated, outcome_world


def page(client: Client, dataset: Dataset) -> str:
    response = client.get(f"/datasets/{dataset.pk}/insights/")
    assert response.status_code == 200
    return str(response.content.decode())


def grid_refs(client: Client, url: str) -> list[str]:
    response = client.get(url)
    assert response.status_code == 200
    return sorted(re.findall(r'data-ref="([^"]+)"', response.content.decode()))


def outcome_refs(run: EvaluationRun, outcome: str) -> list[str]:
    ids = EvaluationMatch.objects.filter(run=run, outcome=outcome).values("item_id")
    return sorted(Item.objects.filter(pk__in=ids).values_list("reference_id", flat=True))


@pytest.mark.django_db
def test_the_tab_leads_to_the_page_and_says_when_no_run_finished(
    dataset: Dataset, alice: User
) -> None:
    client = Client()
    client.force_login(alice)
    grid = client.get(f"/datasets/{dataset.pk}/").content.decode()
    assert f'href="/datasets/{dataset.pk}/insights/"' in grid
    body = page(client, dataset)
    assert 'data-section="failures"' in body
    assert 'data-testid="no-failures"' in body


@pytest.mark.django_db
def test_failures_count_the_newest_run_and_link_to_its_items(
    dataset: Dataset, alice: User, victor: User
) -> None:
    outcome_world(dataset)
    evaluated(dataset, alice, "older run")
    run = evaluated(dataset, alice, "newest run")
    client = Client()
    client.force_login(victor)  # a viewer reads insights
    body = page(client, dataset)
    rows = re.findall(r'<tr data-run="(\d+)">(.*?)</tr>', body, re.S)
    assert [int(pk) for pk, _ in rows] == [run.pk]
    point = run.metrics["operating_point"]
    assert point["fp"] > 0 and point["fn"] > 0
    for outcome in ("fp", "fn"):
        link = re.search(rf'<a href="([^"]+)" data-testid="{outcome}-link">(\d+)</a>', rows[0][1])
        assert link is not None
        assert (
            int(link.group(2)) == EvaluationMatch.objects.filter(run=run, outcome=outcome).count()
        )
        refs = grid_refs(client, html.unescape(link.group(1)))
        assert refs and refs == outcome_refs(run, outcome)


@pytest.mark.django_db
def test_a_stranger_sees_no_insights(dataset: Dataset, charlie: User) -> None:
    client = Client()
    client.force_login(charlie)
    assert client.get(f"/datasets/{dataset.pk}/insights/").status_code == 404


@pytest.mark.django_db
def test_label_error_section_scans_lists_and_saves(
    dataset: Dataset, alice: User, bob: User, victor: User
) -> None:
    from curation.jobs import job_run
    from curation.models import Slice, Tag
    from insights.models import LabelErrorScan
    from tests.test_insights_label_errors import label_world

    label_world(dataset, clean=20)
    run = evaluated(dataset, alice, "base")
    viewer, curator = Client(), Client()
    viewer.force_login(victor)
    curator.force_login(bob)
    body = page(viewer, dataset)
    assert 'data-section="label-errors"' in body and 'data-testid="no-label-errors"' in body
    assert 'data-testid="label-errors-scan"' not in body  # viewers start nothing
    scan_url = f"/datasets/{dataset.pk}/insights/label-errors/scan"
    assert viewer.post(scan_url, {"run": run.pk}).status_code == 403
    assert 'data-testid="label-errors-scan"' in page(curator, dataset)
    response = curator.post(scan_url, {"run": run.pk})
    assert response.status_code == 302
    scan = LabelErrorScan.objects.get()
    assert 'data-testid="label-errors-pending"' in page(curator, dataset)
    assert scan.job_id is not None
    job_run(job_id=scan.job_id)
    job_page = viewer.get(f"/datasets/{dataset.pk}/jobs/{scan.job_id}").content.decode()
    assert f'href="/datasets/{dataset.pk}/insights/#insights-label-errors"' in job_page
    body = page(viewer, dataset)
    wrong = re.search(
        r'<div class="label-error-list" data-type="wrong_label">(.*?)</table>', body, re.S
    )
    assert wrong is not None
    assert re.findall(r'data-ref="([^"]+)"', wrong.group(1)) == ["wrong"]
    assert 'data-box="truth"' in wrong.group(1) and 'data-box="prediction"' in wrong.group(1)
    # The item view with every prediction, the two objects emphasised (the browser test
    # checks the drawing: these items have no image, so no overlay).
    from insights.models import LabelErrorCandidate

    candidate = LabelErrorCandidate.objects.get(scan=scan, type="wrong_label")
    item_link = re.search(r'<a href="([^"]+)">wrong</a>', wrong.group(1))
    assert item_link is not None
    assert html.unescape(item_link.group(1)) == (
        f"/datasets/{dataset.pk}/items/{candidate.item_id}?conf=0"
        f"&focus=a{candidate.annotation_id},p{candidate.prediction_id}"
    )
    grid = re.search(
        r'<a class="small" href="([^"]+)" data-testid="label-errors-grid">', wrong.group(1)
    )
    assert grid is not None
    assert grid_refs(viewer, html.unescape(grid.group(1))) == ["wrong"]
    save_url = f"/datasets/{dataset.pk}/insights/label-errors/save"
    form = {"scan": scan.pk, "type": "bad_box", "limit": 10, "name": "bad boxes"}
    assert viewer.post(save_url, {**form, "as": "slice"}).status_code == 403
    assert curator.post(save_url, {**form, "as": "slice"}).status_code == 302
    saved = Slice.objects.get(dataset=dataset, name="bad boxes")
    assert list(saved.items.values_list("reference_id", flat=True)) == ["moved"]
    assert curator.post(save_url, {**form, "as": "tag", "name": "check"}).status_code == 302
    tag = Tag.objects.get(dataset=dataset, name="check")
    assert list(tag.items.values_list("reference_id", flat=True)) == ["moved"]


@pytest.mark.django_db
def test_uncertainty_section_starts_and_lists(dataset: Dataset, bob: User, victor: User) -> None:
    from curation.jobs import job_run
    from curation.models import Job
    from tests.api_helpers import add_items, box

    add_items(
        dataset,
        {"reference_id": "sure", "predictions": [box(model="yolo", confidence=0.99)]},
        {"reference_id": "unsure", "predictions": [box(model="yolo", confidence=0.55)]},
    )
    viewer, curator = Client(), Client()
    viewer.force_login(victor)
    curator.force_login(bob)
    body = page(viewer, dataset)
    assert 'data-testid="no-uncertainty"' in body and 'data-testid="uncertainty-start"' not in body
    start = f"/datasets/{dataset.pk}/insights/uncertainty/start"
    model_id = re.search(r'<option value="(\d+)">yolo</option>', page(curator, dataset))
    assert model_id is not None
    assert viewer.post(start, {"model": model_id.group(1)}).status_code == 403
    assert curator.post(start, {"model": model_id.group(1)}).status_code == 302
    job_run(job_id=Job.objects.get(kind="uncertainty").pk)
    section = page(viewer, dataset).split('data-section="uncertainty"')[1]
    assert re.findall(r'<tr data-ref="([^"]+)">', section) == ["unsure", "sure"]
    grid = re.search(r'<a class="small" href="([^"]+)" data-testid="uncertainty-grid">', section)
    assert grid is not None
    assert grid_refs(viewer, html.unescape(grid.group(1))) == ["sure", "unsure"]
