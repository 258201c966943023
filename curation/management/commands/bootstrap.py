"""Get a database ready to serve: migrate, check pgvector, create the admin and the demo.

Every step is idempotent, so `make run` runs this on every start: a second run only says
what is already there. Secrets (the admin's first password and API token) are printed
once and kept in DATA_DIR/admin-credentials.txt, readable by its owner only.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from curation.checks import check_pgvector
from curation.demo.dataset import demo_generate
from curation.demo.items import MODEL_NAME
from curation.fetch import server_paths_hidden
from curation.health import disk_status
from curation.ingest.services import ingest_enqueue
from curation.management.commands.make_demo_dataset import default_demo_folder
from curation.models import ApiToken, Dataset, Job
from curation.services import dataset_create, model_create, token_create

ADMIN_USERNAME = "admin"
TOKEN_NAME = "bootstrap"  # noqa: S105 - a label, not a secret
DEMO_NAME = "demo"


def credentials_path() -> Path:
    return Path(settings.DATA_DIR) / "admin-credentials.txt"


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, without a moment where others could."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    tmp.replace(path)


def saved_credentials() -> dict[str, str]:
    """What earlier runs wrote to the credentials file (username, password, api_token)."""
    known: dict[str, str] = {}
    path = credentials_path()
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition(": ")
            if sep and not line.startswith("#"):
                known[key] = value
    return known


def _credentials_write(*, password: str | None, token: str | None) -> None:
    """Record new secrets, keeping the ones an earlier run wrote."""
    path = credentials_path()
    known = saved_credentials()
    known["username"] = ADMIN_USERNAME
    if password is not None:
        known["password"] = password
    if token is not None:
        known["api_token"] = token
    body = "".join(f"{k}: {v}\n" for k, v in known.items())
    _write_private(
        path,
        f"# nucleus admin credentials, written by manage.py bootstrap, {timezone.now():%Y-%m-%d}.\n"
        "# Change the password after the first login (/admin/password_change/) and delete\n"
        "# this file; the API token works until it is revoked (/api/v1/tokens).\n" + body,
    )


class Command(BaseCommand):
    help = (
        "Prepare the service: apply migrations, check pgvector, create the admin user and an "
        "API token (printed once), and ingest the demo dataset when there are no datasets."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--no-demo", action="store_true", help="Never create the demo dataset.")
        parser.add_argument(
            "--demo-count", type=int, default=2000, help="Images in the demo (default 2000)."
        )
        parser.add_argument("--demo-seed", type=int, default=0)
        parser.add_argument(
            "--base-url", default=None, help="Where the service is reached (default: SITE_URL)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["demo_count"] < 1:
            raise CommandError("--demo-count must be at least 1")
        self.base_url = (options["base_url"] or settings.SITE_URL).rstrip("/")
        self._check_database()
        self.stdout.write("Applying database migrations ...")
        call_command("migrate", interactive=False, verbosity=max(0, options["verbosity"] - 1))
        admin = self._admin()
        self._token(admin)
        if not options["no_demo"]:
            self._demo(admin, count=options["demo_count"], seed=options["demo_seed"])

    def _check_database(self) -> None:
        errors = check_pgvector(None)
        if errors:
            raise CommandError(
                "The database is not usable:\n"
                + "\n".join(f"  {e.msg}" for e in errors)
                + "\nSet DATABASE_URL to a PostgreSQL server with pgvector >= 0.6, or unset it "
                "to use the embedded server (data under NUCLEUS_DATA_DIR)."
            )

    def _admin(self) -> Any:
        users = get_user_model()
        admin = users.objects.filter(username=ADMIN_USERNAME).first()
        if admin is not None:
            saved = "password" in saved_credentials()
            hint = f" (its first password is in {credentials_path()})" if saved else ""
            self.stdout.write(f"Admin user {ADMIN_USERNAME!r} exists{hint}.")
            return admin
        password = secrets.token_urlsafe(12)
        with transaction.atomic():
            admin = users.objects.create_superuser(ADMIN_USERNAME, "", password)
            # Written before the commit: a password nobody can read back is worse than none.
            _credentials_write(password=password, token=None)
        self.stdout.write(
            self.style.SUCCESS(
                f"Created the admin user.\n  username: {ADMIN_USERNAME}\n  password: {password}\n"
                f"  (shown once; also saved, readable only by you, in {credentials_path()})"
            )
        )
        return admin

    def _token(self, admin: Any) -> None:
        if ApiToken.objects.filter(user=admin, name=TOKEN_NAME).exists():
            return
        with transaction.atomic():
            _, secret = token_create(user=admin, name=TOKEN_NAME)
            _credentials_write(password=None, token=secret)
        self.stdout.write(
            self.style.SUCCESS(
                f"Created an API token for {ADMIN_USERNAME}:\n  {secret}\n"
                f"  (shown once; also in {credentials_path()}). Use it as: "
                f"curl -H 'Authorization: Bearer {secret}' {self.base_url}/api/v1/datasets"
            )
        )

    def _demo(self, admin: Any, *, count: int, seed: int) -> None:
        if Dataset.objects.exists():
            return
        disk = disk_status()
        if disk.low:
            # The service must still start on a low disk; the demo would only fill it.
            self.stderr.write(
                f"Not creating the demo dataset: {disk.free_mb} MB of disk free, below "
                f"NUCLEUS_MIN_FREE_DISK_MB ({disk.floor_mb} MB)."
            )
            return
        folder = default_demo_folder()
        self.stdout.write(
            f"The database has no datasets: generating the demo dataset ({count} images) ..."
        )
        result = demo_generate(
            folder=folder, count=count, seed=seed, progress=lambda m: self.stdout.write(f"  {m}")
        )
        with transaction.atomic():
            dataset = dataset_create(
                owner=admin,
                name=DEMO_NAME,
                description=(
                    "Generated street scenes (manage.py make_demo_dataset) with ground-truth "
                    "boxes, "
                    f"predictions of {MODEL_NAME}, planted duplicates and label errors "
                    # The path as members see paths: relative to the import root.
                    f"(listed in {server_paths_hidden(str(result.folder / 'truth.json'))} "
                    "under the import root)."
                ),
            )
            model_create(
                dataset=dataset,
                name=MODEL_NAME,
                description="A simulated detector: jittered boxes, missed small objects, "
                "false positives and class confusions.",
            )
            job = ingest_enqueue(
                dataset=dataset,
                user=admin,
                source={"type": "manifest", "path": str(result.manifest)},
            )
            # Marked as the demo's, for whatever follows its ingest (the evaluation app
            # evaluates demo-detector once the ingest has succeeded).
            job.params = {**job.params, "demo": True}
            job.save(update_fields=["params"])
        self.stdout.write(
            self.style.SUCCESS(
                f"Created dataset {DEMO_NAME!r} (id {dataset.pk}) and queued ingest job {job.pk}; "
                "the job worker ingests it in the background."
            )
        )
        self.stdout.write(
            f"  Watch it: {self.base_url}/api/v1/datasets/{dataset.pk}/jobs/{job.pk} "
            f"or {self.base_url}/admin/curation/job/{job.pk}/change/"
        )


def pending_demo_job() -> Job | None:
    """The demo's ingest job while it has not finished, for progress reports."""
    job = Job.objects.filter(dataset__name=DEMO_NAME, kind="ingest").order_by("-id").first()
    return job if job is not None and not job.is_finished else None
