"""The duplicates API: start the job, read the groups, turn them into a tag or a slice."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from curation.jobs import job_run
from curation.models import Dataset, Slice
from embeddings.api import MAX_GROUP_OFFSET
from embeddings.models import DuplicateRun
from tests.api_helpers import error_of, error_paths, url
from tests.embedding_factories import planted_fixture  # noqa: F401

Client = Callable[[User | None], APIClient]


def test_a_curator_finds_duplicates_and_keeps_one_per_group(
    client_for: Client, bob: User, victor: User, dataset: Dataset, planted: dict[str, Any]
) -> None:
    started = client_for(bob).post(url(dataset, "duplicates"), {"threshold": 0.95}, format="json")
    assert started.status_code == 202, started.json()
    assert started.json()["params"]["model"] == planted["model"].name  # the dataset's default
    job_run(job_id=started.json()["id"])

    page = client_for(victor).get(url(dataset, "duplicates"), {"limit": 3})
    assert page.status_code == 200, page.json()
    body = page.json()
    assert body["run"]["group_count"] == 6 and body["next_offset"] == 3 and len(body["groups"]) == 3
    rest = client_for(victor).get(url(dataset, "duplicates"), {"offset": 3}).json()
    groups = {
        frozenset(m["reference_id"] for m in g["members"]): (
            g["representative"]["reference_id"],
            g["kind"],
        )
        for g in body["groups"] + rest["groups"]
    }
    assert groups == planted["groups"]

    applied = client_for(bob).post(
        url(dataset, "duplicates/apply"),
        {"target": "slice", "name": "dedup", "select": "keep_one"},
        format="json",
    )
    assert applied.status_code == 200, applied.json()
    assert Slice.objects.get(dataset=dataset, name="dedup").items.count() == 48 - 7


def test_duplicates_need_a_role_and_a_finished_run(
    client_for: Client, victor: User, charlie: User, bob: User, dataset: Dataset
) -> None:
    error_of(client_for(victor).post(url(dataset, "duplicates"), {}, format="json"), 403)
    error_of(client_for(charlie).get(url(dataset, "duplicates")), 404)
    error_of(client_for(victor).get(url(dataset, "duplicates")), 404)
    assert error_paths(
        client_for(bob).post(url(dataset, "duplicates"), {"threshold": 1.5}, format="json")
    ) == ["threshold"]
    response = client_for(bob).post(
        url(dataset, "duplicates/apply"), {"target": "folder", "name": "x"}, format="json"
    )
    assert error_paths(response) == ["target"]


@pytest.mark.parametrize(
    "offset",
    ["9223372036854775800", "9" * 25, "1" * 5000, "²", "-1"],
    ids=["near-bigint-max", "25-digits", "5000-digits", "superscript", "negative"],
)
def test_a_group_offset_out_of_range_is_a_400(
    client_for: Client, victor: User, dataset: Dataset, offset: str
) -> None:
    DuplicateRun.objects.create(
        dataset=dataset, threshold=0.9, neighbors=5, status=DuplicateRun.Status.FINISHED
    )

    response = client_for(victor).get(url(dataset, "duplicates"), {"offset": offset})

    assert error_paths(response) == ["offset"]


def test_the_last_allowed_group_offset_is_an_empty_page(
    client_for: Client, victor: User, dataset: Dataset
) -> None:
    DuplicateRun.objects.create(
        dataset=dataset, threshold=0.9, neighbors=5, status=DuplicateRun.Status.FINISHED
    )

    response = client_for(victor).get(url(dataset, "duplicates"), {"offset": MAX_GROUP_OFFSET})

    assert response.status_code == 200 and response.json()["groups"] == []
