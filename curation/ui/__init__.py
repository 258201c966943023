"""The curation UI in the browser: Django templates and htmx over the same services and
selectors as the REST API (see docs/ui.md)."""
