"""The embedding map: the projection job (PCA, UMAP, resume), its binary endpoints (points,
colours, the grid's highlight), selections into slices and tags, and who may read them."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from django.test import Client

from curation.jobs import job_run
from curation.models import Dataset, Item, Job, JobStatus, Slice, Tag
from embeddings import projection as proj
from embeddings.models import EmbeddingModel, Projection, ProjectionPoint
from embeddings.projection import points_in_polygon, projection_job_start
from tests.embedding_factories import custom_model, items_with_vectors

DIM = 16


class Crash(BaseException):
    pass


def two_clusters(n: int, seed: int = 0) -> np.ndarray:
    """`n` vectors: the first half around one centre, the second around another, far apart."""
    rng = np.random.default_rng(seed)
    a, b = np.zeros(DIM), np.zeros(DIM)
    a[0], b[1] = 1.0, 1.0
    half = n // 2
    points = np.vstack(
        [a + 0.05 * rng.normal(size=(half, DIM)), b + 0.05 * rng.normal(size=(n - half, DIM))]
    )
    return points.astype(np.float32)


@pytest.fixture(name="mapped")
def mapped_fixture(dataset: Dataset) -> dict[str, Any]:
    """40 items in two clusters (v-00000..19 and v-00020..39), with metadata to colour by."""
    model = custom_model(dataset, DIM)
    metadata = [
        {"weather": "rain" if i % 2 else "sun", **({"score": i / 10} if i % 3 else {})}
        for i in range(40)
    ]
    items = items_with_vectors(dataset, model, two_clusters(40), metadata=metadata, index=False)
    return {
        "model": model,
        "items": items,
        "first": {i.pk for i in items[:20]},
        "second": {i.pk for i in items[20:]},
    }


def coords_of(projection: Projection) -> dict[int, tuple[float, float]]:
    return {p.item_id: (p.x, p.y) for p in ProjectionPoint.objects.filter(projection=projection)}


def separated(coords: dict[int, tuple[float, float]], first: set[int], second: set[int]) -> bool:
    """The two groups' centres are further apart than three times either group's radius."""
    a = np.array([coords[i] for i in first])
    b = np.array([coords[i] for i in second])
    gap = np.linalg.norm(a.mean(0) - b.mean(0))
    radius = max(
        np.linalg.norm(a - a.mean(0), axis=1).max(), np.linalg.norm(b - b.mean(0), axis=1).max()
    )
    return bool(gap > 3 * radius)


def run_projection(dataset: Dataset, user: Any, model: EmbeddingModel, **kw: Any) -> Projection:
    job = projection_job_start(dataset=dataset, user=user, model=model, **kw)
    assert job_run(job_id=job.pk).status == JobStatus.SUCCEEDED
    return Projection.objects.get(job=job)


# ------------------------------------------------------------------------------ the job


def test_pca_keeps_two_separated_clusters_apart(
    dataset: Dataset, alice: Any, mapped: dict[str, Any]
) -> None:
    projection = run_projection(dataset, alice, mapped["model"], sample=10)

    coords = coords_of(projection)
    assert set(coords) == mapped["first"] | mapped["second"]
    assert separated(coords, mapped["first"], mapped["second"])
    assert projection.status == Projection.Status.FINISHED
    assert projection.point_count == 40 and projection.sample_size == 10
    xs, ys = zip(*coords.values(), strict=True)
    assert (projection.x_min, projection.x_max) == (min(xs), max(xs))
    assert (projection.y_min, projection.y_max) == (min(ys), max(ys))


def test_umap_runs_on_a_small_set_and_places_the_rest(
    dataset: Dataset, alice: Any, mapped: dict[str, Any]
) -> None:
    projection = run_projection(
        dataset, alice, mapped["model"], method="umap", sample=30, n_neighbors=5
    )

    coords = coords_of(projection)
    assert set(coords) == mapped["first"] | mapped["second"]  # 30 fitted, 10 transformed
    assert projection.sample_size == 30
    assert separated(coords, mapped["first"], mapped["second"])


def test_the_job_resumes_after_a_crash_without_redoing_a_chunk(
    dataset: Dataset, alice: Any, mapped: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(proj, "CHUNK", 8)
    written: list[list[int]] = []
    real = proj.points_write

    def crash_on_third_write(*, projection: Any, item_ids: Any, coords: Any) -> int:
        written.append([int(i) for i in item_ids])
        if len(written) == 3:
            raise Crash()
        return real(projection=projection, item_ids=item_ids, coords=coords)

    monkeypatch.setattr(proj, "points_write", crash_on_third_write)
    job = projection_job_start(dataset=dataset, user=alice, model=mapped["model"], sample=6)
    with pytest.raises(Crash):
        job_run(job_id=job.pk)
    assert job_run(job_id=job.pk).status == JobStatus.SUCCEEDED

    # The sample (first write) and the first chunk committed before the crash; the resumed
    # run starts at the crashed chunk and never writes an item of the committed ones again.
    committed = set(written[0]) | set(written[1])
    again = [i for batch in written[3:] for i in batch]
    assert not committed & set(again)
    assert set(written[2]) <= set(again)
    assert len(again) == len(set(again))
    projection = Projection.objects.get(job=job)
    assert Projection.objects.filter(dataset=dataset).count() == 1
    assert ProjectionPoint.objects.filter(projection=projection).count() == 40
    # The same map as a run that was never interrupted (the fit is seeded).
    monkeypatch.setattr(proj, "points_write", real)
    fresh = run_projection(dataset, alice, mapped["model"], sample=6)
    a, b = coords_of(projection), coords_of(fresh)
    assert all(np.allclose(a[i], b[i], atol=1e-5) for i in a)


def test_points_in_polygon_uses_the_even_odd_rule() -> None:
    coords = np.array([[0.5, 0.5], [2.0, 2.0], [0.1, 0.9], [-0.1, 0.5]], dtype=np.float32)
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float64)

    assert points_in_polygon(coords, square).tolist() == [True, False, True, False]


# ---------------------------------------------------------------------------- endpoints


def unframe(body: bytes) -> tuple[dict[str, Any], bytes]:
    n = int(np.frombuffer(body[:4], dtype="<u4")[0])
    header = json.loads(body[4 : 4 + n])
    start = 4 + n + (-(4 + n)) % 8
    return header, body[start:]


@pytest.fixture(name="projected")
def projected_fixture(dataset: Dataset, alice: Any, mapped: dict[str, Any]) -> dict[str, Any]:
    projection = run_projection(dataset, alice, mapped["model"], sample=40)
    return {**mapped, "projection": projection}


def browser(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def url(dataset: Dataset, what: str) -> str:
    return f"/datasets/{dataset.pk}/map/{what}"


def test_points_come_as_ids_and_float32_coordinates_in_item_order(
    dataset: Dataset, victor: Any, projected: dict[str, Any]
) -> None:
    response = browser(victor).get(url(dataset, "points"))

    assert response.status_code == 200 and response["Content-Type"] == "application/octet-stream"
    header, rest = unframe(response.content)
    assert header["count"] == 40 and header["id_type"] == "uint32"
    ids = np.frombuffer(rest[: 4 * 40], dtype="<u4")
    xy = np.frombuffer(rest[4 * 40 :], dtype="<f4").reshape(40, 2)
    assert ids.tolist() == sorted(projected["first"] | projected["second"])
    stored = coords_of(projected["projection"])
    assert all(np.allclose(xy[k], stored[int(i)], atol=1e-5) for k, i in enumerate(ids))
    p = projected["projection"]
    assert header["bounds"] == [p.x_min, p.y_min, p.x_max, p.y_max]


def test_colours_of_a_text_value_are_codes_with_a_legend(
    dataset: Dataset, victor: Any, projected: dict[str, Any]
) -> None:
    response = browser(victor).get(url(dataset, "colors"), {"color": "metadata.weather"})

    header, rest = unframe(response.content)
    assert header["kind"] == "categorical" and sorted(header["legend"]) == ["rain", "sun"]
    codes = np.frombuffer(rest, dtype="u1")
    items = sorted(projected["items"], key=lambda i: i.pk)
    assert [header["legend"][c - 1] for c in codes] == [i.metadata["weather"] for i in items]


def test_colours_of_a_number_are_float32_with_nan_where_missing(
    dataset: Dataset, victor: Any, projected: dict[str, Any]
) -> None:
    response = browser(victor).get(url(dataset, "colors"), {"color": "metadata.score"})

    header, rest = unframe(response.content)
    assert header["kind"] == "numeric" and header["range"] == pytest.approx([0.1, 3.8])
    values = np.frombuffer(rest, dtype="<f4")
    items = sorted(projected["items"], key=lambda i: i.pk)
    for value, item in zip(values, items, strict=True):
        if "score" in item.metadata:
            assert value == pytest.approx(item.metadata["score"])
        else:
            assert np.isnan(value)


def test_a_colour_that_names_no_value_is_a_400_naming_color(
    dataset: Dataset, victor: Any, projected: dict[str, Any]
) -> None:
    response = browser(victor).get(url(dataset, "colors"), {"color": "metadata.weather ="})

    assert response.status_code == 400 and b"color" in response.content


def test_the_grid_filter_highlights_its_points(
    dataset: Dataset, victor: Any, projected: dict[str, Any]
) -> None:
    grid = 'query=metadata.weather = "rain"'
    response = browser(victor).get(url(dataset, "highlight"), {"grid": grid})

    header, rest = unframe(response.content)
    mask = np.unpackbits(np.frombuffer(rest, dtype="u1"), bitorder="little")[:40].astype(bool)
    items = sorted(projected["items"], key=lambda i: i.pk)
    assert mask.tolist() == [i.metadata["weather"] == "rain" for i in items]
    assert header["matching"] == 20 and header["filtered"] is True


def polygon_around(projection: Projection, ids: set[int]) -> list[list[float]]:
    """A box around these items' points, a little larger."""
    pts = np.array([xy for i, xy in coords_of(projection).items() if i in ids])
    (x0, y0), (x1, y1) = pts.min(0) - 1e-3, pts.max(0) + 1e-3
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def test_a_selection_becomes_a_slice_to_open_in_the_grid_and_a_tag(
    dataset: Dataset, bob: Any, projected: dict[str, Any]
) -> None:
    client = browser(bob)
    polygon = polygon_around(projected["projection"], projected["first"])

    opened = client.post(
        url(dataset, "select"),
        {"polygon": polygon, "action": "grid"},
        content_type="application/json",
    ).json()
    tagged = client.post(
        url(dataset, "select"),
        {"polygon": polygon, "action": "tag", "name": "cluster-a"},
        content_type="application/json",
    ).json()

    made = Slice.objects.get(pk=opened["id"])
    assert made.name == "map selection 1" and opened["count"] == 20
    assert set(made.items.values_list("id", flat=True)) == projected["first"]
    assert opened["url"] == f"/datasets/{dataset.pk}/slices/{made.pk}/"
    tag = Tag.objects.get(dataset=dataset, name="cluster-a")
    assert set(tag.items.values_list("id", flat=True)) == projected["first"]
    assert tagged["added"] == 20


