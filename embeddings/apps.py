from __future__ import annotations

import threading
from typing import Any

from django.apps import AppConfig


class EmbeddingsConfig(AppConfig):
    name = "embeddings"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from curation.extensions import vectors_register
        from curation.query import register_field
        from curation.score_facets import register_score_facet
        from curation.signals import worker_started
        from curation.ui.extensions import (
            DatasetTab,
            SelectionAction,
            dataset_tab_register,
            selection_action_register,
            vector_panels_register,
        )
        from embeddings import tasks  # noqa: F401  (registers the embed and duplicates runners)
        from embeddings.autotag_query import (
            AUTOTAG,
            COMPLETION,
            SCORE_FACET,
            autotag_field,
            autotag_value,
        )
        from embeddings.extensions import EmbeddingsVectors
        from embeddings.ui import EmbeddingsPanels
        from embeddings.vectors import ef_search_default

        # curation never imports this app: it calls what is registered here.
        vectors_register(EmbeddingsVectors())
        vector_panels_register(EmbeddingsPanels())
        # The dataset header's "Map" tab: the embedding map (embeddings/map_ui.py).
        dataset_tab_register(DatasetTab("Map", "embeddings-ui:map", "map"))
        # Autotags (embeddings/autotag.py): their page, and `autotag[<name>] > 0.8`, a query
        # field and a sort key of the grid and the item list.
        dataset_tab_register(DatasetTab("Autotag", "embeddings-ui:autotags", "autotag"))
        # The grid's selection bar opens the new-autotag form with the selection as positives.
        selection_action_register(
            SelectionAction(
                "Autotag from selection", "embeddings-ui:autotag-from-selection", "autotag"
            )
        )
        register_field(
            AUTOTAG, autotag_field, bracket=True, value=autotag_value, completion=COMPLETION
        )
        register_score_facet(SCORE_FACET)  # and a histogram facet of the grid's sidebar
        worker_started.connect(_warm_on_worker_start, dispatch_uid="embeddings-index-warm")
        connection_created.connect(ef_search_default, dispatch_uid="embeddings-ef-search")


def _warm_on_worker_start(sender: Any, *, once: bool = False, **kwargs: Any) -> None:
    """A long-running worker warms the vector indexes in the background (embeddings/warm.py);
    a worker that only drains the queue (--once) has no later searches to warm them for."""
    if once:
        return
    from embeddings.warm import indexes_warm_logged

    threading.Thread(target=indexes_warm_logged, name="index-warm", daemon=True).start()
