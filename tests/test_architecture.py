"""The project's modules form no import cycle, and curation never imports embeddings.

Every import counts: at the top of a module, inside a function, under TYPE_CHECKING. An
import placed in a function hides a cycle from Python but not from a reader, and a
TYPE_CHECKING import is still a dependency the reader must follow (docs: DESIGN.md,
"Dependency direction").
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("curation", "embeddings", "evaluation", "insights", "review", "selection", "nucleus")


def modules_of(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Every module of these packages by dotted name (a package by its __init__.py)."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def import_graph(root: Path, packages: Iterable[str]) -> dict[str, set[str]]:
    """Which of the packages' modules each module imports, anywhere in its body.

    `from a import b` counts as importing the module a.b when there is one, else a;
    `import a.b` as importing a.b (which also runs a's __init__: a is counted too).
    """
    modules = modules_of(root, packages)

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    targets += [".".join(parts[: i + 1]) for i in range(len(parts))]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                targets.append(base)
                targets += [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                module = known(target)
                if module is not None and module != name:
                    graph[name].add(module)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def describe(graph: dict[str, set[str]], component: list[str]) -> str:
    members = set(component)
    return "\n".join(f"  {m} -> {', '.join(sorted(graph[m] & members))}" for m in component)


def test_no_module_imports_itself_through_others() -> None:
    graph = import_graph(ROOT, PACKAGES)
    found = cycles(graph)
    assert not found, "import cycles (imports inside functions count):\n" + "\n\n".join(
        describe(graph, c) for c in found
    )


def imports_between(graph: dict[str, set[str]], source: str, target: str) -> list[str]:
    """Every import by a module of package `source` of a module of package `target`."""
    return sorted(
        f"{a} -> {b}"
        for a, targets in graph.items()
        if a.split(".")[0] == source
        for b in targets
        if b.split(".")[0] == target
    )


def test_curation_never_imports_embeddings() -> None:
    wrong = imports_between(import_graph(ROOT, PACKAGES), "curation", "embeddings")
    assert not wrong, (
        "curation imports embeddings (register a hook in embeddings' AppConfig.ready() "
        "instead; see curation.extensions):\n  " + "\n  ".join(wrong)
    )


def test_curation_never_imports_evaluation() -> None:
    wrong = imports_between(import_graph(ROOT, PACKAGES), "curation", "evaluation")
    assert not wrong, (
        "curation imports evaluation (evaluation builds on curation, never the other way; "
        "register a hook in evaluation's AppConfig.ready() instead):\n  " + "\n  ".join(wrong)
    )


@pytest.mark.parametrize("lower", ["curation", "embeddings", "evaluation"])
def test_nothing_below_imports_insights(lower: str) -> None:
    """insights builds on curation, embeddings and evaluation; none of them imports it."""
    wrong = imports_between(import_graph(ROOT, PACKAGES), lower, "insights")
    assert not wrong, (
        f"{lower} imports insights (insights builds on it, never the other way; register "
        "a hook in insights' AppConfig.ready() instead):\n  " + "\n  ".join(wrong)
    )


@pytest.mark.parametrize("lower", ["curation", "embeddings", "evaluation", "insights"])
def test_nothing_below_imports_review(lower: str) -> None:
    """review builds on curation, evaluation and insights; none of them imports it."""
    wrong = imports_between(import_graph(ROOT, PACKAGES), lower, "review")
    assert not wrong, (
        f"{lower} imports review (review builds on it, never the other way; register "
        "a hook in review's AppConfig.ready() instead):\n  " + "\n  ".join(wrong)
    )


@pytest.mark.parametrize("lower", ["curation", "embeddings", "evaluation", "insights", "review"])
def test_nothing_below_imports_selection(lower: str) -> None:
    """selection builds on curation, embeddings, evaluation and insights; none imports it."""
    wrong = imports_between(import_graph(ROOT, PACKAGES), lower, "selection")
    assert not wrong, (
        f"{lower} imports selection (selection builds on it, never the other way; register "
        "a hook in selection's AppConfig.ready() instead):\n  " + "\n  ".join(wrong)
    )


# ----------------------------------------------------------- the checks can fail


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_it_finds_a_cycle_hidden_inside_a_function(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/low.py": "def f():\n    from app.high import g\n",
            "app/high.py": "from app import low\n",
            "app/free.py": "import app.low\n",
        },
    )
    graph = import_graph(tmp_path, ["app"])
    assert graph["app.high"] == {"app", "app.low"}  # `from app import low` names both
    assert cycles(graph) == [["app.high", "app.low"]]


def test_it_finds_relative_and_type_checking_imports(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/sub/__init__.py": "from .a import x\n",
            "app/sub/a.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..b import y\n"
            ),
            "app/b.py": "from app.sub import a\n",
        },
    )
    graph = import_graph(tmp_path, ["app"])
    assert graph["app.sub"] == {"app.sub.a"}
    assert graph["app.sub.a"] == {"app.b"}
    assert cycles(graph) == [["app.b", "app.sub", "app.sub.a"]]


def test_a_graph_without_cycles_passes(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/low.py": "import json\n",
            "app/high.py": "from app.low import f\nfrom app import low\n",
        },
    )
    assert cycles(import_graph(tmp_path, ["app"])) == []


def test_it_finds_an_import_of_one_package_by_another(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "core/__init__.py": "",
            "core/views.py": "def f():\n    from plugin.search import g\n",
            "plugin/__init__.py": "",
            "plugin/search.py": "from core import views\n",
        },
    )
    graph = import_graph(tmp_path, ["core", "plugin"])
    assert imports_between(graph, "core", "plugin") == ["core.views -> plugin.search"]
    assert imports_between(graph, "plugin", "plugin") == []


# ------------------------------------------------------------ views do not query

# HTML and API views fetch through selectors (reads) and services (writes): a Django
# manager (`Item.objects`) or a raw connection in one of these modules is a query written
# in a view. Module-level code counts too (a DRF view's `queryset = X.objects.all()`).
VIEW_MODULES = (
    "curation/ui",
    "curation/api",
    "curation/views.py",
    "embeddings/api.py",
    "embeddings/ui.py",
    "embeddings/map_ui.py",
    "embeddings/autotag_api.py",
    "embeddings/autotag_ui.py",
    "evaluation/api.py",
    "evaluation/ui.py",
    "evaluation/pages.py",
    "evaluation/classification_pages.py",
    "evaluation/scenario_api.py",
    "evaluation/suite_ui.py",
    "evaluation/outcomes.py",
    "insights/ui.py",
    "insights/api.py",
    "insights/label_error_api.py",
    "insights/label_error_ui.py",
    "review/api.py",
    "review/ui.py",
    "selection/api.py",
    "selection/ui.py",
)
MANAGERS = {"objects", "_default_manager", "_base_manager"}
CONNECTIONS = {"connection", "connections"}

# Modules that still query, each with the reason; an entry goes once the module is clean
# (test_every_exception_is_still_needed says when).
NOT_YET: dict[str, str] = {}


def view_modules(root: Path) -> list[Path]:
    found: list[Path] = []
    for name in VIEW_MODULES:
        path = root / name
        found += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return found


def database_access(path: Path) -> list[str]:
    """Each use of a Django manager, a database connection or a cursor in `path`."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module == "django.db":
            found += [
                f"line {node.lineno}: imports django.db.{alias.name}"
                for alias in node.names
                if alias.name in CONNECTIONS
            ]
        elif isinstance(node, ast.Attribute):
            if node.attr in MANAGERS:
                found.append(f"line {node.lineno}: .{node.attr} (a model manager)")
            elif node.attr == "cursor" or (
                node.attr in CONNECTIONS and ast.unparse(node.value).endswith("db")
            ):
                found.append(f"line {node.lineno}: .{node.attr}")
    return found


def test_views_read_through_selectors() -> None:
    wrong = [
        f"{path.relative_to(ROOT)} {use}"
        for path in view_modules(ROOT)
        if str(path.relative_to(ROOT)) not in NOT_YET
        for use in database_access(path)
    ]
    assert not wrong, (
        "views query the database (move the read to curation/selectors.py, a QuerySet "
        "method or a read module, and call that):\n  " + "\n  ".join(wrong)
    )


def test_every_exception_is_still_needed() -> None:
    clean = [name for name in NOT_YET if not database_access(ROOT / name)]
    assert not clean, f"no longer query the database: take them out of NOT_YET: {clean}"


def test_it_finds_queries_in_views(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "generic.py": (
                "from rest_framework import generics\nfrom app.models import Item\n\n"
                "class ItemList(generics.ListAPIView):\n    queryset = Item.objects.all()\n"
            ),
            "raw.py": (
                "from django.db import connection\n\ndef view(request):\n"
                "    with connection.cursor() as cursor:\n        cursor.execute('SELECT 1')\n"
            ),
            "dotted.py": "import django.db\n\ndef view(request):\n    django.db.connection\n",
            "manager.py": "def view(request, model):\n    return model._default_manager.all()\n",
            "thin.py": (
                "from app import selectors\n\ndef view(request, cursor):\n"
                "    return selectors.items_of(after=cursor.position)\n"
            ),
        },
    )
    assert database_access(tmp_path / "generic.py") == ["line 5: .objects (a model manager)"]
    assert database_access(tmp_path / "raw.py") == [
        "line 1: imports django.db.connection",
        "line 4: .cursor",
    ]
    assert database_access(tmp_path / "dotted.py") == ["line 4: .connection"]
    assert database_access(tmp_path / "manager.py") == [
        "line 2: ._default_manager (a model manager)"
    ]
    assert database_access(tmp_path / "thin.py") == []


