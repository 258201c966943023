"""URLs of the embeddings API, mounted at /api/v1/ beside curation's."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path

from embeddings import api

dataset_urls: list[URLPattern | URLResolver] = [
    path("embedding-models", api.EmbeddingModelListView.as_view(), name="api-embedding-models"),
    path(
        "embedding-models/default",
        api.DefaultModelView.as_view(),
        name="api-embedding-model-default",
    ),
    path(
        "embedding-models/<int:model_id>",
        api.EmbeddingModelDetailView.as_view(),
        name="api-embedding-model",
    ),
    path(
        "embedding-models/<int:model_id>/vectors",
        api.VectorsUploadView.as_view(),
        name="api-embedding-vectors",
    ),
    path("embeddings/jobs", api.EmbedJobView.as_view(), name="api-embedding-jobs"),
    path("projections", api.ProjectionJobView.as_view(), name="api-projection-jobs"),
    path("search/item", api.ItemSearchView.as_view(), name="api-search-item"),
    path("search/text", api.TextSearchView.as_view(), name="api-search-text"),
    path("search/image", api.ImageSearchView.as_view(), name="api-search-image"),
    path("search/vector", api.VectorSearchView.as_view(), name="api-search-vector"),
    path("duplicates", api.DuplicatesView.as_view(), name="api-duplicates"),
    path("duplicates/apply", api.DuplicatesApplyView.as_view(), name="api-duplicates-apply"),
]

urlpatterns = [path("datasets/<int:dataset_id>/", include(dataset_urls))]
