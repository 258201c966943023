"""The query bar's help in the grid: completion (from this dataset's names only, for its
members only), warnings under the bar, and the query reference page."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client

from curation.bulk.validate import clean_item_record
from curation.bulk.write import records_write
from curation.models import Dataset, Item
from curation.services import tag_add
from tests.ui_factories import populate

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(alice: User) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def items(dataset: Dataset) -> list[Item]:
    found = populate(dataset, 6)
    tag_add(dataset=dataset, name="reviewed", reference_ids=["scene-000"])
    return found


@pytest.fixture
def secret(charlie: User) -> Dataset:
    """Charlie's dataset, whose names must never reach alice's completions."""
    other = Dataset.objects.create(name="charlie's", owner=charlie)
    raw = {
        "reference_id": "s-1",
        "metadata": {"weathersecret": 1},
        "annotations": [{"kind": "category", "label": "carsecret"}],
        "predictions": [
            {"kind": "category", "label": "carsecret", "model": "detector-secret", "confidence": 1}
        ],
    }
    records_write(dataset=other, records=[clean_item_record(raw, media=None)])
    tag_add(dataset=other, name="reviewed-secret", reference_ids=["s-1"])
    return other


def complete(client: Client, dataset: Dataset, query: str, **extra: Any) -> Any:
    return client.get(f"/datasets/{dataset.pk}/query/complete", {"query": query, **extra})


def labels(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [s["label"] for s in response.json()["suggestions"]]


def test_it_completes_the_name_at_the_cursor(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    response = complete(client, dataset, "annotations.tr >= 1", pos="14")
    assert response.json() == {
        "start": 12,
        "end": 14,
        "suggestions": [{"text": '"traffic light"', "label": "traffic light", "kind": "label"}],
    }
    found = complete(client, dataset, "predictions[det").json()
    assert found["suggestions"] == [
        {"text": '"detector-v1"]', "label": "detector-v1", "kind": "model"}
    ]
    assert labels(complete(client, dataset, "metadata.camera.s")) == ["side"]
    assert labels(complete(client, dataset, "tag = rev")) == ["reviewed"]


def test_it_suggests_only_this_datasets_names(
    client: Client, dataset: Dataset, items: list[Item], secret: Dataset
) -> None:
    assert labels(complete(client, dataset, "annotations.car")) == ["car"]
    assert labels(complete(client, dataset, "predictions[det")) == ["detector-v1"]
    assert labels(complete(client, dataset, "metadata.weather")) == ["weather"]
    assert labels(complete(client, dataset, "tag = reviewed")) == ["reviewed"]
    # ...while charlie's dataset does have those names.
    charlie = Client()
    charlie.force_login(secret.owner)
    assert labels(complete(charlie, secret, "annotations.car")) == ["carsecret"]
    assert labels(complete(charlie, secret, "predictions[det")) == ["detector-secret"]


def test_outsiders_get_a_404(
    client: Client, dataset: Dataset, items: list[Item], secret: Dataset
) -> None:
    assert complete(client, secret, "annotations.car").status_code == 404
    assert client.get(f"/datasets/{secret.pk}/query/check", {"query": "x"}).status_code == 404
    anonymous = Client().get(f"/datasets/{dataset.pk}/query/complete", {"query": "a"})
    assert anonymous.status_code == 302


def test_a_bad_cursor_is_a_400_naming_it(client: Client, dataset: Dataset) -> None:
    for pos in ("-1", "x", "99"):
        response = complete(client, dataset, "width", pos=pos)
        assert response.status_code == 400
        assert "pos" in response.content.decode()


def test_the_grid_warns_about_a_misspelt_label_under_the_query_bar(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    response = client.get(f"/datasets/{dataset.pk}/", {"query": "annotations.persn >= 1"})
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-testid="query-warnings"' in body
    assert "labelled &#x27;persn&#x27;, so it counts 0. Did you mean &#x27;person&#x27;?" in body
    fine = client.get(f"/datasets/{dataset.pk}/", {"query": "annotations.person >= 1"})
    assert 'data-testid="query-warnings"' not in fine.content.decode()


def test_a_warning_that_needs_the_sampled_names_comes_after_the_page_until_they_are_cached(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    cache.clear()
    query = {"query": 'metadata.wether = "rain"'}
    first = client.get(f"/datasets/{dataset.pk}/", query).content.decode()
    # The page does not read the sample: its query feedback asks for the warnings.
    assert 'data-testid="query-warnings"' not in first
    later = re.search(r'data-testid="warnings-later"', first)
    url = re.search(r'id="query-feedback"[^>]*hx-get="([^"]+)"', first)
    assert later is not None and url is not None
    fragment = client.get(html.unescape(url.group(1))).content.decode()
    assert "Did you mean &#x27;weather&#x27;?" in fragment
    # Now counted and cached: the next page has them inline.
    again = client.get(f"/datasets/{dataset.pk}/", query).content.decode()
    assert 'data-testid="query-warnings"' in again and "warnings-later" not in again


def test_the_query_check_fragment_carries_the_warnings(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    url = f"/datasets/{dataset.pk}/query/check"
    warned = client.get(url, {"query": "tag = reviewd"}).content.decode()
    assert "No tag named &#x27;reviewd&#x27;" in warned
    assert "Did you mean &#x27;reviewed&#x27;?" in warned
    quiet = client.get(url, {"query": "tag = reviewed"}).content.decode()
    assert "query-warnings" not in quiet
    bad = client.get(url, {"query": "predictions[detector-v1].car >= 1"}).content.decode()
    assert "Quote the name: predictions[&quot;detector-v1&quot;]." in bad


def test_the_grid_links_to_the_query_reference(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    body = client.get(f"/datasets/{dataset.pk}/").content.decode()
    assert '<a class="small query-help" href="/help/query"' in body
    page = client.get("/help/query")
    assert page.status_code == 200
    html = page.content.decode()
    assert '<h1 id="the-query-language">The query language</h1>' in html
    assert '<h3 id="predictions-predictionsmodel">' in html
    assert '<code class="language-query">metadata.weather = &quot;rain&quot; AND' in html
    assert Client().get("/help/query").status_code == 302
