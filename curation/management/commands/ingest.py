"""Ingest a folder, JSONL manifest or COCO file into a dataset, with a progress bar."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from tqdm import tqdm

from curation.errors import CurationError
from curation.ingest.services import ingest_enqueue
from curation.jobs import job_run
from curation.models import Dataset, Job, JobStatus
from curation.services import dataset_create

SHOWN_ERRORS = 10


def _format_for(path: Path) -> str:
    if path.is_dir():
        return "folder"
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return "manifest"
    if path.suffix.lower() == ".json":
        return "coco"
    raise CommandError(f"cannot tell the format of {path}; pass --format")


class _Progress:
    """Poll the job row from a thread and show its progress on a tqdm bar.

    The job commits its progress at each checkpoint, so another connection sees it while
    the main thread runs the job.
    """

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.bar = tqdm(desc="ingest", unit="item", file=sys.stderr, dynamic_ncols=True)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, name="ingest-progress", daemon=True)

    def _show(self, done: int, total: int | None) -> None:
        if total is not None and self.bar.total != total:
            self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def _poll(self) -> None:
        try:
            while not self.stop.wait(0.5):
                row = Job.objects.filter(pk=self.job_id).values_list(
                    "progress_done", "progress_total"
                )
                for done, total in row:
                    self._show(done, total)
        finally:
            connection.close()  # this thread's own connection

    def __enter__(self) -> _Progress:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def finish(self, job: Job) -> None:
        self._show(job.progress_done, job.progress_total)
        self.bar.close()


class Command(BaseCommand):
    help = (
        "Ingest images (and annotations) into a dataset from a folder, a JSONL manifest or a "
        "COCO detection file. Runs here with a progress bar, or with --background on a worker."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("dataset", help="dataset id or name")
        parser.add_argument("path", help="folder, .jsonl manifest or COCO .json file")
        parser.add_argument("--format", choices=["folder", "manifest", "coco"])
        parser.add_argument(
            "--images-root", help="folder or URL prefix that image paths are relative to"
        )
        parser.add_argument(
            "--labels-from-folders",
            action="store_true",
            help="folder format: label each image with the name of the folder holding it",
        )
        parser.add_argument("--owner", help="username owning the dataset (to find or create it)")
        parser.add_argument(
            "--create", action="store_true", help="create the dataset if it does not exist"
        )
        parser.add_argument(
            "--background", action="store_true", help="queue the job for a worker and return"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"]).expanduser()
        kind = options["format"] or _format_for(path)
        source: dict[str, Any] = {"type": kind, "path": str(path)}
        if kind == "folder":
            if options["images_root"]:
                raise CommandError("--images-root is for manifest and coco files")
            source["labels_from_folders"] = options["labels_from_folders"]
        else:
            if options["labels_from_folders"]:
                raise CommandError("--labels-from-folders is for folders")
            if options["images_root"]:
                source["images_root"] = options["images_root"]
        owner = self._owner(options["owner"], needed=options["create"])
        dataset = self._dataset(options["dataset"], owner, create=options["create"])
        try:
            # The operator's own paths are trusted: they need not lie in an import root.
            job = ingest_enqueue(
                dataset=dataset,
                user=owner or dataset.owner,
                source=source,
                trusted=True,
                enqueue=options["background"],
            )
        except CurationError as exc:
            details = "; ".join(f"{f['path']}: {f['message']}" for f in exc.fields)
            raise CommandError(details or exc.message) from None
        if options["background"]:
            self.stdout.write(f"Queued ingest job {job.pk} into dataset {dataset.pk} ({dataset}).")
            return
        with _Progress(job.pk) as progress:
            finished = job_run(job_id=job.pk)
        assert finished is not None
        progress.finish(finished)
        self._summary(finished)

    def _owner(self, username: str | None, *, needed: bool) -> Any:
        users = get_user_model().objects
        if username:
            try:
                return users.get(username=username)
            except users.model.DoesNotExist:
                raise CommandError(f"no user {username!r}") from None
        if not needed:
            return None
        admins = list(users.filter(is_superuser=True)[:2])
        if len(admins) != 1:
            raise CommandError("--create needs --owner (there is not exactly one superuser)")
        return admins[0]

    def _dataset(self, ref: str, owner: Any, *, create: bool) -> Dataset:
        datasets = Dataset.objects.all()
        if owner is not None:
            datasets = datasets.filter(owner=owner)
        found = list(datasets.filter(pk=int(ref)) if ref.isdigit() else datasets.filter(name=ref))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise CommandError(f"several datasets are named {ref!r}; pass --owner or the id")
        if not create:
            raise CommandError(f"no dataset {ref!r} (pass --create to create it)")
        if ref.isdigit():
            raise CommandError("give a name, not an id, to create a dataset")
        try:
            return dataset_create(owner=owner, name=ref)
        except CurationError as exc:
            raise CommandError(exc.message) from None

    def _summary(self, job: Job) -> None:
        result = job.result or {}
        self.stdout.write(
            f"Ingest job {job.pk} {job.status}: {result.get('created', 0)} created, "
            f"{result.get('updated', 0)} updated, {result.get('unchanged', 0)} unchanged, "
            f"{job.error_count} errors."
        )
        for error in job.errors[:SHOWN_ERRORS]:
            where = error.get("reference_id") or error.get("source")
            line = f" (line {error['line']})" if error.get("line") else ""
            self.stderr.write(f"  {where}{line}: {error.get('message')}")
        if job.error_count > SHOWN_ERRORS:
            self.stderr.write(
                f"  ... and {job.error_count - SHOWN_ERRORS} more (see job {job.pk})."
            )
        if job.status != JobStatus.SUCCEEDED:
            raise CommandError(f"ingest job {job.pk} {job.status}: {job.message}")
