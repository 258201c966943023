"""`nucleus review ...` and the client's review methods against a real server: an
external tool makes a queue, pulls entries and pushes decisions, a second reviewer gets
other entries, and a viewer's decision is refused."""

from __future__ import annotations

import json

import pytest

from curation.models import Slice
from nucleus.client import NucleusAPIError
from review.models import ReviewEntry
from tests.client_support import (  # noqa: F401  (fixtures)
    client_of_fixture,
    server_fixture,
    token_of_fixture,
)
from tests.test_cli import run
from tests.ui_factories import outcome_world

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def as_user(server, token_of, monkeypatch):
    """Point the CLI at the live server with a token of the given user (as test_cli's)."""

    def login(user):
        monkeypatch.setenv("NUCLEUS_URL", server)
        monkeypatch.setenv("NUCLEUS_TOKEN", token_of(user))

    return login


def test_a_tool_pulls_entries_and_pushes_decisions(dataset, alice, bob, as_user, capsys, tmp_path):
    outcome_world(dataset)
    Slice.objects.create(dataset=dataset, name="all").items.set(dataset.items.all())
    as_user(bob)
    code, out, _ = run(
        capsys,
        "review",
        "create",
        "--dataset",
        str(dataset.pk),
        "--name",
        "check",
        "--slice",
        "all",
        "--with-annotations",
    )
    assert code == 0
    queue = out.strip()
    code, out, _ = run(
        capsys, "review", "claim", "--dataset", str(dataset.pk), "--queue", "check", "--count", "3"
    )
    pulled = [json.loads(line) for line in out.splitlines()]
    assert [e["position"] for e in pulled] == [0, 1, 2]
    decisions = tmp_path / "decisions.jsonl"
    decisions.write_text(
        "\n".join(
            [
                json.dumps({"entry": pulled[0]["id"], "decision": "accepted"}),
                json.dumps(
                    {
                        "entry": pulled[1]["id"],
                        "decision": "rejected",
                        "reason": "wrong_label",
                        "note": "bus",
                    }
                ),
                json.dumps({"entry": pulled[2]["id"], "decision": "rejected"}),  # no reason
            ]
        )
    )
    code, _, _ = run(
        capsys,
        "review",
        "push",
        "--dataset",
        str(dataset.pk),
        "--queue",
        queue,
        "--file",
        str(decisions),
    )
    assert code == 1  # the third line was refused, the first two went
    statuses = dict(ReviewEntry.objects.values_list("position", "status"))
    assert statuses == {0: "accepted", 1: "rejected", 2: "claimed", 3: "pending"}
    # Pushing the same file again changes nothing (each decision is idempotent).
    run(
        capsys,
        "review",
        "push",
        "--dataset",
        str(dataset.pk),
        "--queue",
        queue,
        "--file",
        str(decisions),
    )
    assert dict(ReviewEntry.objects.values_list("position", "status")) == statuses
    code, out, _ = run(
        capsys, "review", "stats", "--dataset", str(dataset.pk), "--queue", queue, "--json"
    )
    stats = json.loads(out)
    assert (stats["done"], stats["acceptance_rate"]) == (2, 0.5)
    code, out, _ = run(capsys, "review", "undo", "--dataset", str(dataset.pk), "--queue", queue)
    assert code == 0 and "is yours again" in out
    code, out, _ = run(
        capsys,
        "review",
        "entries",
        "--dataset",
        str(dataset.pk),
        "--queue",
        queue,
        "--status",
        "accepted",
    )
    assert len(out.strip().splitlines()) == 2  # the header and entry 0


def test_the_client_claims_disjoint_entries_and_a_viewer_cannot_decide(
    dataset, alice, bob, victor, client_of
):
    outcome_world(dataset)
    owner = client_of(alice)
    queue = owner.review_queue_create(
        dataset.pk, "fp check", {"kind": "items", "reference_ids": ["a", "b", "c", "d"]}
    )
    mine = owner.review_claim(dataset.pk, queue["id"], count=2)
    theirs = client_of(bob).review_claim(dataset.pk, "fp check", count=5)
    assert [e["position"] for e in mine] == [0, 1]
    assert [e["position"] for e in theirs] == [2, 3]
    decided = owner.review_decide(dataset.pk, queue["id"], mine[0]["id"], "skipped")
    assert decided["status"] == "skipped"
    assert [r["key"] for r in owner.review_reasons(dataset.pk)][:2] == ["wrong_label", "bad_box"]
    entries = list(owner.review_entries(dataset.pk, queue["id"], status="claimed"))
    assert [e["position"] for e in entries] == [1, 2, 3]
    with pytest.raises(NucleusAPIError) as refused:
        client_of(victor).review_decide(dataset.pk, queue["id"], mine[1]["id"], "accepted")
    assert refused.value.status == 403
    assert owner.review_stats(dataset.pk, queue["id"])["done"] == 1
