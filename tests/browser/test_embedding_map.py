"""The embedding map in a real browser: draw a lasso around one cluster on the canvas and
open the selection in the grid, which shows exactly that cluster's items."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from django.contrib.auth.models import User

from curation.jobs import job_run
from curation.models import Dataset
from embeddings.models import Projection, ProjectionPoint
from embeddings.projection import projection_job_start
from tests.browser.support import axe_violations, describe_violations, log_in, screenshot
from tests.embedding_factories import custom_model, items_with_vectors

DIM = 16
PER_CLUSTER = 15


def three_clusters() -> np.ndarray:
    rng = np.random.default_rng(7)
    centres = np.eye(DIM)[:3]
    return np.vstack([c + 0.04 * rng.normal(size=(PER_CLUSTER, DIM)) for c in centres]).astype(
        np.float32
    )


def test_a_lasso_around_a_cluster_opens_exactly_its_items_in_the_grid(
    page: Any, bob: User, dataset: Dataset
) -> None:
    model = custom_model(dataset, DIM)
    names = ["north", "east", "west"]
    metadata = [{"cluster": names[i // PER_CLUSTER]} for i in range(3 * PER_CLUSTER)]
    items = items_with_vectors(dataset, model, three_clusters(), metadata=metadata, index=False)
    job = job_run(job_id=projection_job_start(dataset=dataset, user=bob, model=model).pk)
    projection = Projection.objects.get(job=job)
    cluster = {i.pk for i in items[:PER_CLUSTER]}
    coords = {p.item_id: (p.x, p.y) for p in ProjectionPoint.objects.filter(projection=projection)}

    log_in(page, bob, "bob-password-1")
    page.goto(f"/datasets/{dataset.pk}/map/")
    page.wait_for_selector("[data-testid=map-canvas][data-ready='1']")
    page.fill("[data-testid=map-color]", "metadata.cluster")
    page.press("[data-testid=map-color]", "Enter")
    page.wait_for_function(
        "document.querySelector('[data-testid=map-legend]').textContent.includes('north')"
    )

    # The cluster's points on screen, then a freehand circle around them.
    box = page.locator("[data-testid=map-canvas]").bounding_box()
    screen = np.array(
        [
            page.evaluate("([x, y]) => window.nucleusMap.toScreen(x, y)", list(coords[i]))
            for i in cluster
        ]
    )
    others = np.array(
        [
            page.evaluate("([x, y]) => window.nucleusMap.toScreen(x, y)", list(xy))
            for i, xy in coords.items()
            if i not in cluster
        ]
    )
    centre = screen.mean(axis=0)
    radius = np.linalg.norm(screen - centre, axis=1).max() + 12
    assert np.linalg.norm(others - centre, axis=1).min() > radius + 12  # the lasso fits
    # Hovering a point names its item (and shows its thumbnail, when it has one).
    first = min(cluster)
    x, y = page.evaluate("([x, y]) => window.nucleusMap.toScreen(x, y)", list(coords[first]))
    page.mouse.move(box["x"] + x, box["y"] + y)
    assert page.locator("[data-testid=map-hover]").is_visible()
    hovered = int(page.locator("[data-testid=map-hover]").get_attribute("data-item"))
    assert np.allclose(coords[hovered], coords[first], atol=0.05)
    page.check("[data-testid=tool-lasso]")
    ring = [
        (box["x"] + centre[0] + radius * math.cos(a), box["y"] + centre[1] + radius * math.sin(a))
        for a in np.linspace(0, 2 * math.pi, 40, endpoint=False)
    ]
    page.mouse.move(*ring[0])
    page.mouse.down()
    for x, y in ring[1:]:
        page.mouse.move(x, y)
    page.mouse.up()

    assert page.locator("#map-selected-count").inner_text() == str(PER_CLUSTER)
    screenshot(page, "embedding-map")
    found = axe_violations(page)
    assert not found, describe_violations(found)
    page.click("[data-testid=map-open-grid]")
    page.wait_for_url(f"**/datasets/{dataset.pk}/slices/**")
    shown = {int(t) for t in page.locator(".tile").evaluate_all("ts => ts.map(t => t.dataset.id)")}
    assert shown == cluster


def test_the_map_tab_highlights_the_grid_view_it_was_opened_from(
    page: Any, bob: User, dataset: Dataset
) -> None:
    model = custom_model(dataset, DIM)
    names = ["north", "east", "west"]
    metadata = [{"cluster": names[i // PER_CLUSTER]} for i in range(3 * PER_CLUSTER)]
    items_with_vectors(dataset, model, three_clusters(), metadata=metadata, index=False)
    job_run(job_id=projection_job_start(dataset=dataset, user=bob, model=model).pk)

    log_in(page, bob, "bob-password-1")
    page.goto(f"/datasets/{dataset.pk}/?query=" + 'metadata.cluster = "east"')
    page.click("[data-testid=tab-map]")
    page.wait_for_selector("[data-testid=map-canvas][data-ready='1']")

    assert page.locator("[data-testid=map-status]").inner_text() == (
        f"{PER_CLUSTER} of {3 * PER_CLUSTER} points in the grid view."
    )
    lit = page.evaluate(
        "() => { const m = window.nucleusMap; let n = 0;"
        " for (let i = 0; i < m.count; i++) n += (m.highlight[i >> 3] >> (i & 7)) & 1;"
        " return n; }"
    )
    assert lit == PER_CLUSTER
