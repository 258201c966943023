"""Browser tests: Playwright (Python) driving Debian's Chromium against pytest-django's
live server. `make test` installs Chromium when it is missing (`make browser`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from curation.models import Dataset, Item

CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT = {"width": 1440, "height": 900}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is not at {CHROMIUM}: run `make browser` (apt-get install chromium)."
        )
    # While Playwright's sync API is started, an event loop counts as running in this
    # thread, and Django refuses ORM calls from such a thread unless told it is safe (it
    # is: the loop only talks to the browser). So: only while the browser runs.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, live_server: Any) -> Iterator[Any]:
    context = browser.new_context(
        viewport=VIEWPORT, base_url=live_server.url, accept_downloads=True
    )
    context.set_default_timeout(15_000)
    opened = context.new_page()
    yield opened
    context.close()


@pytest.fixture
def scenes(dataset: Dataset) -> list[Item]:
    from tests.ui_factories import populate

    return populate(dataset, 36)


@pytest.fixture
def scored_splits(dataset: Dataset) -> dict[str, Any]:
    """41 pictures with constructed vectors (a tight cluster, a loose one, one alone) under
    a custom model, and an exact copy of the first picture (whose vector sits in the loose
    cluster); train (the tight cluster and the lone item) and test (some of the loose
    cluster, the copy and the lone item) share the lone item and the copied picture."""
    import numpy as np

    from curation.services import tag_add
    from embeddings import vectors as vec
    from tests.embedding_factories import custom_model, items_with_images, jpeg_bytes
    from tests.test_insights_scores import DIM, constructed

    payloads = [jpeg_bytes(seed, (96, 80)) for seed in range(41)]
    payloads.append(payloads[0])  # an exact copy of the first picture
    refs = [f"scene-{i:02d}" for i in range(41)] + ["scene-00-copy"]
    items = items_with_images(dataset, len(payloads), payloads=payloads, reference_ids=refs)
    model = custom_model(dataset, DIM)
    rows = np.vstack([constructed(), constructed()[20:21]])
    vec.vectors_write(
        model=model, dataset=dataset, item_ids=[i.pk for i in items], vectors=vec.normalize(rows)
    )
    vec.vector_index_ensure(model=model, dataset=dataset)
    tag_add(dataset=dataset, name="train", reference_ids=[*refs[:20], "scene-40"])
    tag_add(dataset=dataset, name="test", reference_ids=[*refs[21:25], "scene-40", "scene-00-copy"])
    return {"model": model, "items": items}
