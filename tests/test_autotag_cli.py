"""`nucleus autotag ...` and the client's autotag methods against a real server and an
in-process worker."""

from __future__ import annotations

import numpy as np
import pytest

from curation.models import Tag
from tests.client_support import (  # noqa: F401  (fixtures)
    client_of_fixture,
    server_fixture,
    token_of_fixture,
    worker_fixture,
)
from tests.embedding_factories import custom_model, items_with_vectors
from tests.test_autotag import DIM, separable
from tests.test_cli import run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def as_user(server, token_of, monkeypatch):
    def login(user):
        monkeypatch.setenv("NUCLEUS_URL", server)
        monkeypatch.setenv("NUCLEUS_TOKEN", token_of(user))

    return login


def test_create_scores_round_and_apply(dataset, bob, victor, as_user, worker, capsys):
    model = custom_model(dataset, DIM)
    items = items_with_vectors(dataset, model, separable(np.random.default_rng(21)))
    cluster = {i.reference_id for i in items[200:]}
    as_user(bob)
    pos = [arg for i in items[200:204] for arg in ("--pos", i.reference_id)]
    status, out, err = run(capsys, "autotag", "create", "--dataset", "street scenes", "rain", *pos)
    assert status == 0, err
    assert "round 1: 4 positives, 0 negatives, 50 drawn at random" in out
    as_user(victor)
    status, out, err = run(
        capsys, "autotag", "scores", "--dataset", "street scenes", "rain", "-n", "30"
    )
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == "reference_id\tscore\texample" and len(lines) == 31
    assert {line.split("\t")[0] for line in lines[1:]} == cluster
    status, _, err = run(
        capsys, "autotag", "apply", "--dataset", "street scenes", "rain", "0.5", "--tag", "rain"
    )
    assert status != 0 and "permission" in err.lower(), err
    as_user(bob)
    status, out, err = run(
        capsys, "autotag", "apply", "--dataset", "street scenes", "rain", "0.5", "--tag", "rain"
    )
    assert status == 0 and out.strip() == "tagged 30 items 'rain'", err
    assert set(Tag.objects.get(name="rain").items.values_list("reference_id", flat=True)) == cluster
    status, out, err = run(
        capsys,
        "autotag",
        "round",
        "--dataset",
        "street scenes",
        "rain",
        "--neg",
        items[0].reference_id,
    )
    assert status == 0 and "round 2: 4 positives, 1 negatives" in out, err
    status, out, err = run(capsys, "autotag", "list", "--dataset", "street scenes")
    assert status == 0 and out.splitlines()[1].split("\t")[:3] == ["rain", "constructed", "2"]


def test_the_client_methods(dataset, bob, client_of, worker):
    model = custom_model(dataset, DIM)
    items = items_with_vectors(dataset, model, separable(np.random.default_rng(22)))
    client = client_of(bob)
    started = client.autotag_create(
        dataset.pk, "rain", positives=[i.reference_id for i in items[200:203]]
    )
    client.job_wait(dataset.pk, started["job"]["id"])
    assert client.autotag(dataset.pk, "rain")["rounds"][0]["status"] == "scored"
    page = client.autotag_scores(dataset.pk, "rain", low=0.5)
    assert {r["item"]["reference_id"] for r in page["results"]} == {
        i.reference_id for i in items[200:]
    }
    made = client.autotag_apply(dataset.pk, "rain", 0.5, slice="rainy")
    assert made["items"] == 30 and made["slice"] is not None
    client.autotag_delete(dataset.pk, "rain")
    assert client.autotags(dataset.pk) == []
