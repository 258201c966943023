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
# axe-core, vendored (tests/browser/vendor/README): the accessibility engine of the checks.
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
# WCAG 2.2 AA as the bar: the A and AA rules of each version up to 2.2.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


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


def axe_violations(
    page: Any, impacts: tuple[str, ...] = ("serious", "critical")
) -> list[dict[str, Any]]:
    """axe-core's WCAG A/AA violations on the page as it is now, those of the given impacts:
    each with its rule id, impact, help text and the CSS targets of the failing nodes (and
    axe's summary of why), so that a failed assertion says what is wrong and where."""
    page.wait_for_load_state("networkidle")
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """async (tags) => {
            const result = await axe.run(document, {runOnly: {type: "tag", values: tags}});
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => ({target: n.target.join(" "), why: n.failureSummary})),
            }));
        }""",
        AXE_TAGS,
    )
    return [v for v in found if v["impact"] in impacts]


def describe_violations(violations: list[dict[str, Any]]) -> str:
    """A failure message: one line per rule, then each failing node and why."""
    lines = []
    for v in violations:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']}")
        lines += [f"    {n['target']}: {n['why']}".replace("\n", " / ") for n in v["nodes"][:8]]
        if len(v["nodes"]) > 8:
            lines.append(f"    ... and {len(v['nodes']) - 8} more")
    return "\n".join(lines)
