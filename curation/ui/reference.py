"""The query language's reference (docs/query-language.md), served as a page of the UI so
the query bar can link to it: the same text as the repository's docs, never a copy."""

from __future__ import annotations

import functools
import itertools
import re

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_safe
from markdown_it import MarkdownIt

QUERY_REFERENCE = settings.BASE_DIR / "docs" / "query-language.md"


def _slug(text: str) -> str:
    """A heading's anchor as GitHub writes it, so the page's own #links work."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


@functools.cache
def reference_html() -> SafeString:
    """docs/query-language.md as HTML (raw HTML in it is escaped, not passed through)."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(QUERY_REFERENCE.read_text(encoding="utf-8"))
    for opening, inline in itertools.pairwise(tokens):
        if opening.type == "heading_open":
            opening.attrSet("id", _slug(inline.content.replace("`", "")))
    rendered: str = md.renderer.render(tokens, md.options, {})
    # markdown-it escapes the document's text, and raw HTML is off.
    return mark_safe(rendered)  # noqa: S308


@require_safe
@login_required
def query_reference(request: HttpRequest) -> HttpResponse:
    """The query language's reference page."""
    return render(request, "ui/query_reference.html", {"reference": reference_html()})
