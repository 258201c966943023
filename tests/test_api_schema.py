"""The OpenAPI 3 schema generates without warnings, validates, and the docs page is offline."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from rest_framework.test import APIClient


def test_the_schema_validates_without_warnings(tmp_path: Path) -> None:
    out = tmp_path / "schema.yaml"
    # --fail-on-warn turns every generator warning (unresolvable field, missing
    # authenticator, enum collision, ...) into an error, so the contract stays exact.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    assert schema["openapi"].startswith("3.")
    assert schema["components"]["securitySchemes"]["tokenAuth"]["scheme"] == "bearer"


@pytest.mark.django_db
def test_every_operation_has_a_readable_unique_id() -> None:
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    ids = [
        op["operationId"]
        for path, ops in schema["paths"].items()
        if path.startswith("/api/v1/")
        for op in ops.values()
    ]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)+", i) for i in ids), ids
    for expected in (
        "tokens_create",
        "datasets_list",
        "members_set",
        "items_list",
        "items_bulk_upsert",
        "annotations_bulk_upsert",
        "predictions_bulk_upsert",
        "slices_append",
        "tags_add",
        "jobs_cancel",
        "datasets_ingest",
        "items_history",
        "history_list",
        "history_revert",
    ):
        assert expected in ids


@pytest.mark.django_db
def test_the_docs_page_loads_its_assets_from_this_server() -> None:
    response = APIClient().get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "/static/drf_spectacular_sidecar/" in html
    assert not re.search(r"""(src|href)=["']https?://""", html)


@pytest.mark.django_db
def test_export_responses_declare_what_each_format_returns() -> None:
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    base = "/api/v1/datasets/{dataset_id}"
    for path in (f"{base}/export", f"{base}/slices/{{slice_id}}/export"):
        content = schema["paths"][path]["get"]["responses"]["200"]["content"]
        # A COCO file (an object) or a model's COCO results (an array).
        assert content["application/json"]["schema"]["oneOf"] == [
            {"type": "object"},
            {"type": "array", "items": {"type": "object"}},
        ]
        assert content["application/x-ndjson"]["schema"]["format"] == "binary"
    download = schema["paths"][f"{base}/exports/{{job_id}}/download"]["get"]["responses"]
    assert set(download["200"]["content"]) == {
        "application/x-ndjson",
        "application/json",
        "application/x-tar",
    }


@pytest.mark.django_db
def test_every_operation_with_a_body_documents_an_unsupported_media_type() -> None:
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    with_body = [
        op for ops in schema["paths"].values() for op in ops.values() if "requestBody" in op
    ]
    assert with_body
    assert all("415" in op["responses"] for op in with_body)
