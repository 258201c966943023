"""The Insights page: a tab of every dataset, one section per registered signal, and the
model-failures section's counts with links to exactly the items behind them."""

from __future__ import annotations

import html
import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from curation.jobs import job_run
from curation.models import Dataset, Item, Job, JobStatus
from curation.services import tag_add
from embeddings.models import EmbeddingModel
from evaluation.models import EvaluationMatch, EvaluationRun
from insights.uniqueness import scores_job_start
from tests.embedding_factories import (
    custom_model,
    items_with_images,
    items_with_vectors,
    jpeg_bytes,
)
from tests.test_insights_scores import constructed
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


# --------------------------------------------- uniqueness, representativeness, outliers


@pytest.mark.django_db
def test_the_scores_section_links_each_bar_and_picture_to_the_grid(
    dataset: Dataset, alice: User, victor: User
) -> None:
    model = custom_model(dataset, 8)
    items = items_with_vectors(dataset, model, constructed())
    job = scores_job_start(dataset=dataset, user=alice, model=model, neighbors=5)
    assert job_run(job_id=job.pk).status == JobStatus.SUCCEEDED
    client = Client()
    client.force_login(victor)
    body = page(client, dataset)
    assert 'data-section="scores"' in body and 'data-testid="scores-random"' not in body
    assert 'data-testid="scores-start"' not in body  # a viewer computes nothing
    section = body[body.index('data-score="uniqueness"') : body.index('data-score="outlier"')]
    bars = re.findall(r'class="insights-bar" href="([^"]+)".*?<em>(\d+)</em>', section)
    assert len(bars) == 10 and sum(int(n) for _, n in bars) == 41
    for url, count in bars:  # each bar opens the grid on exactly its items
        assert len(grid_refs(client, html.unescape(url))) == int(count)
    top = re.findall(
        r'data-testid="ranked">\s*<a href="[^"]+" title="[^"]+" data-ref="([^"]+)"', section
    )
    assert top == [items[40].reference_id]


@pytest.mark.django_db
def test_a_curator_computes_scores_from_the_page_and_random_weights_are_flagged(
    dataset: Dataset, bob: User
) -> None:
    model = custom_model(dataset, 8)
    items_with_vectors(dataset, model, constructed())
    EmbeddingModel.objects.filter(pk=model.pk).update(random_weights=True)
    client = Client()
    client.force_login(bob)
    body = page(client, dataset)
    assert 'data-testid="no-scores"' in body and 'data-testid="scores-start"' in body
    response = client.post(f"/datasets/{dataset.pk}/insights/scores/start")
    assert response.status_code == 302
    job = Job.objects.get(kind="insights_scores")
    assert job_run(job_id=job.pk).status == JobStatus.SUCCEEDED
    assert 'data-testid="scores-random"' in page(client, dataset)


# ------------------------------------------------------------------ leaks between splits


@pytest.mark.django_db
def test_leaks_are_found_shown_and_removed_from_the_page(
    dataset: Dataset, bob: User, victor: User
) -> None:
    payloads = [jpeg_bytes(1, (96, 80)), jpeg_bytes(1, (96, 80)), jpeg_bytes(2, (96, 80))]
    items_with_images(dataset, 3, payloads=payloads, reference_ids=["a", "a-copy", "b"])
    tag_add(dataset=dataset, name="train", reference_ids=["a", "b"])
    tag_add(dataset=dataset, name="test", reference_ids=["a-copy"])
    viewer, curator = Client(), Client()
    viewer.force_login(victor)
    curator.force_login(bob)
    assert 'data-testid="leaks-form"' not in page(viewer, dataset)
    assert 'data-testid="leaks-form"' in page(curator, dataset)
    same = curator.post(
        f"/datasets/{dataset.pk}/insights/leaks/start", {"a": "tag:train", "b": "tag:train"}
    )
    assert same.status_code == 302 and not Job.objects.filter(kind="insights_leaks").exists()
    curator.post(
        f"/datasets/{dataset.pk}/insights/leaks/start", {"a": "tag:train", "b": "tag:test"}
    )
    assert job_run(job_id=Job.objects.get(kind="insights_leaks").pk).status == JobStatus.SUCCEEDED
    body = page(viewer, dataset)
    assert re.findall(r'<tr data-evidence="(\w+)">', body) == ["exact"]
    assert 'data-testid="remove-b"' not in body
    body = page(curator, dataset)
    report = re.search(r'name="report" value="(\d+)"', body)
    assert report is not None
    removed = curator.post(
        f"/datasets/{dataset.pk}/insights/leaks/remove", {"report": report.group(1), "side": "b"}
    )
    assert removed.status_code == 302
    assert not Item.objects.filter(reference_id="a-copy", tag_links__tag__name="test").exists()
    assert (
        viewer.post(
            f"/datasets/{dataset.pk}/insights/leaks/remove",
            {"report": report.group(1), "side": "a"},
        ).status_code
        == 403
    )


@pytest.mark.django_db
def test_the_grid_sorts_by_a_score_and_pages_through_it(
    dataset: Dataset, alice: User, victor: User
) -> None:
    model = custom_model(dataset, 8)
    items = items_with_vectors(dataset, model, constructed())
    client = Client()
    client.force_login(victor)
    grid = f"/datasets/{dataset.pk}/"
    early = client.get(f"{grid}?sort=uniqueness")  # no scores yet: a 400 that says so
    assert early.status_code == 400 and "No item has scores yet" in early.content.decode()
    assert job_run(job_id=scores_job_start(dataset=dataset, user=alice, model=model).pk)
    body = client.get(f"{grid}?sort=uniqueness&order=desc&limit=5").content.decode()
    first = re.findall(r'data-ref="([^"]+)"', body)
    assert first[0] == items[40].reference_id and len(first) == 5
    assert re.search(r'data-testid="sort-value"[^>]*>1</span>', body)  # the lone item: 1.0
    following = re.search(r'<a class="button" href="([^"]+)" rel="next">', body)
    assert following is not None
    second = client.get(html.unescape(following.group(1))).content.decode()
    assert not set(re.findall(r'data-ref="([^"]+)"', second)) & set(first)
    lowest = re.findall(
        r'data-ref="([^"]+)"', client.get(f"{grid}?sort=uniqueness&limit=20").content.decode()
    )
    assert set(lowest) == {i.reference_id for i in items[:20]}  # the tight cluster
    # Sorted within the view's filters.
    within = f"{grid}?sort=outlier&order=desc&query=" + "uniqueness%20%3C%200.5"
    assert items[40].reference_id not in grid_refs(client, within)
    response = client.get(f"{grid}?sort=size")
    assert response.status_code == 400 and "<code>sort</code>" in response.content.decode()


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
    assert 'data-testid="look-option"' in page(curator, dataset)
    # The form's box unticked (a checkbox left out of the post): no image is read.
    response = curator.post(scan_url, {"run": run.pk, "look_sent": "1"})
    assert response.status_code == 302
    unlooked = LabelErrorScan.objects.get()
    assert unlooked.job is not None and unlooked.job.params["look"] is False
    unlooked.delete()
    response = curator.post(scan_url, {"run": run.pk, "look_sent": "1", "look": "on"})
    assert response.status_code == 302
    scan = LabelErrorScan.objects.get()
    assert scan.job is not None and scan.job.params["look"] is True
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
