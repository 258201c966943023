"""Embed a dataset's images with a progress bar: `manage.py embed <dataset> [--model] [--all]`."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from curation.errors import CurationError
from curation.jobs import job_run
from curation.models import Dataset, Job, JobStatus
from embeddings.pipeline import MODE_ALL, MODE_MISSING, progress_listener
from embeddings.services import EMBED_JOB, embed_job_start


class Command(BaseCommand):
    help = (
        "Embed a dataset's images (by default only those without a vector yet) with the "
        "configured model or --model. Runs here with a progress bar, or with --background on "
        "a worker. Re-running after an interruption resumes the unfinished job."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("dataset", help="dataset id or name")
        parser.add_argument(
            "--model", help="name of a registered open_clip model (default: configured)"
        )
        parser.add_argument("--all", action="store_true", help="re-embed items that have a vector")
        parser.add_argument("--slice", type=int, help="embed only this slice (id)")
        parser.add_argument(
            "--background", action="store_true", help="queue for a worker and return"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        dataset = self._dataset(options["dataset"])
        mode = MODE_ALL if options["all"] else MODE_MISSING
        job = None if options["background"] else self._unfinished(dataset, options, mode)
        if job is not None:
            self.stderr.write(f"resuming embedding job #{job.pk} ({job.progress_done} items done)")
        else:
            try:
                job = embed_job_start(
                    dataset=dataset,
                    user=None,
                    model_name=options["model"],
                    mode=mode,
                    slice_id=options["slice"],
                    enqueue=options["background"],
                    origin="queue" if options["background"] else "cli",
                )
            except CurationError as exc:
                raise CommandError(exc.message) from None
        if options["background"]:
            self.stdout.write(f"queued embedding job #{job.pk}")
            return
        if job.params.get("model", "").endswith("/random"):
            self.stderr.write(
                self.style.WARNING("RANDOM weights: similarity will not be semantic.")
            )

        bar = tqdm(
            desc=f"embed {job.params.get('model')}", unit="img", file=sys.stderr, dynamic_ncols=True
        )

        def show(done: int, total: int | None) -> None:
            if total is not None and bar.total != total:
                bar.total = total
            bar.n = done
            bar.refresh()

        token = progress_listener.set(show)
        try:
            job = job_run(job_id=job.pk)
        finally:
            progress_listener.reset(token)
            bar.close()
        if job is None:
            raise CommandError("the embedding job vanished (deleted meanwhile?)")
        if job.status != JobStatus.SUCCEEDED:
            raise CommandError(f"embedding job #{job.pk} {job.status}: {job.message}")
        for error in job.errors[:10]:
            self.stderr.write(f"  {error.get('reference_id')}: {error.get('message')}")
        result = job.result
        self.stdout.write(
            f"embedded {result['embedded']} of {result['total']} items with {result['model']}"
            f" ({result['failed']} failed)"
        )

    def _dataset(self, key: str) -> Dataset:
        if key.isdigit():
            found = Dataset.objects.filter(pk=int(key)).first()
            if found:
                return found
        matches = list(Dataset.objects.filter(name=key)[:2])
        if len(matches) != 1:
            raise CommandError(
                f"no dataset {key!r}"
                if not matches
                else f"several datasets are named {key!r}; use its id"
            )
        return matches[0]

    def _unfinished(self, dataset: Dataset, options: dict[str, Any], mode: str) -> Job | None:
        """An embedding job this command ran in the foreground and that was interrupted.

        Jobs from the API or --background belong to workers, which resume them themselves.
        """
        jobs = Job.objects.filter(
            kind=EMBED_JOB,
            dataset=dataset,
            status=JobStatus.RUNNING,
            params__origin="cli",
            params__mode=mode,
        ).order_by("-id")
        for job in jobs:
            same_model = options["model"] is None or job.params.get("model") == options["model"]
            if same_model and job.params.get("slice_id") == options["slice"]:
                return job
        return None
