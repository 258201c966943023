from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path
from django.views.defaults import page_not_found
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from curation.errors import error_body

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("curation.api_urls")),
    path("api/v1/", include("embeddings.api_urls")),
    path("api/v1/", include("evaluation.api_urls")),
    path("api/v1/", include("insights.api_urls")),
    path("api/v1/", include("review.api_urls")),
    path("api/v1/", include("selection.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("", include("curation.urls")),
    # The embeddings app's buttons in curation's pages (embed, find duplicates).
    path("", include("embeddings.ui_urls")),
    # The evaluation app's pages (a dataset's runs, one run).
    path("", include("evaluation.ui_urls")),
    # The insights app's page (what to look at first).
    path("", include("insights.ui_urls")),
    # The review app's pages (queues, a queue, the review screen).
    path("", include("review.ui_urls")),
    # The selection app's builder (what to label next).
    path("", include("selection.ui_urls")),
]


def handler404(request: HttpRequest, exception: Exception) -> HttpResponse:
    """JSON in the API's error format under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("not_found", "No such API endpoint."), status=404)
    return page_not_found(request, exception)
