"""Shared set-up for benchmarks: a separate database on the embedded server, migrated, and
a bulk builder of synthetic datasets."""

from __future__ import annotations

import os
import random
import resource
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now (for a server the bench starts)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_reset() -> None:
    """Start counting the process's peak RSS (VmHWM) from now, where Linux allows it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss_gb() -> float:
    """The process's peak RSS (VmHWM) in GB; ru_maxrss where /proc is missing."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def report(rows: list[tuple[str, str, str, bool | None]]) -> None:
    """Print figures next to their targets: (name, measured, target, met)."""
    width = max(len(r[0]) for r in rows)
    print()
    print(f"{'measure'.ljust(width)}  {'measured':>18}  {'target':>18}  ok")
    for name, measured, target, met in rows:
        flag = "-" if met is None else ("yes" if met else "NO")
        print(f"{name.ljust(width)}  {measured:>18}  {target:>18}  {flag}")


def items_build(
    name: str,
    n: int,
    batch: int,
    row: Callable[[int, random.Random], dict[str, Any]],
    sha256: Callable[[int], str] = lambda i: f"{i:064x}",
) -> Any:
    """A dataset `name` of `n` items (replacing an older one) written through the bulk
    COPY path `batch` at a time: `row(i, rng)` is item i's record, `sha256(i)` its
    content hash (media are placeholders: 640x480, no bytes in storage)."""
    from django.contrib.auth.models import User

    from curation.bulk.validate import Media, clean_item_record
    from curation.bulk.write import records_write
    from curation.models import Dataset
    from curation.services import dataset_delete

    user, _ = User.objects.get_or_create(username="bench")
    # The service, not QuerySet.delete(): shapes reference models and items without a
    # cascade in the database, so Django's collector fails on a filled dataset.
    for old in Dataset.objects.filter(owner=user, name=name):
        dataset_delete(dataset=old)
    dataset = Dataset.objects.create(owner=user, name=name)
    rng = random.Random(0)
    for offset in range(0, n, batch):
        records = []
        for i in range(offset, min(n, offset + batch)):
            media = Media(
                media_key=f"datasets/{dataset.pk}/media/{i:064x}.jpg",
                thumbnail_key=f"datasets/{dataset.pk}/thumbs/{i:064x}.webp",
                source_uri=f"s3://bench/{i}.jpg",
                width=640,
                height=480,
                sha256=sha256(i),
                byte_size=50_000,
            )
            records.append(clean_item_record(row(i, rng), media=media))
        records_write(dataset=dataset, records=records)
        print(f"  built {min(n, offset + batch):,} / {n:,} items", end="\r", flush=True)
    return dataset
