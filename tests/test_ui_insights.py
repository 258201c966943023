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