def test_the_page_says_when_the_map_is_not_semantic(
    dataset: Dataset, victor: Any, projected: dict[str, Any]
) -> None:
    model = projected["model"]
    page = browser(victor).get(url(dataset, ""))
    assert page.status_code == 200 and b"map-not-semantic" not in page.content
    EmbeddingModel.objects.filter(pk=model.pk).update(random_weights=True)

    page = browser(victor).get(url(dataset, ""))
    assert b"map-not-semantic" in page.content and b'data-testid="map-canvas"' in page.content


# --------------------------------------------------------------------------- permissions


@pytest.mark.parametrize("what", ["", "points", "colors?color=metadata.weather", "highlight"])
def test_a_stranger_gets_404_for_every_read(
    dataset: Dataset, charlie: Any, projected: dict[str, Any], what: str
) -> None:
    assert browser(charlie).get(url(dataset, what)).status_code == 404
    assert Client().get(url(dataset, what)).status_code == 302  # to the login page


def test_viewers_read_but_cannot_select_or_start_a_job(
    dataset: Dataset, victor: Any, charlie: Any, projected: dict[str, Any]
) -> None:
    client = browser(victor)
    polygon = polygon_around(projected["projection"], projected["first"])
    body = {"polygon": polygon, "action": "grid"}

    selected = client.post(url(dataset, "select"), body, content_type="application/json")
    started = client.post(url(dataset, "start"), {"method": "pca"})
    stranger = browser(charlie).post(url(dataset, "select"), body, content_type="application/json")

    assert selected.status_code == 403 and started.status_code == 403
    assert stranger.status_code == 404
    assert not Slice.objects.filter(dataset=dataset).exists()
    assert Projection.objects.filter(dataset=dataset).count() == 1


