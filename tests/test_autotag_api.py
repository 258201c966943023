"""The autotag API and pages: who may read and who may write, the 400s that name their
field, tagging and slicing by threshold, and the rounds page's marks becoming examples."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from curation.jobs import job_run
from curation.models import Dataset, Item, JobStatus, Slice, Tag
from curation.services import dataset_delete, tag_add
from embeddings import autotag as services
from embeddings.models import Autotag, AutotagExample, AutotagScore, EmbeddingModel, ModelKind
from tests.api_helpers import error_paths
from tests.embedding_factories import custom_model, items_with_vectors
from tests.test_autotag import DIM, separable


def finished(job_id: int) -> None:
    job = job_run(job_id=job_id)
    assert job is not None and job.status == JobStatus.SUCCEEDED, job and job.message


@pytest.fixture(name="world")
def world_fixture(dataset: Dataset) -> dict[str, Any]:
    model = custom_model(dataset, DIM)
    items = items_with_vectors(dataset, model, separable(np.random.default_rng(11)))
    return {"model": model, "items": items, "url": f"/api/v1/datasets/{dataset.pk}/autotags"}


def test_viewers_read_curators_write_strangers_see_nothing(
    dataset: Dataset,
    world: dict[str, Any],
    bob: Any,
    victor: Any,
    charlie: Any,
    client_for: Callable[[Any], APIClient],
) -> None:
    url, items = world["url"], world["items"]
    body = {"name": "rain", "positives": [i.reference_id for i in items[200:204]]}
    assert client_for(victor).post(url, body, format="json").status_code == 403
    assert client_for(charlie).post(url, body, format="json").status_code == 404
    created = client_for(bob).post(url, body, format="json")
    assert created.status_code == 201, created.json()
    out = created.json()
    assert out["autotag"]["name"] == "rain" and out["autotag"]["model"] == "constructed"
    assert out["round"]["number"] == 1 and out["round"]["sampled_negatives"] == 50
    assert out["job"]["kind"] == "autotag_score"
    assert out["autotag"]["query"] == 'autotag["rain"] >= 0.8'
    finished(out["job"]["id"])
    tag_id = out["autotag"]["id"]

    viewer = client_for(victor)
    assert [a["name"] for a in viewer.get(url).json()] == ["rain"]
    detail = viewer.get(f"{url}/{tag_id}").json()
    assert detail["positives"] == 4 and detail["rounds"][0]["status"] == "scored"
    page = viewer.get(f"{url}/{tag_id}/scores", {"limit": 30}).json()
    assert page["round"] == 1 and page["random_weights"] is False
    assert {r["item"]["reference_id"] for r in page["results"]} == {
        i.reference_id for i in items[200:]
    }
    assert page["results"][0]["example"] in (True, None)
    low = viewer.get(f"{url}/{tag_id}/scores", {"order": "asc", "max": 0.5, "limit": 5}).json()
    assert all(r["score"] <= 0.5 for r in low["results"]) and low["next_offset"] == 5
    for path in (f"{url}/{tag_id}", f"{url}/{tag_id}/scores"):
        assert client_for(charlie).get(path).status_code == 404
    assert viewer.post(f"{url}/{tag_id}/rounds", {}, format="json").status_code == 403
    assert viewer.post(f"{url}/{tag_id}/apply", {}, format="json").status_code == 403
    assert viewer.delete(f"{url}/{tag_id}").status_code == 403
    assert client_for(charlie).delete(f"{url}/{tag_id}").status_code == 404
    assert client_for(bob).delete(f"{url}/{tag_id}").status_code == 204
    assert not Autotag.objects.exists()


def test_bad_input_is_a_400_naming_the_field(
    dataset: Dataset, world: dict[str, Any], bob: Any, client_for: Callable[[Any], APIClient]
) -> None:
    url, items = world["url"], world["items"]
    curator = client_for(bob)
    refs = [i.reference_id for i in items[200:203]]

    def paths(body: dict[str, Any]) -> list[str]:
        return error_paths(curator.post(url, body, format="json"))

    assert paths({"name": "rain"}) == ["positives"]
    assert paths({"name": "rain", "positives": ["nope"]}) == ["positives[0]"]
    assert paths({"name": "rain", "positives": refs, "model": "nope"}) == ["model"]
    assert paths({"name": "rain", "positives_slice": 999999}) == ["positives_slice"]
    assert paths({"name": "rain", "positives_tag": "nope"}) == ["positives_tag"]
    assert paths({"name": " ", "positives": refs}) == ["name"]
    assert paths({"name": "rain", "positives": refs, "negatives": refs[:1]}) == ["negatives"]
    # A model with no vector for the examples.
    EmbeddingModel.objects.create(
        name="empty", dataset=dataset, kind=ModelKind.CUSTOM, dimension=DIM
    )
    assert paths({"name": "rain", "positives": refs, "model": "empty"}) == ["positives"]
    created = curator.post(url, {"name": "rain", "positives": refs}, format="json").json()
    assert paths({"name": "rain", "positives": refs}) == ["name"]  # taken
    tag_id = created["autotag"]["id"]
    finished(created["job"]["id"])
    apply = f"{url}/{tag_id}/apply"
    for threshold in (1.5, -0.1):
        answer = curator.post(apply, {"threshold": threshold, "tag": "t"}, format="json")
        assert error_paths(answer) == ["threshold"]
    assert error_paths(curator.post(apply, {"threshold": 0.5}, format="json")) == ["tag"]
    assert error_paths(curator.get(f"{url}/{tag_id}/scores", {"min": 2})) == ["min"]
    assert error_paths(curator.get(f"{url}/{tag_id}/scores", {"order": "up"})) == ["order"]


def test_examples_from_a_tag_and_slicing_and_tagging_by_threshold(
    dataset: Dataset, world: dict[str, Any], bob: Any, client_for: Callable[[Any], APIClient]
) -> None:
    url, items = world["url"], world["items"]
    tag_add(
        dataset=dataset,
        name="rain-examples",
        reference_ids=[i.reference_id for i in items[200:205]],
    )
    curator = client_for(bob)
    created = curator.post(
        url, {"name": "rain", "positives_tag": "rain-examples"}, format="json"
    ).json()
    assert created["round"]["positives"] == 5
    finished(created["job"]["id"])
    apply = f"{url}/{created['autotag']['id']}/apply"
    tagged = curator.post(apply, {"threshold": 0.5, "tag": "rain"}, format="json").json()
    assert tagged == {"threshold": 0.5, "tag": "rain", "slice": None, "items": 30}
    rain = set(Tag.objects.get(name="rain").items.values_list("pk", flat=True))
    assert rain == {i.pk for i in items[200:]}
    sliced = curator.post(apply, {"threshold": 0.5, "slice": "rainy"}, format="json").json()
    made = Slice.objects.get(pk=sliced["slice"])
    assert made.name == "rainy" and not made.is_dynamic and sliced["items"] == 30
    # Next round from the API: a rejected item becomes a negative example.
    more = curator.post(
        f"{url}/{created['autotag']['id']}/rounds",
        {"negatives": [items[0].reference_id], "positives": [items[210].reference_id]},
        format="json",
    )
    assert more.status_code == 201 and more.json()["round"]["number"] == 2
    assert more.json()["round"]["negatives"] == 1 and more.json()["round"]["positives"] == 6


def test_the_rounds_page_shows_the_banner_and_its_marks_become_examples(
    dataset: Dataset, world: dict[str, Any], alice: Any, victor: Any, charlie: Any
) -> None:
    model, items = world["model"], world["items"]
    model.random_weights = True
    model.save()
    client = Client()
    client.force_login(alice)
    start = client.post(
        f"/datasets/{dataset.pk}/autotags/start",
        {
            "name": "rain",
            "model": str(model.pk),
            "positives": "\n".join(i.reference_id for i in items[200:203]),
        },
    )
    autotag = Autotag.objects.get()
    assert start.status_code == 302 and start["Location"].endswith(f"/autotags/{autotag.pk}/")
    finished(autotag.rounds.get().job_id)
    page = client.get(f"/datasets/{dataset.pk}/autotags/{autotag.pk}/").content.decode()
    assert 'data-testid="autotag-not-semantic"' in page
    assert page.count('data-testid="bar"') == 10  # each bar opens the grid on its range
    assert "autotag%5B%22rain%22%5D+%3E%3D+0.9+and" in page
    top = items[215]
    assert f'name="mark-{top.pk}"' in page
    retrain = client.post(
        f"/datasets/{dataset.pk}/autotags/{autotag.pk}/retrain",
        {f"mark-{top.pk}": "pos", f"mark-{items[0].pk}": "neg", f"mark-{items[1].pk}": ""},
    )
    assert retrain.status_code == 302
    marks = dict(AutotagExample.objects.filter(round_number=2).values_list("item_id", "positive"))
    assert marks == {top.pk: True, items[0].pk: False}
    assert autotag.rounds.count() == 2
    # A viewer reads the page, without the marks, and cannot retrain.
    viewer = Client()
    viewer.force_login(victor)
    seen = viewer.get(f"/datasets/{dataset.pk}/autotags/{autotag.pk}/").content.decode()
    assert "autotag-not-semantic" in seen and 'name="mark-' not in seen
    refused = viewer.post(f"/datasets/{dataset.pk}/autotags/{autotag.pk}/retrain", {})
    assert refused.status_code == 403
    stranger = Client()
    stranger.force_login(charlie)
    base = f"/datasets/{dataset.pk}/autotags"
    for url in (f"{base}/", f"{base}/{autotag.pk}/"):
        assert stranger.get(url).status_code == 404, url
    for url in (f"{base}/start", f"{base}/{autotag.pk}/retrain", f"{base}/{autotag.pk}/apply"):
        assert stranger.post(url, {"name": "x", "threshold": "0.5"}).status_code == 404, url
    assert autotag.rounds.count() == 2 and Autotag.objects.count() == 1
    assert Item.objects.filter(dataset=dataset).count() == 230


def test_autotag_from_selection_fills_the_form_with_the_selected_items_as_positives(
    dataset: Dataset,
    world: dict[str, Any],
    bob: Any,
    victor: Any,
    charlie: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model, items = world["model"], world["items"]
    picked = [items[212], items[201], items[207]]  # selected in the grid in this order
    client = Client()
    client.force_login(bob)
    grid = client.get(f"/datasets/{dataset.pk}/").content.decode()
    action = f"/datasets/{dataset.pk}/autotags/from-selection"
    assert f'formaction="{action}" data-testid="sel-autotag">Autotag from selection<' in grid
    opened = client.post(action, {"ids": ",".join(str(i.pk) for i in picked), "name": "rain"})
    body = opened.content.decode()
    assert opened.status_code == 200 and 'data-testid="autotag-prefill"' in body
    positives = re.search(r'data-testid="autotag-positives">([^<]*)</textarea>', body)
    assert positives and positives.group(1).split("\n") == [i.reference_id for i in picked]
    assert 'name="name" required maxlength="200" value="rain" autofocus' in body
    start = client.post(
        f"/datasets/{dataset.pk}/autotags/start",
        {"name": "rain", "model": str(model.pk), "positives": positives.group(1)},
    )
    autotag = Autotag.objects.get()
    assert start.status_code == 302 and start["Location"].endswith(f"/autotags/{autotag.pk}/")
    examples = AutotagExample.objects.filter(autotag=autotag)
    assert {(e.item_id, e.positive) for e in examples} == {(i.pk, True) for i in picked}
    # Viewers neither see the button nor may post; strangers do not find the dataset.
    viewer = Client()
    viewer.force_login(victor)
    assert (
        'data-testid="sel-autotag"' not in viewer.get(f"/datasets/{dataset.pk}/").content.decode()
    )
    assert viewer.post(action, {"ids": str(picked[0].pk)}).status_code == 403
    stranger = Client()
    stranger.force_login(charlie)
    assert stranger.post(action, {"ids": str(picked[0].pk)}).status_code == 404
    # More positives than an autotag takes, or none: a 400 naming `ids`.
    monkeypatch.setattr(services, "MAX_EXAMPLES", 2)
    for data in ({"ids": ",".join(str(i.pk) for i in picked)}, {"ids": ""}):
        refused = client.post(action, data)
        assert refused.status_code == 400 and "<li><code>ids</code>: " in refused.content.decode()
    assert Autotag.objects.count() == 1


def test_the_item_list_and_the_grid_filter_and_sort_by_the_score(
    dataset: Dataset, world: dict[str, Any], alice: Any, client_for: Callable[[Any], APIClient]
) -> None:
    items = world["items"]
    api = client_for(alice)
    created = api.post(
        world["url"],
        {"name": "rain", "positives": [i.reference_id for i in items[200:203]]},
        format="json",
    ).json()
    finished(created["job"]["id"])
    url = f"/api/v1/datasets/{dataset.pk}/items"
    body = api.get(url, {"sort": "autotag[rain]", "order": "desc", "limit": 40}).json()
    values = [r["sort_value"] for r in body["results"]]
    assert values == sorted(values, reverse=True) and len(values) == 40
    assert {r["reference_id"] for r in body["results"][:30]} == {
        i.reference_id for i in items[200:]
    }
    assert values[29] > values[30]
    query = f"autotag[rain] >= {values[29]!r}"
    above = api.get(url, {"query": query, "limit": 100}).json()
    assert {r["reference_id"] for r in above["results"]} == {i.reference_id for i in items[200:]}
    refused = api.get(url, {"sort": "autotag[snow]"})
    assert error_paths(refused) == ["sort"]
    client = Client()
    client.force_login(alice)
    grid = client.get(
        f"/datasets/{dataset.pk}/", {"query": query, "sort": "autotag[rain]", "order": "desc"}
    )
    assert grid.status_code == 200
    page = grid.content.decode()
    assert page.count('data-testid="sort-value"') == 30
    assert items[0].reference_id not in page


def test_a_dataset_with_an_autotag_is_deleted_whole(
    dataset: Dataset, world: dict[str, Any], bob: Any, alice: Any
) -> None:
    items = world["items"]
    created = services.autotag_create(
        dataset=dataset,
        user=bob,
        name="rain",
        model=world["model"],
        positives=services.ExampleSource(reference_ids=[i.reference_id for i in items[200:203]]),
        negatives=services.ExampleSource(reference_ids=[items[0].reference_id]),
    )
    finished(created[2].pk)
    dataset_delete(dataset=dataset)
    # The foreign keys are checked at commit (deferred); the test's transaction never
    # commits, so check them now.
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    assert not Autotag.objects.exists() and not AutotagScore.objects.exists()
    assert not AutotagExample.objects.exists() and not Item.objects.exists()
