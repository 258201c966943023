"""The admin pages of the embeddings models render, and never expose vectors as fields."""

from __future__ import annotations

from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client

from curation.models import Dataset
from embeddings.models import DuplicateGroup, DuplicateMember, DuplicateRun, Embedding
from tests.embedding_factories import clustered, custom_model, items_with_vectors


def test_every_embeddings_model_is_in_the_admin() -> None:
    registered = set(admin.site._registry)
    missing = {
        m.__name__
        for m in apps.get_app_config("embeddings").get_models()
        if m not in registered
        and m not in (DuplicateMember, apps.get_model("embeddings", "DuplicateEdge"))
    }
    assert missing == set()


def test_the_pages_render_without_vectors(dataset: Dataset) -> None:
    root = User.objects.create_superuser("root", "root@example.com", "root-password-1")
    model = custom_model(dataset, 8)
    items = items_with_vectors(dataset, model, clustered(5, 8, 1))
    run = DuplicateRun.objects.create(dataset=dataset, model=model, threshold=0.9, neighbors=5)
    group = DuplicateGroup.objects.create(run=run, kind="near", representative=items[0], size=1)
    embedding = Embedding.objects.first()
    assert embedding is not None
    client = Client()
    client.force_login(root)

    for path in [
        "embedding/",
        f"embedding/{embedding.pk}/change/",
        "embeddingmodel/",
        f"embeddingmodel/{model.pk}/change/",
        "duplicaterun/",
        f"duplicaterun/{run.pk}/change/",
        "duplicategroup/",
        f"duplicategroup/{group.pk}/change/",
        "datasetsearchdefault/",
    ]:
        response = client.get(f"/admin/embeddings/{path}")
        assert response.status_code == 200, path
        assert b'name="vector"' not in response.content
