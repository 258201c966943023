"""Similarity search in the UI: by text, by item ("find similar"), by an uploaded image;
within the view's filters; scores on the tiles; the random-weights banner."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from curation.jobs import job_run
from curation.models import Dataset, Item, Job
from curation.ui.scores import distance_texts
from embeddings.models import EmbeddingModel
from embeddings.services import embed_job_start
from tests.embedding_factories import tiny_clip_fixture  # noqa: F401
from tests.ui_factories import populate, scene

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(bob: User) -> Client:
    client = Client()
    client.force_login(bob)
    return client


@pytest.fixture
def items(dataset: Dataset, alice: User, tiny_clip: str) -> list[Item]:
    made = populate(dataset, 10)
    job = job_run(job_id=embed_job_start(dataset=dataset, user=alice, enqueue=False).pk)
    assert job.status == "succeeded", job.message
    return made


def scored_tiles(response: Any) -> list[tuple[int, float]]:
    body = response.content.decode()
    tiles = re.findall(
        r'data-id="(\d+)".*?(?:class="tile-score"[^>]*data-score="([0-9.\-]+)"|class="tile-actions")',
        body,
        re.S,
    )
    return [(int(i), float(s)) for i, s in tiles if s]


def test_a_text_search_shows_scored_results_best_first(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    response = client.get(f"/datasets/{dataset.pk}/", {"text": "a red car", "limit": "4"})
    assert response.status_code == 200
    tiles = scored_tiles(response)
    assert len(tiles) == 4
    scores = [s for _, s in tiles]
    assert scores == sorted(scores, reverse=True)
    body = response.content.decode()
    assert "text: “a red car”" in body
    assert 'rel="next"' in body  # more results on the next page


def test_find_similar_puts_the_query_item_first_and_never_among_the_results(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    query = items[3]
    response = client.get(f"/datasets/{dataset.pk}/", {"like": query.pk})
    body = response.content.decode()
    first = re.search(r'class="tile is-query"[^>]*data-id="(\d+)"', body)
    assert first and int(first.group(1)) == query.pk
    assert query.pk not in [i for i, _ in scored_tiles(response)]
    assert len(scored_tiles(response)) == len(items) - 1


def test_search_stays_within_the_filters_of_the_view(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    response = client.get(f"/datasets/{dataset.pk}/", {"text": "street", "metadata.weather": "fog"})
    fog = {i.pk for i in items if i.metadata["weather"] == "fog"}
    assert {i for i, _ in scored_tiles(response)} == fog


def test_a_search_by_uploaded_image_gets_a_shareable_url(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    data, _, _ = scene(4)
    upload = SimpleUploadedFile("query.jpg", data, content_type="image/jpeg")
    response = client.post(
        f"/datasets/{dataset.pk}/search/image",
        {
            "image": upload,
            "view": "metadata.weather=rain&after=5",
            "next": f"/datasets/{dataset.pk}/",
        },
    )
    assert response.status_code == 302
    location = response["Location"]
    assert re.fullmatch(
        rf"/datasets/{dataset.pk}/\?metadata.weather=rain&image=[0-9a-f]{{64}}", location
    )
    results = Client()
    results.force_login(User.objects.get(username="victor"))  # a link shared with a viewer
    shown = scored_tiles(results.get(location))
    rain = {i.pk for i in items if i.metadata["weather"] == "rain"}
    assert shown and {i for i, _ in shown} == rain


def test_an_upload_that_is_not_an_image_is_reported_and_not_kept(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    upload = SimpleUploadedFile("notes.txt", b"not an image", content_type="text/plain")
    response = client.post(f"/datasets/{dataset.pk}/search/image", {"image": upload})

    assert response.status_code == 302 and "image=" not in response["Location"]
    [message] = [str(m) for m in get_messages(response.wsgi_request)]
    assert message.startswith("image: is not an image in a supported format")
    assert not default_storage.exists(f"datasets/{dataset.pk}/uploads/search")


def test_an_image_search_without_a_file_says_so(client: Client, dataset: Dataset) -> None:
    response = client.post(f"/datasets/{dataset.pk}/search/image", {})
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Pick an image file to search by."
    ]


def test_the_random_weights_banner_shows_wherever_search_is_used(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    for url in [
        "/",
        f"/datasets/{dataset.pk}/",
        f"/datasets/{dataset.pk}/items/{items[0].pk}",
        f"/datasets/{dataset.pk}/stats",
    ]:
        assert 'data-testid="random-weights-banner"' in client.get(url).content.decode(), url


def test_distances_get_the_digits_that_tell_results_apart() -> None:
    # Three decimals of similarity printed all of these as 1.000 / 0.999.
    assert distance_texts([0.99962, 0.99958, 0.9991]) == ["0.00038", "0.00042", "0.00090"]
    assert distance_texts([0.8, 0.75]) == ["0.200", "0.250"]
    assert distance_texts([1.0, 1.0]) == ["0.000", "0.000"]  # equal scores may read equal
    assert distance_texts([0.5, 0.5 - 1e-12]) == ["0.500", "0.500"]  # past 8 digits: equal
    assert distance_texts([]) == []


def tile_scores(response: Any) -> list[tuple[int, str, float]]:
    """Each scored tile's rank, distance as shown, and score."""
    found = re.findall(
        r'class="tile-score" data-rank="(\d+)" data-score="([0-9.\-]+)"[^>]*>#\d+ · ([0-9.]+)<',
        response.content.decode(),
    )
    return [(int(rank), text, float(score)) for rank, score, text in found]


