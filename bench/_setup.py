"""Shared set-up for benchmarks: a separate database on the embedded server, migrated."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_django(db_name: str = "nucleus_bench") -> None:
    """Point Django at a benchmark database (never the service's own) and migrate it."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nucleus.settings")
    os.environ["NUCLEUS_DB_NAME"] = os.environ.get("NUCLEUS_BENCH_DB_NAME", db_name)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def report(rows: list[tuple[str, str, str, bool | None]]) -> None:
    """Print figures next to their targets: (name, measured, target, met)."""
    width = max(len(r[0]) for r in rows)
    print()
    print(f"{'measure'.ljust(width)}  {'measured':>18}  {'target':>18}  ok")
    for name, measured, target, met in rows:
        flag = "-" if met is None else ("yes" if met else "NO")
        print(f"{name.ljust(width)}  {measured:>18}  {target:>18}  {flag}")
