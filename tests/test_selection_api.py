"""The selection API: create (a slice, its frozen version 1, the recipe recorded), the job
for a big pool, preview, every 400 naming its field, and who may do what."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client as PageClient
from rest_framework.test import APIClient

from curation.jobs import job_cancel, job_run
from curation.models import Dataset, Job, JobStatus, Model, Slice, SliceVersion, SliceVersionItem
from selection import services
from selection.models import Selection
from tests.api_helpers import error_of, error_paths, url
from tests.embedding_factories import custom_model, items_with_vectors
from tests.test_selection import DIM, clusters

Client = Callable[[User | None], APIClient]


@pytest.fixture(name="embedded")
def embedded_fixture(dataset: Dataset) -> list[Any]:
    points, _ = clusters()
    return items_with_vectors(dataset, custom_model(dataset, DIM), points)


def recipe(**extra: Any) -> dict[str, Any]:
    return {
        "name": "to label",
        "strategies": [{"name": "diversity"}, {"name": "random"}],
        "weights": {"diversity": 2, "random": 1},
        "budget": 12,
        "seed": 3,
        **extra,
    }


def test_it_creates_the_slice_its_version_and_records_the_recipe(
    dataset: Dataset, embedded: list[Any], alice: User, client_for: Client
) -> None:
    response = client_for(alice).post(url(dataset, "selections"), recipe(), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "done" and body["item_count"] == 12 and body["version"] == 1
    made = Slice.objects.get(pk=body["slice"]["id"])
    assert made.name == "to label" and made.memberships.count() == 12
    assert "diversity (weight 2" in made.description and "seed 3" in made.description
    version = SliceVersion.objects.get(slice=made, number=1)
    assert version.item_count == 12
    assert set(
        SliceVersionItem.objects.filter(version=version).values_list("item_id", flat=True)
    ) == set(made.memberships.values_list("item_id", flat=True))
    assert body["recipe"]["weights"] == {"diversity": 2.0, "random": 1.0}
    assert body["recipe"]["strategies"][0] == {
        "name": "diversity",
        "model": "constructed",
        "dims": 64,
    }
    assert body["recipe"]["budget"] == 12 and body["recipe"]["seed"] == 3
    assert set(body["figures"]["strategies"]) >= {"diversity", "random"}
    again = client_for(alice).get(url(dataset, f"selections/{body['id']}"))
    assert again.status_code == 200 and again.json()["recipe"] == body["recipe"]
    listed = client_for(alice).get(url(dataset, "selections")).json()
    assert [s["id"] for s in listed] == [body["id"]]


def test_a_big_pool_goes_to_a_job(
    dataset: Dataset, embedded: list[Any], alice: User, client_for: Client, monkeypatch: Any
) -> None:
    monkeypatch.setattr(services, "SYNC_MAX", 10)
    response = client_for(alice).post(url(dataset, "selections"), recipe(), format="json")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["slice"] is None and body["job"]["kind"] == "selection"
    job = job_run(job_id=body["job"]["id"])
    assert job is not None and job.status == JobStatus.SUCCEEDED, job and job.message
    done = Selection.objects.get(pk=body["id"])
    assert done.slice is not None and done.item_count == 12 and done.version is not None
    # The job picks what the request would have: the same seed, the same items.
    monkeypatch.setattr(services, "SYNC_MAX", 10**6)
    direct = client_for(alice).post(url(dataset, "selections"), recipe(name="b"), format="json")
    direct_slice = Slice.objects.get(pk=direct.json()["slice"]["id"])
    assert set(direct_slice.memberships.values_list("item_id", flat=True)) == set(
        done.slice.memberships.values_list("item_id", flat=True)
    )


def test_preview_writes_nothing(
    dataset: Dataset, embedded: list[Any], victor: User, client_for: Client
) -> None:
    response = client_for(victor).post(url(dataset, "selections/preview"), recipe(), format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["item_count"] == 12 and len(body["items"]) == 12
    assert body["figures"]["strategies"]["diversity"]["radius"] > 0
    assert not Slice.objects.exists() and not Selection.objects.exists()


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"budget": 276}, "budget"),
        ({"weights": {"diversity": 0, "random": 0}}, "weights"),
        ({"weights": {"diversity": -1}}, "weights.diversity"),
        ({"weights": {"nope": 1}}, "weights.nope"),
        ({"strategies": [{"name": "nope"}]}, "strategies[0].name"),
        ({"strategies": [{"name": "random", "colour": 1}]}, "strategies[0].colour"),
        ({"strategies": [{"name": "random"}, {"name": "random"}]}, "strategies[1].name"),
        ({"strategies": [{"name": "diversity", "model": "absent"}]}, "strategies[0].model"),
        ({"strategies": [{"name": "uncertainty", "model": "absent"}]}, "strategies[0].model"),
        ({"strategies": [{"name": "uncertainty", "model": "detector"}]}, "strategies[0].model"),
        ({"strategies": [{"name": "balance"}]}, "strategies[0].source"),
        (
            {"strategies": [{"name": "balance", "source": "predictions", "model": "detector"}]},
            "strategies[0].model",
        ),
        ({"strategies": [{"name": "uniqueness"}]}, "strategies[0].model"),
        ({"strategies": [{"name": "similarity", "slice": "absent"}]}, "strategies[0].slice"),
        ({"strategies": [{"name": "exclude", "tag": "absent"}]}, "strategies[0].tag"),
        ({"pool": {"slice": 999999}}, "pool.slice"),
        ({"pool": {"slice": 2**63}}, "pool.slice"),
        ({"budget": 2**63}, "budget"),
        ({"seed": -1}, "seed"),
        ({"strategies": [{"name": "diversity", "dims": 1}]}, "strategies[0].dims"),
        (
            {"strategies": [{"name": "metadata", "key": "w", "values": {"a": -1}}]},
            "strategies[0].values.a",
        ),
        ({"pool": {"query": "metadata.x ="}}, "query"),
    ],
)
def test_each_bad_recipe_is_a_400_naming_the_field(
    dataset: Dataset,
    embedded: list[Any],
    alice: User,
    client_for: Client,
    change: dict[str, Any],
    path: str,
) -> None:
    Model.objects.create(dataset=dataset, name="detector")
    # Weights name the default recipe's strategies: none where the strategies change.
    body = recipe(**{"weights": {}, **change}) if "strategies" in change else recipe(**change)
    for tail in ("selections", "selections/preview"):
        response = client_for(alice).post(url(dataset, tail), body, format="json")
        paths = error_paths(response)
        assert any(p == path or p.startswith(path) for p in paths), (tail, paths)
    assert not Slice.objects.exists()


def test_a_pool_without_the_vectors_a_strategy_needs(
    dataset: Dataset, embedded: list[Any], alice: User, client_for: Client
) -> None:
    other = custom_model(dataset, 4, name="empty")
    body = recipe(strategies=[{"name": "diversity", "model": other.name}], weights={})
    error = error_of(client_for(alice).post(url(dataset, "selections"), body, format="json"), 400)
    assert error["fields"][0]["path"] == "strategies[0].model"
    assert "no item of the pool has a vector of 'empty'" in error["fields"][0]["message"]


def test_the_budget_counts_only_what_can_be_picked(
    dataset: Dataset, embedded: list[Any], alice: User, client_for: Client
) -> None:
    # 275 items; excluding a 270-item slice leaves 5: a budget of 12 is refused, not cut.
    done = client_for(alice).post(
        url(dataset, "selections"),
        recipe(name="big", strategies=[{"name": "random"}], weights={}, budget=270),
        format="json",
    )
    assert done.status_code == 201
    body = recipe(strategies=[{"name": "random"}, {"name": "exclude", "slice": "big"}], weights={})
    error = error_of(client_for(alice).post(url(dataset, "selections"), body, format="json"), 400)
    assert error["fields"][0]["path"] == "budget"
    assert "only 5 of the pool's 275 items" in error["fields"][0]["message"]


def test_who_may_select(
    dataset: Dataset,
    embedded: list[Any],
    bob: User,
    victor: User,
    charlie: User,
    client_for: Client,
) -> None:
    error_of(client_for(victor).post(url(dataset, "selections"), recipe(), format="json"), 403)
    error_of(client_for(charlie).post(url(dataset, "selections"), recipe(), format="json"), 404)
    error_of(client_for(charlie).get(url(dataset, "selections")), 404)
    error_of(
        client_for(charlie).post(url(dataset, "selections/preview"), recipe(), format="json"), 404
    )
    assert (
        client_for(bob).post(url(dataset, "selections"), recipe(), format="json").status_code == 201
    )
    assert client_for(victor).get(url(dataset, "selections")).status_code == 200


def test_the_select_tab_and_builder_page(
    dataset: Dataset,
    embedded: list[Any],
    alice: User,
    victor: User,
    charlie: User,
    client_for: Client,
) -> None:
    made = client_for(alice).post(url(dataset, "selections"), recipe(), format="json").json()
    page = PageClient()
    page.force_login(alice)
    # The slice's page shows how it was made; the builder lists the selection's recipe.
    slice_page = page.get(f"/datasets/{dataset.pk}/slices/{made['slice']['id']}/")
    assert "Selected by diversity (weight 2; model=constructed, dims=64)" in (
        slice_page.content.decode()
    )
    grid = page.get(f"/datasets/{dataset.pk}/").content.decode()
    assert f'href="/datasets/{dataset.pk}/select/" data-testid="tab-select"' in grid
    html = page.get(f"/datasets/{dataset.pk}/select/").content.decode()
    assert 'data-action="create"' in html and 'data-strategy="diversity"' in html
    assert "constructed" in html  # the embedding model is offered
    assert 'data-testid="selections"' in html and "to label" in html
    page.force_login(victor)
    viewer = page.get(f"/datasets/{dataset.pk}/select/")
    assert viewer.status_code == 200 and 'data-action="create"' not in viewer.content.decode()
    page.force_login(charlie)
    assert page.get(f"/datasets/{dataset.pk}/select/").status_code == 404


def test_a_cancelled_job_stops_and_writes_nothing(
    dataset: Dataset, embedded: list[Any], alice: User, client_for: Client, monkeypatch: Any
) -> None:
    monkeypatch.setattr(services, "SYNC_MAX", 10)
    body = client_for(alice).post(url(dataset, "selections"), recipe(), format="json").json()
    real_select = services.select

    def cancelled_meanwhile(**kwargs: Any) -> Any:
        # Someone presses cancel while the job runs: the next round's check stops it.
        job_cancel(job=Job.objects.get(pk=body["job"]["id"]))
        return real_select(**kwargs)

    monkeypatch.setattr(services, "select", cancelled_meanwhile)
    job = job_run(job_id=body["job"]["id"])
    assert job is not None and job.status == JobStatus.CANCELLED
    assert Selection.objects.get(pk=body["id"]).slice is None
    assert not Slice.objects.exists()
