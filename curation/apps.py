from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings
from PIL import Image


class CurationConfig(AppConfig):
    name = "curation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Importing registers the system checks (checks) and, in every process (web,
        # worker, CLI), the job runners of export and ingest and run_job (tasks).
        from curation import checks, tasks  # noqa: F401
        from curation.score_facets import register_quality_facets

        # The grid's histograms of the image quality signals; the apps above curation
        # register their scores the same way (insights/apps.py).
        register_quality_facets()

        # Pillow's own decompression-bomb check (a warning above this many pixels, an error
        # above twice that) is process-wide state: set once here, never per call, so that
        # one caller's limit cannot leak into another's. Every decode of untrusted bytes
        # also checks NUCLEUS_MAX_IMAGE_PIXELS itself, right after the header is read.
        Image.MAX_IMAGE_PIXELS = settings.NUCLEUS_MAX_IMAGE_PIXELS