# ------------------------------------------------------------------------ module length

LONG = 600  # lines past which a module says at its top why it is one module
REASONS = ("on purpose", "for a reason")


def unexplained_long_modules(root: Path, packages: Iterable[str]) -> list[str]:
    """Modules over LONG lines whose docstring does not say why they are that long."""
    found = []
    for path in modules_of(root, packages).values():
        text = path.read_text()
        if text.count("\n") > LONG and "migrations" not in path.parts:
            doc = ast.get_docstring(ast.parse(text)) or ""
            if not any(reason in doc for reason in REASONS):
                found.append(f"{path.relative_to(root)}: {text.count(chr(10))} lines")
    return found


def test_long_modules_say_why() -> None:
    long = unexplained_long_modules(ROOT, PACKAGES)
    assert not long, (
        f"modules over {LONG} lines without a reason at their top (split by concept, or "
        f"say 'on purpose' and why in the module docstring):\n  " + "\n  ".join(long)
    )


def test_it_finds_long_modules(tmp_path: Path) -> None:
    body = "x = 1\n" * (LONG + 1)
    write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/long.py": '"""Many lines."""\n' + body,
            "pkg/said.py": '"""Long on purpose: one concept."""\n' + body,
            "pkg/short.py": '"""Few."""\n' + "x = 1\n" * 10,
        },
    )
    assert [line.split(":")[0] for line in unexplained_long_modules(tmp_path, ["pkg"])] == [
        "pkg/long.py"
    ]
