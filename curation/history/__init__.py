"""Annotation history: every create, change and delete of an annotation, who made it and
through what (ingest job, API, editor, review entry, revert), and reverting one.

- models.py: AnnotationEvent (one write) and AnnotationChange (one annotation in it);
- triggers.py: the PostgreSQL triggers that record them, installed by a migration;
- context.py: change_context(), how a write path says who and through what;
- selectors.py: an item's, an annotation's and a dataset's history, latest changes;
- services.py: reverting a change.

This package imports nothing of curation.models at import time of its __init__ (the
models module imports curation.history.models).
"""

from __future__ import annotations

from curation.history.context import change_context, history_off

__all__ = ["change_context", "history_off"]
