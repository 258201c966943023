"""Every operation of the OpenAPI schema, fuzzed by schemathesis: no server error, and every
answer's status code, content type and body are the ones the schema declares.

Requests go to the WSGI application in this process, inside the test's transaction, as
the owner of a dataset with items, shapes, a model, a slice with a version, a tag, vectors
and a finished export, so that the operations reach their real code paths. Path ids are
the seeded objects' (a random id would only ever be a 404). Each example runs in its own
savepoint, rolled back after it, so every example sees the same data. Generation is
derandomized with no example database: the same cases on every run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api_world import path_ids, world_fixture  # noqa: F401
from tests.embedding_factories import tiny_clip_fixture  # noqa: F401

# Examples per operation and generation phase: the module runs in about 3 minutes on
# two cores. Raise it locally to fuzz harder.
EXAMPLES = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
schema.config.generation.update(max_examples=EXAMPLES, deterministic=True, database="none")


@pytest.fixture(autouse=True)
def _one_connection() -> Iterator[None]:
    """Keep the test's connection open across requests, as Django's test client does:
    its transaction holds the seeded rows."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_keeps_its_schema(
    case: Any,
    world: dict[str, Any],
    tiny_clip: str,  # (text search and embedding jobs need a model)
) -> None:
    if case.path_parameters:
        case.path_parameters.update(path_ids(case.path, world))
    with transaction.atomic():
        savepoint = transaction.savepoint()
        try:
            case.call_and_validate(
                headers={"Authorization": f"Bearer {world['secret']}"}, checks=CHECKS
            )
        finally:
            transaction.savepoint_rollback(savepoint)
