"""Helpers for the browser tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User

ROOT = Path(__file__).resolve().parents[2]
# A test run must not rewrite tracked files: pictures go under var/ unless asked for
# (`make screenshots` writes the README's docs/screenshots/).
SCREENSHOTS = Path(os.environ.get("NUCLEUS_SCREENSHOTS_DIR") or ROOT / "var" / "screenshots")


def log_in(page: Any, user: User, password: str) -> None:
    page.goto("/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login/" not in url)


def screenshot(page: Any, name: str, *, full_page: bool = False) -> Path:
    """Save the page as a PNG (docs/screenshots/ via `make screenshots`)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # Lazy thumbnails in view load before the picture is taken.
    page.wait_for_load_state("networkidle")
    page.wait_for_function(
        "Array.from(document.images).filter(i => i.getBoundingClientRect().top < innerHeight)"
        ".every(i => i.complete)"
    )
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
