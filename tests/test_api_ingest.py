"""Starting an ingest over the API: a source under an import root, or an uploaded file."""

from __future__ import annotations

import json

from django.core.files.uploadedfile import SimpleUploadedFile

from curation.jobs import job_run
from curation.models import Item, Job, JobStatus
from tests.api_helpers import error_of, error_paths, url

MANIFEST = "\n".join(
    json.dumps({"reference_id": ref, "metadata": {"weather": weather}})
    for ref, weather in (("a", "rain"), ("b", "sun"))
)


def test_it_starts_an_ingest_of_a_manifest_under_an_import_root(
    dataset, bob, client_for, import_root
):
    (import_root / "m.jsonl").write_text(MANIFEST)
    client = client_for(bob)
    response = client.post(
        url(dataset, "ingest"), {"source": {"type": "manifest", "path": "m.jsonl"}}, format="json"
    )
    assert response.status_code == 202
    job = response.json()
    assert (job["kind"], job["status"], job["dataset"]) == ("ingest", "queued", dataset.pk)
    job_run(job_id=job["id"])
    done = client.get(url(dataset, f"jobs/{job['id']}")).json()
    assert done["status"] == "succeeded", done
    assert sorted(Item.objects.filter(dataset=dataset).values_list("reference_id", flat=True)) == [
        "a",
        "b",
    ]


def test_it_ingests_an_uploaded_manifest(dataset, bob, client_for):
    upload = SimpleUploadedFile("items.jsonl", MANIFEST.encode(), content_type="application/jsonl")
    response = client_for(bob).post(
        url(dataset, "ingest"), {"file": upload, "type": "manifest"}, format="multipart"
    )
    assert response.status_code == 202
    job_run(job_id=response.json()["id"])
    assert Job.objects.get().status == JobStatus.SUCCEEDED
    assert Item.objects.get(reference_id="b").metadata == {"weather": "sun"}


def test_a_bad_source_is_a_400_naming_the_field(dataset, bob, client_for, tmp_path):
    client = client_for(bob)
    cases = [
        ({"source": {"type": "tarball"}}, "source.type"),
        ({"source": {"type": "manifest", "path": "missing.jsonl"}}, "source.path"),
        ({"source": {"type": "folder", "path": str(tmp_path)}}, "source.path"),  # outside the roots
        ({"source": "m.jsonl"}, "source"),
        ({}, "source"),
    ]
    for body, path in cases:
        assert error_paths(client.post(url(dataset, "ingest"), body, format="json")) == [path], body
    response = client.post(url(dataset, "ingest"), {"type": "manifest"}, format="multipart")
    assert error_paths(response) == ["file"]
    assert not Job.objects.exists()


def test_access_rules(dataset, victor, charlie, client_for, import_root):
    (import_root / "m.jsonl").write_text(MANIFEST)
    body = {"source": {"type": "manifest", "path": "m.jsonl"}}
    error_of(client_for(victor).post(url(dataset, "ingest"), body, format="json"), 403)
    error_of(client_for(charlie).post(url(dataset, "ingest"), body, format="json"), 404)
    error_of(client_for(None).post(url(dataset, "ingest"), body, format="json"), 401)
    assert not Job.objects.exists()
