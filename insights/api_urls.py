"""URLs of the insights API, mounted at /api/v1/ beside curation's."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path

dataset_urls: list[URLPattern | URLResolver] = []

urlpatterns = [path("datasets/<int:dataset_id>/", include(dataset_urls))]
