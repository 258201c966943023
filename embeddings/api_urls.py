"""URLs of the embeddings API, mounted at /api/v1/ beside curation's."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path

from embeddings import api, autotag_api

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
    path("autotags", autotag_api.AutotagListView.as_view(), name="api-autotags"),
    path("autotags/<int:autotag_id>", autotag_api.AutotagDetailView.as_view(), name="api-autotag"),
    path(
        "autotags/<int:autotag_id>/rounds",
        autotag_api.AutotagRoundView.as_view(),
        name="api-autotag-rounds",
    ),
    path(
        "autotags/<int:autotag_id>/scores",
        autotag_api.AutotagScoresView.as_view(),
        name="api-autotag-scores",
    ),
    path(
        "autotags/<int:autotag_id>/apply",
        autotag_api.AutotagApplyView.as_view(),
        name="api-autotag-apply",
    ),
]

urlpatterns = [path("datasets/<int:dataset_id>/", include(dataset_urls))]
