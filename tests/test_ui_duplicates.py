"""The Duplicates page (embeddings' UI): groups with their signal and distance, a page at a
time; keep one per group as a slice or a tag; the item page's strip stays bounded."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from django.contrib.auth.models import User
from django.test import Client

from curation.jobs import job_run
from curation.models import Dataset, Item, Slice, Tag
from embeddings.duplicates import duplicates_job_start
from embeddings.ui import GROUPS_PER_PAGE, ITEM_STRIP
from tests.embedding_factories import custom_model, fake_media, items_with_vectors, planted_fixture  # noqa: F401


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page_url(dataset: Dataset) -> str:
    return f"/datasets/{dataset.pk}/duplicates/groups"


def test_it_lists_the_groups_with_their_signal_and_distance(
    victor: User, alice: User, dataset: Dataset, planted: dict[str, Any]
) -> None:
    job_run(job_id=duplicates_job_start(dataset=dataset, user=alice, model=planted["model"]).pk)

    body = logged_in(victor).get(page_url(dataset)).content.decode()

    assert len(re.findall(r'data-testid="group-signal">Same content hash<', body)) == 3
    assert len(re.findall(r'data-testid="group-signal">Embedding similarity<', body)) == 3
    assert "cosine distance ≤ 0.0" in body and "same bytes" in body
    assert 'data-testid="keep-one"' not in body  # a viewer cannot change the dataset


def test_it_says_when_no_job_has_run_and_refuses_outsiders(
    victor: User, charlie: User, dataset: Dataset
) -> None:
    body = logged_in(victor).get(page_url(dataset)).content.decode()
    assert "No duplicates job has finished on this dataset yet." in body
    assert logged_in(charlie).get(page_url(dataset)).status_code == 404


def test_bad_page_or_group_numbers_are_a_400_naming_the_parameter(
    victor: User, alice: User, dataset: Dataset, planted: dict[str, Any]
) -> None:
    job_run(job_id=duplicates_job_start(dataset=dataset, user=alice, model=planted["model"]).pk)
    client = logged_in(victor)
    for name, value in [
        ("page", "x"),
        ("page", "-1"),
        ("page", "9" * 30),
        ("group", "0"),
        ("group", "1e3"),
        ("group", "9" * 19),
    ]:
        response = client.get(page_url(dataset), {name: value})
        assert response.status_code == 400, (name, value)
        assert name in response.content.decode()
    # A group of another run or dataset is simply not there.
    body = client.get(page_url(dataset), {"group": 10**17}).content.decode()
    assert body.count("<tr data-group=") == 0


def test_big_groups_are_paginated_and_the_item_strip_is_bounded(
    alice: User, dataset: Dataset
) -> None:
    # 25 exact pairs, and one group of 30 copies of the same bytes
    media = [fake_media(i // 2) for i in range(50)] + [fake_media(999)] * 30
    model = custom_model(dataset, 8)
    items = items_with_vectors(
        dataset, model, np.random.default_rng(0).normal(size=(80, 8)), media=media
    )
    job_run(job_id=duplicates_job_start(dataset=dataset, user=alice, model=None).pk)
    client = logged_in(alice)

    first = client.get(page_url(dataset)).content.decode()
    second = client.get(page_url(dataset), {"page": 1}).content.decode()
    assert first.count("<tr data-group=") == GROUPS_PER_PAGE and "?page=1" in first
    assert second.count("<tr data-group=") == 26 - GROUPS_PER_PAGE and "?page=0" in second

    body = client.get(f"/datasets/{dataset.pk}/items/{items[-1].pk}").content.decode()
    strip = re.search(r'data-testid="duplicates">(.*?)</div>', body, re.S)
    assert strip is not None and strip.group(1).count("<a ") == ITEM_STRIP
    link = re.search(r'href="([^"]*\?group=(\d+))"', body)
    assert link is not None
    whole = client.get(link.group(1)).content.decode()
    assert whole.count("<tr data-group=") == 1
    assert whole.count(f'href="/datasets/{dataset.pk}/items/') == 30 + 1  # + the representative


def test_a_curator_keeps_one_per_group_as_a_slice_or_a_tag(
    bob: User, victor: User, alice: User, dataset: Dataset, planted: dict[str, Any]
) -> None:
    job_run(job_id=duplicates_job_start(dataset=dataset, user=alice, model=planted["model"]).pk)
    url = f"/datasets/{dataset.pk}/duplicates/keep-one"

    assert logged_in(victor).post(url, {"target": "slice", "name": "x"}).status_code == 403
    logged_in(bob).post(url, {"target": "slice", "name": "dedup"})
    logged_in(bob).post(url, {"target": "tag", "name": "copy"})

    assert Slice.objects.get(dataset=dataset, name="dedup").items.count() == 48 - 7
    assert Tag.objects.get(dataset=dataset, name="copy").items.count() == 7
    assert Item.objects.filter(dataset=dataset).count() == 48