def test_a_bad_polygon_is_a_400_naming_it(
    dataset: Dataset, bob: Any, projected: dict[str, Any]
) -> None:
    response = browser(bob).post(
        url(dataset, "select"),
        {"polygon": [[0, 0]], "action": "grid"},
        content_type="application/json",
    )

    assert response.status_code == 400 and b"polygon" in response.content
    assert Item.objects.filter(dataset=dataset).count() == 40


def test_the_api_starts_a_projection_for_curators_only(
    dataset: Dataset,
    client_for: Any,
    bob: Any,
    victor: Any,
    charlie: Any,
    mapped: dict[str, Any],
) -> None:
    path = f"/api/v1/datasets/{dataset.pk}/projections"

    started = client_for(bob).post(path, {"method": "pca", "sample": 12}, format="json")
    assert client_for(victor).post(path, {}, format="json").status_code == 403
    assert client_for(charlie).post(path, {}, format="json").status_code == 404
    bad = client_for(bob).post(path, {"method": "tsne"}, format="json")

    assert started.status_code == 202 and started.json()["kind"] == "project"
    assert bad.status_code == 400 and "method" in bad.content.decode()
    finished = job_run(job_id=started.json()["id"])
    assert finished.status == JobStatus.SUCCEEDED
    assert finished.result["sample"] == 12 and finished.result["points"] == 40
    made = Projection.objects.get(dataset=dataset)
    assert made.sample_size == 12 and made.point_count == 40


def test_a_curator_starts_the_job_from_the_map_page(
    dataset: Dataset, bob: Any, mapped: dict[str, Any]
) -> None:
    response = browser(bob).post(url(dataset, "start"), {"method": "umap", "sample": "25"})

    assert response.status_code == 302 and response["Location"] == url(dataset, "")
    job = Job.objects.get(dataset=dataset, kind="project")
    assert job.params["method"] == "umap" and job.params["sample"] == 25
    assert job.params["model_id"] == mapped["model"].pk
