"""`nucleus select` and the client's selection methods against a real server and an
in-process worker (a big pool's job)."""

from __future__ import annotations

import pytest

from curation.models import Slice
from selection import services
from tests.client_support import (  # noqa: F401  (fixtures)
    client_of_fixture,
    server_fixture,
    token_of_fixture,
    worker_fixture,
)
from tests.embedding_factories import custom_model, items_with_vectors
from tests.test_cli import run
from tests.test_selection import DIM, clusters

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def as_user(server, token_of, monkeypatch):
    def login(user):
        monkeypatch.setenv("NUCLEUS_URL", server)
        monkeypatch.setenv("NUCLEUS_TOKEN", token_of(user))

    return login


def test_select_previews_creates_and_lists(dataset, bob, victor, as_user, capsys):
    points, _ = clusters()
    items_with_vectors(dataset, custom_model(dataset, DIM), points)
    as_user(victor)
    args = ["select", "--dataset", "street scenes", "--budget", "5", "--strategy", "diversity"]
    status, out, err = run(capsys, *args, "--preview")
    assert status == 0, err
    assert out.startswith("5 items would be selected") and "diversity" in out
    status, out, err = run(capsys, *args, "--name", "batch-1")
    assert status == 1 and "curator" in err  # a viewer may preview, not create
    as_user(bob)
    status, out, err = run(
        capsys, *args, "--name", "batch-1", "--strategy", "random", "--weight", "random=0.5"
    )
    assert status == 0, err
    assert "slice 'batch-1': 5 items, version 1 frozen" in out
    assert Slice.objects.get(name="batch-1").memberships.count() == 5
    status, out, err = run(capsys, *args, "--name", "batch-2", "--budget", "999")
    assert status == 1 and "budget" in err
    status, out, _ = run(capsys, "select", "--dataset", "street scenes", "--list")
    assert status == 0 and "batch-1" in out and '"random": 0.5' in out


def test_client_waits_for_a_big_pools_job(dataset, bob, client_of, worker, monkeypatch):
    points, _ = clusters()
    items_with_vectors(dataset, custom_model(dataset, DIM), points)
    monkeypatch.setattr(services, "SYNC_MAX", 10)
    client = client_of(bob)
    made = client.selection_create(
        dataset.pk,
        name="by job",
        strategies=[{"name": "random"}, {"name": "diversity"}],
        budget=5,
        wait=True,
        timeout=120,
    )
    assert made["status"] == "done" and made["slice"]["name"] == "by job"
    assert made["item_count"] == 5 and made["version"] == 1
    assert made["job"]["kind"] == "selection" and made["job"]["status"] == "succeeded"
    assert [s["id"] for s in client.selections(dataset.pk)] == [made["id"]]
