from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path, register_converter

from curation import views
from curation.storage import MEDIA_KINDS


class MediaKindConverter:
    regex = "|".join(MEDIA_KINDS)

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(MediaKindConverter, "media_kind")

urlpatterns: list[URLPattern | URLResolver] = [
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("media/items/<int:item_id>/<media_kind:kind>", views.item_media, name="item-media"),
    path("", include("curation.ui.urls")),
]
