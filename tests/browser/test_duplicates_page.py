"""The duplicates page in a real browser: groups with their signal, keep one per group as a
slice, and the item page's bounded strip linking to its group."""

from __future__ import annotations

import io
from typing import Any

from django.contrib.auth.models import User
from PIL import Image

from curation.jobs import job_run
from curation.models import Dataset, Slice
from embeddings.duplicates import duplicates_job_start
from tests.browser.support import axe_violations, describe_violations, log_in, screenshot
from tests.embedding_factories import items_with_images, jpeg_bytes


def _resized(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as im:
        out = io.BytesIO()
        im.resize((80, 67)).save(out, "JPEG", quality=60)
    return out.getvalue()


def test_a_curator_reviews_duplicate_groups_and_keeps_one_per_group(
    page: Any, bob: User, dataset: Dataset
) -> None:
    payloads = [jpeg_bytes(seed, (192, 160)) for seed in range(10)]
    payloads += [payloads[0], _resized(payloads[1])]
    items = items_with_images(dataset, len(payloads), payloads=payloads)
    job = job_run(job_id=duplicates_job_start(dataset=dataset, user=bob, model=None).pk)
    assert job.result["exact_groups"] == 1 and job.result["phash_groups"] == 1, job.result

    log_in(page, bob, "bob-password-1")
    page.goto("/jobs/")
    page.click("[data-testid=job-result-link] a")
    page.wait_for_load_state()
    signals = page.locator("[data-testid=group-signal]").all_inner_texts()
    assert sorted(signals) == ["Perceptual hash", "Same content hash"]
    screenshot(page, "duplicates")
    found = axe_violations(page)  # with groups shown (test_accessibility sees it empty)
    assert not found, describe_violations(found)

    page.click("[data-testid=keep-one] button")
    page.wait_for_load_state()
    assert "10 items added to the slice" in page.locator(".message-success").inner_text()
    kept = set(
        Slice.objects.get(dataset=dataset, name="deduplicated").items.values_list("pk", flat=True)
    )
    assert kept == {i.pk for i in items[:10]}

    page.goto(f"/datasets/{dataset.pk}/items/{items[11].pk}")
    assert page.locator("[data-testid=duplicates] a").count() == 2
    page.click("[data-testid=duplicates-group-link] a")
    page.wait_for_load_state()
    assert page.locator("[data-testid=group-signal]").all_inner_texts() == ["Perceptual hash"]