def test_results_show_their_rank_and_a_distance_that_differs_between_them(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    response = client.get(f"/datasets/{dataset.pk}/", {"text": "a red car", "limit": "4"})
    shown = tile_scores(response)
    assert [rank for rank, _, _ in shown] == [1, 2, 3, 4]
    for (_, text_a, score_a), (_, text_b, score_b) in itertools.pairwise(shown):
        if score_a - score_b > 1e-8:
            assert text_a != text_b, shown
    for _, text, score in shown:
        assert float(text) == pytest.approx(1 - score, abs=1e-3)
    # The next page goes on counting.
    more = client.get(f"/datasets/{dataset.pk}/", {"text": "a red car", "limit": "4", "page": "1"})
    assert [rank for rank, _, _ in tile_scores(more)] == [5, 6, 7, 8]


def test_scores_of_a_random_weights_model_say_they_mean_nothing(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    grid = client.get(f"/datasets/{dataset.pk}/", {"text": "a red car"}).content.decode()
    item = client.get(f"/datasets/{dataset.pk}/items/{items[0].pk}").content.decode()
    for body in (grid, item):
        assert 'data-testid="random-scores"' in body
        assert "random weights: these distances" in body
    EmbeddingModel.objects.update(random_weights=False)  # as if it had real weights
    grid = client.get(f"/datasets/{dataset.pk}/", {"text": "a red car"}).content.decode()
    item = client.get(f"/datasets/{dataset.pk}/items/{items[0].pk}").content.decode()
    for body in (grid, item):
        assert 'data-testid="random-scores"' not in body
        assert 'class="tile-score"' in body or 'data-testid="neighbours"' in body


def test_the_item_view_shows_its_nearest_neighbours(
    client: Client, dataset: Dataset, items: list[Item]
) -> None:
    body = client.get(f"/datasets/{dataset.pk}/items/{items[0].pk}").content.decode()
    strip = re.search(r'data-testid="neighbours">(.*?)</div>', body, re.S).group(1)
    linked = [int(i) for i in re.findall(rf'href="/datasets/{dataset.pk}/items/(\d+)"', strip)]
    assert len(linked) == len(items) - 1
    assert items[0].pk not in linked


def test_without_embeddings_search_is_off_and_says_why(alice: User, dataset: Dataset) -> None:
    populate(dataset, 2)
    client = Client()
    client.force_login(alice)
    body = client.get(f"/datasets/{dataset.pk}/?text=car").content.decode()
    assert "no embeddings yet" in body
    assert (
        'name="text" value="car" placeholder="Search by text…" aria-label="Text search" disabled'
        in body
    )
    assert 'data-testid="random-weights-banner"' not in body


def test_a_curator_starts_an_embedding_job_from_the_ui(
    client: Client, dataset: Dataset, tiny_clip: str
) -> None:
    populate(dataset, 2)
    response = client.post(f"/datasets/{dataset.pk}/embed")
    assert response.status_code == 302
    job = Job.objects.get(kind="embed")
    assert job_run(job_id=job.pk).status == "succeeded"
