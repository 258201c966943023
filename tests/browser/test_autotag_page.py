"""The Autotag tab in a real browser: a curator starts an autotag from a tag, confirms and
rejects items on the rounds page, retrains, tags by threshold, and a histogram bar opens
the grid on its items."""

from __future__ import annotations

from typing import Any

import numpy as np
from django.contrib.auth.models import User

from curation.jobs import job_run
from curation.models import Dataset, Item
from curation.services import tag_add
from embeddings import vectors as vec
from embeddings.models import Autotag, AutotagExample, AutotagScore
from tests.browser.support import axe_violations, describe_violations, log_in, screenshot
from tests.embedding_factories import custom_model, items_with_images, jpeg_bytes
from tests.test_autotag import DIM


def _world(dataset: Dataset) -> list[Item]:
    """40 pictures in directions orthogonal to e0, then 20 around e0 (the tag)."""
    rng = np.random.default_rng(31)
    background = rng.normal(size=(40, DIM)).astype(np.float32)
    background[:, 0] = 0.0
    cluster = np.eye(DIM, dtype=np.float32)[0] + 0.08 * rng.normal(size=(20, DIM)).astype(
        np.float32
    )
    refs = [f"street-{i:02d}" for i in range(40)] + [f"rain-{i:02d}" for i in range(20)]
    payloads = [jpeg_bytes(seed, (96, 80)) for seed in range(60)]
    items = items_with_images(dataset, 60, payloads=payloads, reference_ids=refs)
    model = custom_model(dataset, DIM)
    vec.vectors_write(
        model=model,
        dataset=dataset,
        item_ids=[i.pk for i in items],
        vectors=vec.normalize(np.vstack([background, cluster])),
    )
    tag_add(dataset=dataset, name="rain-examples", reference_ids=refs[40:43])
    return items


def _score_latest() -> None:
    autotag = Autotag.objects.get()
    job = autotag.rounds.order_by("-number").first().job
    assert job_run(job_id=job.pk).status == "succeeded"


def test_a_curator_refines_an_autotag_in_rounds(page: Any, bob: User, dataset: Dataset) -> None:
    _world(dataset)
    log_in(page, bob, "bob-password-1")
    page.goto(f"/datasets/{dataset.pk}/")
    page.get_by_role("link", name="Autotag").click()
    page.wait_for_load_state()
    form = page.locator("[data-testid=autotag-start]")
    form.locator("input[name=name]").fill("rain")
    form.locator("input[name=positives_tag]").fill("rain-examples")
    form.locator("button").click()
    page.wait_for_load_state()
    assert "scoring job" in page.locator(".message-success").inner_text()
    assert page.locator("[data-testid=autotag-scoring]").count() == 1
    _score_latest()
    page.reload()

    # The top of the scores is the rest of the tag; confirm two, reject one.
    top = page.locator("[data-testid=autotag-top] .autotag-cell")
    refs = top.evaluate_all("els => els.map(e => e.dataset.ref)")
    assert set(refs[:17]) == {f"rain-{i:02d}" for i in range(3, 20)}
    page.get_by_label("Confirm rain-03").check()
    page.get_by_label("Confirm rain-04").check()
    page.get_by_label(f"Reject {refs[-1]}").check()
    screenshot(page, "autotag")
    found = axe_violations(page)
    assert not found, describe_violations(found)
    page.get_by_role("button", name="Retrain with these marks").click()
    page.wait_for_load_state()
    assert (
        "Round 2 trained on 2 confirmed and 1 rejected"
        in page.locator(".message-success").inner_text()
    )
    marks = dict(
        AutotagExample.objects.filter(round_number=2).values_list("item__reference_id", "positive")
    )
    assert marks == {"rain-03": True, "rain-04": True, refs[-1]: False}
    _score_latest()
    page.reload()
    assert "scores of round 2" in page.locator("[data-testid=autotag-info]").inner_text()

    # Tag by threshold, then open the top bar of the histogram in the grid.
    apply = page.locator("[data-testid=autotag-apply]")
    apply.locator("input[name=threshold]").fill("0.5")
    apply.get_by_role("button", name="Tag items ≥ threshold").click()
    page.wait_for_load_state()
    above = AutotagScore.objects.filter(round=Autotag.objects.get().scored_round, score__gte=0.5)
    tagged = set(Item.objects.filter(tag_links__tag__name="rain").values_list("pk", flat=True))
    assert tagged == set(above.values_list("item_id", flat=True)) and len(tagged) >= 10
    assert f"Tagged {len(tagged)} items “rain”" in page.locator(".message-success").inner_text()
    bars = page.locator("[data-testid=autotag-hist] [data-testid=bar]")
    counts = [int(c) for c in bars.locator("em").all_inner_texts()]
    highest = max(i for i, c in enumerate(counts) if c)  # the best-scored non-empty bar
    assert highest >= 5
    bar, count = bars.nth(highest), counts[highest]
    bar.click()
    page.wait_for_load_state()
    shown = page.locator(".tile[data-ref]").evaluate_all("els => els.map(e => e.dataset.ref)")
    assert len(shown) == count and count > 0
    assert all(r.startswith("rain-") for r in shown)
