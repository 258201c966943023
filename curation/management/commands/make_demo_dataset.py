"""Write the generated demo dataset: street scenes, boxes, metadata, one model's predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from curation.demo.dataset import demo_generate


def default_demo_folder() -> Path:
    """Where the demo lives: inside the first import root, so it can be ingested from there."""
    return Path(settings.NUCLEUS_IMPORT_ROOTS[0]) / "demo"


class Command(BaseCommand):
    help = (
        "Draw the demo dataset (JPEG street scenes + manifest.jsonl + truth.json). "
        "Offline and deterministic for a seed; skipped when the folder already holds it."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--out", type=Path, default=None, help="Folder (default: <import root>/demo)."
        )
        parser.add_argument(
            "--count", type=int, default=2000, help="Number of images (default 2000)."
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--processes", type=int, default=None, help="Drawing processes (default: CPUs, max 4)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["count"] < 1:
            raise CommandError("--count must be at least 1")
        folder = options["out"] or default_demo_folder()
        result = demo_generate(
            folder=folder,
            count=options["count"],
            seed=options["seed"],
            workers=options["processes"],
            progress=lambda msg: self.stdout.write(msg),
        )
        if not result.generated:
            self.stdout.write(
                f"{result.folder} already holds the demo dataset (seed {options['seed']}, "
                f"{result.count} images); nothing to do."
            )
        self.stdout.write(f"manifest: {result.manifest}")
