"""`{{ text|server_paths:request.user }}`: server paths as that user may see them."""

from __future__ import annotations

from typing import Any

from django import template

from curation.fetch import server_paths_hidden

register = template.Library()


@register.filter
def server_paths(value: Any, user: Any) -> Any:
    """Paths relative to the import root for members; whole for staff users."""
    if getattr(user, "is_staff", False):
        return value
    return server_paths_hidden(value)
