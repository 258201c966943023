"""`nucleus insights scores|leaks` and the client's insights methods against a real
server and an in-process worker."""

from __future__ import annotations

import pytest

from curation.models import Item
from curation.services import tag_add
from tests.client_support import (  # noqa: F401  (fixtures)
    client_of_fixture,
    server_fixture,
    token_of_fixture,
    worker_fixture,
)
from tests.embedding_factories import (
    custom_model,
    items_with_images,
    items_with_vectors,
    jpeg_bytes,
)
from tests.test_cli import run
from tests.test_insights_scores import DIM, constructed

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def as_user(server, token_of, monkeypatch):
    """Point the CLI at the live server with a token of the given user (as test_cli's)."""

    def login(user):
        monkeypatch.setenv("NUCLEUS_URL", server)
        monkeypatch.setenv("NUCLEUS_TOKEN", token_of(user))

    return login


def test_scores_computes_and_ranks(dataset, bob, victor, as_user, worker, capsys):
    model = custom_model(dataset, DIM)
    items = items_with_vectors(dataset, model, constructed())
    as_user(victor)
    status, out, err = run(capsys, "insights", "scores", "--dataset", "street scenes")
    assert status == 1 and "No item has scores yet" in err
    as_user(bob)
    status, out, err = run(
        capsys, "insights", "scores", "--dataset", "street scenes", "--compute", "-n", "2"
    )
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == "reference_id\tuniqueness\trepresentativeness\toutlier"
    assert lines[1].startswith(f"{items[40].reference_id}\t1.0000\t0.0000\t0.9") and len(lines) == 3
    status, out, _ = run(
        capsys, "insights", "scores", "--dataset", "street scenes", "--sort", "+uniqueness"
    )
    assert status == 0 and out.splitlines()[-1].split("\t")[0] != items[40].reference_id


def test_leaks_finds_the_pairs_and_removes_them_from_one_side(
    dataset, bob, as_user, worker, capsys, client_of
):
    pictures = [jpeg_bytes(1), jpeg_bytes(1), jpeg_bytes(2)]
    items_with_images(dataset, 3, payloads=pictures, reference_ids=["a", "a-copy", "b"])
    tag_add(dataset=dataset, name="train", reference_ids=["a", "b"])
    tag_add(dataset=dataset, name="test", reference_ids=["a-copy"])
    as_user(bob)
    status, out, err = run(
        capsys, "insights", "leaks", "--dataset", "street scenes", "--a", "train"
    )
    assert status == 2 and "both --a and --b" in err
    status, out, err = run(
        capsys, "insights", "leaks", "--dataset", "street scenes", "--a", "x", "--b", "test"
    )
    assert status == 1 and "a:" in err and "no slice or tag named 'x'" in err
    status, out, err = run(
        capsys,
        "insights",
        "leaks",
        "--dataset",
        "street scenes",
        "--a",
        "train",
        "--b",
        "test",
        "--remove",
        "b",
    )
    assert status == 0, err
    assert out.splitlines()[:3] == [
        "1 leaking pairs between tag:train and tag:test",
        "a\tb\tevidence\tdistance",
        "a\ta-copy\texact\t0.0000",
    ]
    assert "took 1 items out of tag:test" in err
    assert not Item.objects.filter(tag_links__tag__name="test").exists()
    report = client_of(bob).insights_leaks(dataset.pk)
    assert report["report"]["pair_count"] == 0 and report["pairs"] == []
