"""`manage.py embed`: embeds in the foreground with a progress bar, resumes, reports."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from curation.models import Dataset, Job, JobStatus
from embeddings import pipeline
from embeddings.models import Embedding
from tests.embedding_factories import items_with_images, tiny_clip_fixture  # noqa: F401

pytestmark = pytest.mark.usefixtures("tiny_clip")


class Crash(BaseException):
    pass


def test_it_embeds_a_dataset_named_on_the_command_line(dataset: Dataset) -> None:
    items_with_images(dataset, 5)
    out, err = StringIO(), StringIO()

    call_command("embed", str(dataset.pk), stdout=out, stderr=err)

    assert "embedded 5 of 5 items" in out.getvalue()
    assert "RANDOM weights" in err.getvalue()
    assert Embedding.objects.filter(dataset=dataset).count() == 5
    call_command("embed", dataset.name, stdout=out, stderr=err)
    assert "embedded 0 of 0 items" in out.getvalue()


def test_it_resumes_the_job_it_left_unfinished(
    dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    items_with_images(dataset, 9)
    real = pipeline.vec.vectors_write
    calls = []

    def crash_second(**kwargs: Any) -> int:
        calls.append(1)
        if len(calls) == 2:
            raise Crash()
        return real(**kwargs)

    monkeypatch.setattr(pipeline.vec, "vectors_write", crash_second)
    with pytest.raises(Crash):
        call_command("embed", str(dataset.pk), stdout=StringIO(), stderr=StringIO())
    monkeypatch.setattr(pipeline.vec, "vectors_write", real)
    err = StringIO()

    call_command("embed", str(dataset.pk), stdout=StringIO(), stderr=err)

    assert "resuming embedding job" in err.getvalue()
    assert Job.objects.get().status == JobStatus.SUCCEEDED
    assert Embedding.objects.filter(dataset=dataset).count() == 9


def test_it_queues_the_job_for_a_worker_with_background(dataset: Dataset) -> None:
    out = StringIO()
    call_command("embed", str(dataset.pk), "--background", stdout=out)
    job = Job.objects.get()
    assert f"queued embedding job #{job.pk}" in out.getvalue() and job.status == JobStatus.QUEUED


def test_it_names_a_dataset_it_cannot_find(db: None) -> None:
    with pytest.raises(CommandError, match="no dataset"):
        call_command("embed", "nope", stdout=StringIO())
