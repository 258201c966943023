"""`manage.py bootstrap`: what `make run` does before serving, safe to run every time."""

from __future__ import annotations

import io
import stat
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core import checks
from django.core.management import call_command
from django.core.management.base import CommandError
from procrastinate.contrib.django.models import ProcrastinateJob

from curation.authentication import HashedTokenAuthentication
from curation.ingest.services import ingest_enqueue
from curation.jobs import job_run
from curation.management.commands import bootstrap
from curation.models import (
    Annotation,
    ApiToken,
    Dataset,
    Item,
    Job,
    JobStatus,
    Model,
    Prediction,
)
from evaluation.demo import DEMO_RUN_NAME, demo_evaluate
from evaluation.models import EvaluationRun

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def data_dir(settings: Any, tmp_path: Path) -> Path:
    settings.DATA_DIR = tmp_path / "var"
    return settings.DATA_DIR


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("bootstrap", *args, stdout=out)
    return out.getvalue()


def credentials(data_dir: Path) -> dict[str, str]:
    text = (data_dir / "admin-credentials.txt").read_text()
    return dict(
        line.split(": ", 1) for line in text.splitlines() if line and not line.startswith("#")
    )


def test_it_creates_the_admin_and_a_token_once(data_dir: Path) -> None:
    first = run("--no-demo")
    second = run("--no-demo")

    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    assert User.objects.filter(username="admin").count() == 1
    assert ApiToken.objects.filter(user=admin).count() == 1

    saved = credentials(data_dir)
    assert saved["username"] == "admin"
    assert admin.check_password(saved["password"])
    assert HashedTokenAuthentication().authenticate_secret(saved["api_token"])[0] == admin
    assert saved["password"] in first and saved["api_token"] in first
    assert saved["password"] not in second and saved["api_token"] not in second
    assert str(data_dir / "admin-credentials.txt") in second


def test_the_credentials_file_is_private(data_dir: Path) -> None:
    run("--no-demo")
    mode = stat.S_IMODE((data_dir / "admin-credentials.txt").stat().st_mode)
    assert mode == 0o600


def test_an_admin_made_by_hand_keeps_its_password_and_gets_a_token(data_dir: Path) -> None:
    User.objects.create_superuser("admin", "", "my-own-password-1")
    out = run("--no-demo")
    admin = User.objects.get(username="admin")
    assert admin.check_password("my-own-password-1")
    saved = credentials(data_dir)
    assert "password" not in saved
    assert saved["api_token"] in out
    assert "first password" not in out


def test_an_empty_database_gets_the_demo_dataset_and_its_ingest_job(import_root: Path) -> None:
    out = run("--demo-count", "30")

    admin = User.objects.get(username="admin")
    dataset = Dataset.objects.get()
    assert (dataset.name, dataset.owner) == ("demo", admin)
    # Every member reads the description: it names the truth file as they name paths.
    assert "demo/truth.json under the import root" in dataset.description
    assert str(import_root) not in dataset.description
    assert Model.objects.filter(dataset=dataset, name="demo-detector").exists()
    job = Job.objects.get(dataset=dataset)
    assert (job.kind, job.status) == ("ingest", JobStatus.QUEUED)
    manifest = import_root / "demo" / "manifest.jsonl"
    assert job.params["source"] == {"type": "manifest", "path": str(manifest.resolve())}
    assert ProcrastinateJob.objects.filter(
        task_name="nucleus.run_job", args={"job_id": job.pk}
    ).exists()
    assert f"/api/v1/datasets/{dataset.pk}/jobs/{job.pk}" in out

    # What the worker will do: the demo lands whole, with boxes and predictions.
    done = job_run(job_id=job.pk)
    assert done is not None and done.status == JobStatus.SUCCEEDED, done.message if done else None
    assert Item.objects.filter(dataset=dataset).count() == 30
    assert Annotation.objects.filter(dataset=dataset).exists()
    assert Prediction.objects.filter(model__dataset=dataset, model__name="demo-detector").exists()


def test_the_demos_ingest_queues_the_evaluation_of_its_model_once(import_root: Path) -> None:
    run("--demo-count", "30")
    dataset = Dataset.objects.get()
    ingest = Job.objects.get(dataset=dataset)
    assert ingest.params["demo"] is True
    assert not EvaluationRun.objects.exists()  # nothing to evaluate before the ingest

    done = job_run(job_id=ingest.pk)
    assert done is not None and done.status == JobStatus.SUCCEEDED
    queued = EvaluationRun.objects.get()
    assert (queued.name, queued.model.name) == (DEMO_RUN_NAME, "demo-detector")
    assert queued.job is not None and queued.job.status == JobStatus.QUEUED
    assert ProcrastinateJob.objects.filter(
        task_name="nucleus.run_job", args={"job_id": queued.job.pk}
    ).exists()
    # Again (an ingest's end seen twice): still one run.
    assert demo_evaluate(sender=Job, job=done) is None
    assert EvaluationRun.objects.count() == 1

    # What the worker does next: a new user finds a finished evaluation.
    evaluated = job_run(job_id=queued.job.pk)
    assert evaluated is not None and evaluated.status == JobStatus.SUCCEEDED, evaluated.message
    queued.refresh_from_db()
    assert queued.counts["items"] == 30 and 0 < queued.metrics["map"] < 1


def test_another_datasets_ingest_queues_no_evaluation(
    dataset: Dataset, bob: User, import_root: Path
) -> None:
    Model.objects.create(dataset=dataset, name="demo-detector")
    (import_root / "m.jsonl").write_text('{"reference_id": "a"}\n')
    job = ingest_enqueue(dataset=dataset, user=bob, source={"type": "manifest", "path": "m.jsonl"})
    assert job_run(job_id=job.pk).status == JobStatus.SUCCEEDED
    assert not EvaluationRun.objects.exists()


def test_a_second_run_queues_no_second_demo(import_root: Path) -> None:
    run("--demo-count", "12")
    run("--demo-count", "12")
    assert Dataset.objects.count() == 1
    assert Job.objects.count() == 1


def test_a_database_with_datasets_gets_no_demo(dataset: Dataset, import_root: Path) -> None:
    run("--demo-count", "12")
    assert list(Dataset.objects.all()) == [dataset]
    assert not Job.objects.exists()
    assert not (import_root / "demo").exists()


def test_no_demo_leaves_the_database_empty(import_root: Path) -> None:
    run("--no-demo")
    assert not Dataset.objects.exists()


def test_it_stops_with_a_clear_message_without_pgvector(monkeypatch: pytest.MonkeyPatch) -> None:
    error = checks.Error("The PostgreSQL server has no pgvector extension.", id="nucleus.E002")
    monkeypatch.setattr(bootstrap, "check_pgvector", lambda app_configs: [error])
    with pytest.raises(CommandError, match="no pgvector extension") as raised:
        run("--no-demo")
    assert "DATABASE_URL" in str(raised.value)
    assert not User.objects.filter(username="admin").exists()
