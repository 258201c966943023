"""Curation without a vector capability: what the embeddings app registers in its
AppConfig.ready() is replaced by curation's defaults, and curation still works."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.test import Client

from curation import extensions
from curation.errors import InvalidInput
from curation.models import Dataset, Item
from curation.services import dataset_delete
from curation.slices import slice_create_from_query
from curation.ui import extensions as ui_extensions
from tests.ui_factories import populate

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_vectors() -> Iterator[None]:
    vectors, panels = extensions.vectors(), ui_extensions.vector_panels()
    extensions.vectors_register(extensions.NoVectors())
    ui_extensions.vector_panels_register(ui_extensions.NoVectorPanels())
    yield
    extensions.vectors_register(vectors)
    ui_extensions.vector_panels_register(panels)


@pytest.fixture
def items(dataset: Dataset) -> list[Item]:
    return populate(dataset, 4)


def test_it_registers_the_embeddings_app_s_capability() -> None:
    assert not isinstance(extensions.vectors(), extensions.NoVectors)
    assert not isinstance(ui_extensions.vector_panels(), ui_extensions.NoVectorPanels)


def test_a_similarity_condition_is_a_400_naming_the_field(
    no_vectors: None, alice: User, dataset: Dataset, items: list[Item]
) -> None:
    with pytest.raises(InvalidInput) as caught:
        slice_create_from_query(
            dataset=dataset,
            user=alice,
            name="like it",
            query="",
            similarity={"reference_id": items[0].reference_id},
            dynamic=False,
        )
    assert caught.value.fields[0]["path"] == "similarity"


def test_the_pages_render_with_no_similarity_search(
    no_vectors: None, alice: User, dataset: Dataset, items: list[Item]
) -> None:
    client = Client()
    client.force_login(alice)
    for url in (
        "/",
        f"/datasets/{dataset.pk}/",
        f"/datasets/{dataset.pk}/?text=cat",
        f"/datasets/{dataset.pk}/items/{items[0].pk}",
        f"/datasets/{dataset.pk}/stats",
        "/jobs/",
    ):
        response = client.get(url)
        assert response.status_code == 200, url
    grid = client.get(f"/datasets/{dataset.pk}/?text=cat").content.decode()
    assert ui_extensions.NO_SIMILARITY in grid


def test_a_dataset_deletes_without_vectors(
    no_vectors: None, dataset: Dataset, items: list[Item]
) -> None:
    dataset_delete(dataset=dataset)
    assert not Item.objects.filter(pk__in=[i.pk for i in items]).exists()
