"""Server time of the UI's grid page at scale.

Target (DESIGN.md): the grid page renders in <= 300 ms server time at 1M items (keyset
pagination, no full COUNT on every request). Uses the dataset of bench/query.py (same
database; run that first), renders pages through Django's test client in-process (no
network), first with cold facet caches and then warm, for a plain grid, a label facet, a
query and a deep page (by cursor). The grid never waits for facet counts (the sidebar
fetches them in a request of its own, counting the view), whose time is printed per view.

    .venv/bin/python bench/ui.py [--repeat 15] [--score-facets]

With --score-facets it also plants uniqueness scores for every item (a custom model,
random values, once) and measures the score facets (curation.score_facets): the grid
page and the facet sidebar with every score facet registered and with none (the listing
of closed entries is all the page pays for), and each histogram request (the
facet opened), cold and cached.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from _setup import report, setup_django

TARGET_MS = 300.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--score-facets", action="store_true")
    args = parser.parse_args()

    setup_django("nucleus_bench_query")
    from django.core.cache import cache
    from django.test import Client
    from query import DATASET_NAME

    from curation.models import Dataset, Item

    dataset = Dataset.objects.filter(name=DATASET_NAME).first()
    if dataset is None:
        raise SystemExit("no benchmark dataset: run bench/query.py first")
    count = Item.objects.filter(dataset=dataset).count()
    client = Client()
    client.force_login(dataset.owner)
    middle = (
        Item.objects.filter(dataset=dataset).order_by("id").values_list("id", flat=True)[count // 2]
    )
    pages = {
        "grid": f"/datasets/{dataset.pk}/",
        "grid, label facet": f"/datasets/{dataset.pk}/?label=truck",
        "grid, query": (
            f"/datasets/{dataset.pk}/?query=metadata.weather%20%3D%20%22rain%22"
            "%20AND%20annotations.car%20%3E%3D%202"
        ),
        "grid, deep page": f"/datasets/{dataset.pk}/?after={middle}",
    }
    print(f"{count:,} items in the dataset")
    # The process's first request pays for imports and template compilation (about
    # 250 ms here), which is not what "cold caches" measures: pay it on another page.
    client.get("/")
    rows = []
    for name, url in pages.items():
        cache.clear()
        start = time.perf_counter()
        response = client.get(url)
        cold = (time.perf_counter() - start) * 1000
        assert response.status_code == 200, (url, response.status_code)
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            client.get(url)
            times.append((time.perf_counter() - start) * 1000)
        p50 = statistics.median(times)
        rows.append(
            (f"{name}: cold caches", f"{cold:.0f} ms", f"<= {TARGET_MS:.0f} ms", cold <= TARGET_MS)
        )
        rows.append((f"{name}: p50", f"{p50:.0f} ms", f"<= {TARGET_MS:.0f} ms", p50 <= TARGET_MS))
    # The facet sidebar is its own request (the page asks for it once it has loaded); it
    # counts the view (exactly up to 5,000 items, else a sample restricted to the view)
    # when the cache is cold, then serves the cached figures. Off the grid's critical
    # path; its cold figure has a target of its own (the performance issue's, 300 ms).
    for name, url in pages.items():
        panel = url.replace(f"/datasets/{dataset.pk}/", f"/datasets/{dataset.pk}/facets", 1)
        cache.clear()
        start = time.perf_counter()
        assert client.get(panel).status_code == 200
        cold = (time.perf_counter() - start) * 1000
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            client.get(panel)
            times.append((time.perf_counter() - start) * 1000)
        rows.append(
            (
                f"facet sidebar, {name}: cold",
                f"{cold:.0f} ms",
                f"<= {TARGET_MS:.0f} ms",
                cold <= TARGET_MS,
            )
        )
        rows.append(
            (
                f"facet sidebar, {name}: p50 (cached)",
                f"{statistics.median(times):.0f} ms",
                "-",
                None,
            )
        )
    if args.score_facets:
        rows += score_facet_rows(client, dataset, pages, args.repeat)
    report(rows)


def _timed(client: Any, url: str, repeat: int, *, clear: bool) -> tuple[float, float]:
    """(first request, p50 of `repeat` more) in ms; the caches cleared first if `clear`."""
    from django.core.cache import cache

    if clear:
        cache.clear()
    start = time.perf_counter()
    response = client.get(url)
    first = (time.perf_counter() - start) * 1000
    assert response.status_code == 200, (url, response.status_code)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        client.get(url)
        times.append((time.perf_counter() - start) * 1000)
    return first, statistics.median(times) if times else first


def plant_scores(dataset: Any) -> str:
    """A finished score run with a random uniqueness (and the two others) for every item."""
    from django.db import connection

    from embeddings.models import EmbeddingModel, ModelKind
    from insights.models import ItemScore, ScoreRun

    model, _ = EmbeddingModel.objects.get_or_create(
        name="bench-planted", dataset=dataset, defaults={"kind": ModelKind.CUSTOM, "dimension": 8}
    )
    if not ItemScore.objects.filter(model=model).exists():
        run = ScoreRun.objects.create(
            dataset=dataset, model=model, neighbors=10, status=ScoreRun.Status.FINISHED
        )
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO insights_itemscore (run_id, dataset_id, model_id, item_id, "
                "knn_distance, centroid_similarity, neighbors, uniqueness, representativeness, "
                "outlier) SELECT %s, %s, %s, id, 0, 0, '{}', random(), random(), random() "
                "FROM curation_item WHERE dataset_id = %s",
                [run.pk, dataset.pk, model.pk, dataset.pk],
            )
            cursor.execute("ANALYZE insights_itemscore")
    return model.name


def score_facet_rows(
    client: Any, dataset: Any, pages: dict[str, str], repeat: int
) -> list[tuple[str, str, str, bool | None]]:
    from urllib.parse import urlencode

    from curation import score_facets

    name = plant_scores(dataset)
    rows: list[tuple[str, str, str, bool | None]] = []
    registered = dict(score_facets._FACETS)
    for label, facets_on in (("no score facets", {}), ("every score facet", registered)):
        score_facets._FACETS.clear()
        score_facets._FACETS.update(facets_on)
        for page_name in ("grid", "grid, query"):
            url = pages[page_name]
            panel = url.replace(f"/datasets/{dataset.pk}/", f"/datasets/{dataset.pk}/facets", 1)
            cold, _ = _timed(client, panel, 0, clear=True)
            # The sidebar is cached now: the page carries it, with the closed entries.
            _, p50 = _timed(client, url, repeat, clear=False)
            rows.append((f"{label}, {page_name}: sidebar cold", f"{cold:.0f} ms", "-", None))
            rows.append(
                (
                    f"{label}, {page_name}: page p50 (sidebar in it)",
                    f"{p50:.0f} ms",
                    f"<= {TARGET_MS:.0f} ms",
                    p50 <= TARGET_MS,
                )
            )
    for facet, field in (("uniqueness", f'uniqueness["{name}"]'), ("quality.blur", "quality.blur")):
        for page_name in ("grid", "grid, query"):
            url = pages[page_name]
            path = url.replace(f"/datasets/{dataset.pk}/", f"/datasets/{dataset.pk}/score-facet", 1)
            joiner = "&" if "?" in path else "?"
            histogram = path + joiner + urlencode({"facet": facet, "field": field})
            cold, cached = _timed(client, histogram, repeat, clear=True)
            rows.append((f"{facet} histogram, {page_name}: cold", f"{cold:.0f} ms", "-", None))
            rows.append((f"{facet} histogram, {page_name}: cached", f"{cached:.0f} ms", "-", None))
    return rows


if __name__ == "__main__":
    main()
