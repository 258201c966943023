"""URLs of the embeddings API, mounted at /api/v1/ beside curation's."""

from __future__ import annotations

from django.urls import path

from embeddings import api

DS = "datasets/<int:dataset_id>"

urlpatterns = [
    path(
        f"{DS}/embedding-models", api.EmbeddingModelListView.as_view(), name="api-embedding-models"
    ),
    path(
        f"{DS}/embedding-models/default",
        api.DefaultModelView.as_view(),
        name="api-embedding-model-default",
    ),
    path(
        f"{DS}/embedding-models/<int:model_id>",
        api.EmbeddingModelDetailView.as_view(),
        name="api-embedding-model",
    ),
    path(
        f"{DS}/embedding-models/<int:model_id>/vectors",
        api.VectorsUploadView.as_view(),
        name="api-embedding-vectors",
    ),
    path(f"{DS}/embeddings/jobs", api.EmbedJobView.as_view(), name="api-embedding-jobs"),
    path(f"{DS}/search/item", api.ItemSearchView.as_view(), name="api-search-item"),
    path(f"{DS}/search/text", api.TextSearchView.as_view(), name="api-search-text"),
    path(f"{DS}/search/image", api.ImageSearchView.as_view(), name="api-search-image"),
    path(f"{DS}/search/vector", api.VectorSearchView.as_view(), name="api-search-vector"),
    path(f"{DS}/duplicates", api.DuplicatesView.as_view(), name="api-duplicates"),
    path(f"{DS}/duplicates/apply", api.DuplicatesApplyView.as_view(), name="api-duplicates-apply"),
]
