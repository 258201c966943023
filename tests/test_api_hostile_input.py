"""Hostile input is a 400 naming the field, never a 500, and nothing is written: text
PostgreSQL cannot store (NUL, lone UTF-16 surrogates) in bodies, forms and query strings,
JSON nested past the parser's limit, and paths that ~ would expand."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from curation.models import Annotation, Dataset, Item, Job, Prediction, Tag
from curation.storable import MAX_JSON_DEPTH
from embeddings.models import Embedding
from tests.api_helpers import add_items, box, error_of, error_paths, url
from tests.api_world import path_ids, world_fixture  # noqa: F401

Client = Callable[[User | None], APIClient]

NUL = "a\x00b"
SURROGATE = "a\ud800b"


def post_json(client: APIClient, path: str, body: Any) -> Any:
    """POST `body` as JSON text the way any client library writes it: json.dumps escapes
    NUL and lone surrogates as \\u0000 and \\ud800 (DRF's test renderer cannot)."""
    return client.post(path, data=json.dumps(body), content_type="application/json")


def _items(bad: str, where: str) -> dict[str, Any]:
    row: dict[str, Any] = {"reference_id": "ok", "metadata": {"k": "v"}}
    if where == "reference_id":
        row["reference_id"] = bad
    elif where == "metadata key":
        row["metadata"] = {bad: 1}
    elif where == "metadata value":
        row["metadata"] = {"k": ["fine", bad]}
    elif where == "prediction model":
        row["predictions"] = [box(model=bad, confidence=0.5)]
    return {"items": [{"reference_id": "first"}, row]}


ITEM_CASES = [
    ("reference_id", "items[1].reference_id"),
    ("metadata key", "items[1].metadata"),
    ("metadata value", "items[1].metadata.k[1]"),
    ("prediction model", "items[1].predictions[0].model"),
]


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
@pytest.mark.parametrize(("where", "path"), ITEM_CASES, ids=[c[0] for c in ITEM_CASES])
def test_an_item_row_postgresql_cannot_store_is_a_400(
    client_for: Client, bob: User, dataset: Dataset, bad: str, where: str, path: str
) -> None:
    response = post_json(client_for(bob), url(dataset, "items/bulk"), _items(bad, where))

    assert error_paths(response) == [path]
    assert not Item.objects.exists()


SHAPE_CASES = [
    ("annotations/bulk", "annotations", "label"),
    ("annotations/bulk", "annotations", "reference_id"),
    ("models/{model}/predictions/bulk", "predictions", "label"),
    ("models/{model}/predictions/bulk", "predictions", "reference_id"),
]


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
@pytest.mark.parametrize(
    ("endpoint", "collection", "field"),
    SHAPE_CASES,
    ids=[f"{c[1]}-{c[2]}" for c in SHAPE_CASES],
)
def test_a_shape_row_postgresql_cannot_store_is_a_400(
    client_for: Client,
    bob: User,
    dataset: Dataset,
    bad: str,
    endpoint: str,
    collection: str,
    field: str,
) -> None:
    add_items(dataset, {"reference_id": "r", "predictions": [box(model="yolo", confidence=0.5)]})
    row = {"reference_id": "r", **box(confidence=0.5), field: bad}
    body = {collection: [{"reference_id": "r", **box(confidence=0.5)}, row]}
    model = dataset.models.get()

    response = post_json(client_for(bob), url(dataset, endpoint.format(model=model.pk)), body)

    assert error_paths(response) == [f"{collection}[1].{field}"]
    assert Annotation.objects.count() == 0
    assert Prediction.objects.count() == 1


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
def test_a_vector_row_postgresql_cannot_store_is_a_400(
    client_for: Client, bob: User, dataset: Dataset, bad: str
) -> None:
    add_items(dataset, {"reference_id": "a"})
    model = dataset.embedding_models.create(name="m", kind="custom", dimension=2)
    rows = [{"reference_id": "a", "vector": [1, 0]}, {"reference_id": bad, "vector": [0, 1]}]

    response = post_json(
        client_for(bob), url(dataset, f"embedding-models/{model.pk}/vectors"), {"vectors": rows}
    )

    assert error_paths(response) == ["vectors[1].reference_id"]
    assert not Embedding.objects.exists()


@pytest.mark.parametrize(
    "tail",
    ["slices/{slice_id}/versions/1/items", "slices/{slice_id}/records", "items"],
)
def test_a_nul_in_a_query_parameter_is_a_400(
    client_for: Client,
    world: dict[str, Any],
    alice: User,
    dataset: Dataset,
    tail: str,
) -> None:
    path = url(dataset, tail.format(**world))

    response = client_for(alice).get(path, {"predictions": "\x00"})

    assert error_paths(response) == ["predictions"]


def test_a_nul_in_a_form_field_is_a_400(client_for: Client, alice: User) -> None:
    response = client_for(alice).post("/api/v1/datasets", {"name": NUL})  # multipart

    assert error_paths(response) == ["name"]
    assert not Dataset.objects.exists()


def test_a_nul_in_a_query_string_of_a_page_is_a_400(alice: User, dataset: Dataset) -> None:
    client = APIClient()
    client.force_login(alice)

    response = client.get(f"/datasets/{dataset.pk}/", {"q": "width > 1\x00"})

    assert response.status_code == 400
    assert "must not contain NUL characters" in response.content.decode()


# --------------------------------------------------------------------------------- depth


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1000, 100_000])
def test_json_nested_too_deep_is_a_400_on_every_json_operation(
    alice: User,
    world: dict[str, Any],
    depth: int,
) -> None:
    """Each operation that takes JSON, with its seeded path ids so the body is read."""
    client = APIClient()
    client.force_login(alice)  # a session: tokens_create refuses a token before the body
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    # Written by hand: json.dumps itself recurses, and gives up near 1,000 levels.
    body = '{"name": "x", "deep": ' + "[" * depth + "]" * depth + "}"
    answered = []
    for template, operations in schema["paths"].items():
        for method, operation in operations.items():
            if "application/json" not in operation.get("requestBody", {}).get("content", {}):
                continue
            path = template.format(**path_ids(template, world))
            response = client.generic(method.upper(), path, body, "application/json")
            error = error_of(response, 400)
            assert f"nested deeper than {MAX_JSON_DEPTH} levels" in error["message"], (path, error)
            answered.append(operation["operationId"])
    assert {"datasets_create", "items_bulk_upsert", "search_by_vector"} <= set(answered)


# ------------------------------------------------------------------------- tags, search


@pytest.mark.parametrize("operation", ["add-matching", "remove-matching"])
def test_no_item_ids_change_no_items(
    client_for: Client, bob: User, dataset: Dataset, operation: str
) -> None:
    add_items(dataset, {"reference_id": "a"})
    Tag.objects.create(dataset=dataset, name="t")

    response = client_for(bob).post(
        url(dataset, f"tags/{operation}"), {"name": "t", "item_ids": []}, format="json"
    )

    assert response.status_code == 200, response.json()
    assert response.json()["changed"] == 0


def test_an_unknown_filter_option_is_a_400(
    client_for: Client,
    world: dict[str, Any],
    victor: User,
    dataset: Dataset,
) -> None:
    response = client_for(victor).post(
        url(dataset, "search/vector"),
        {"vector": [1, 0, 0, 0], "filter": {"tags": ["checked"], "bogus": 1}},
        format="json",
    )

    assert error_paths(response) == ["filter.bogus"]


@pytest.mark.parametrize("encoding", ["json", "form", "multipart"])
def test_a_filter_applies_however_the_request_is_encoded(
    client_for: Client,
    world: dict[str, Any],
    victor: User,
    dataset: Dataset,
    encoding: str,
) -> None:
    flt = {"metadata": [{"key": "n", "op": "eq", "value": 4}]}  # a vector's item: none has it
    client = client_for(victor)
    path = url(dataset, "search/vector")
    if encoding == "json":
        response = client.post(path, {"vector": [1, 0, 0, 0], "filter": flt}, format="json")
    elif encoding == "form":
        form = urlencode({"vector": [1, 0, 0, 0], "filter": json.dumps(flt)}, doseq=True)
        response = client.generic("POST", path, form, "application/x-www-form-urlencoded")
    else:
        form_data = {"vector": ["1", "0", "0", "0"], "filter": json.dumps(flt)}
        response = client.post(path, form_data, format="multipart")

    assert response.status_code == 200, response.json()
    assert response.json()["results"] == []


def test_a_filter_in_a_form_is_checked_like_a_json_one(
    client_for: Client,
    world: dict[str, Any],
    victor: User,
    dataset: Dataset,
) -> None:
    flt = '{"tags": ["a\\u0000"]}'

    response = client_for(victor).post(
        url(dataset, "search/vector"), {"vector": ["1", "0", "0", "0"], "filter": flt}
    )

    assert error_paths(response) == ["filter.tags[0]"]


# ------------------------------------------------------------------------------- ingest


@pytest.mark.parametrize("field", ["path", "images_root"])
@pytest.mark.parametrize("value", ["~unknownuser/data", "~/data", "~root"])
def test_an_ingest_path_gets_no_tilde_expansion(
    client_for: Client, bob: User, dataset: Dataset, import_root: Path, field: str, value: str
) -> None:
    (import_root / "m.jsonl").write_text("")
    source = {"type": "manifest", "path": "m.jsonl", field: value}

    response = client_for(bob).post(url(dataset, "ingest"), {"source": source}, format="json")

    message = "is not a file" if field == "path" else "is not a folder"
    assert error_of(response, 400)["fields"] == [{"path": f"source.{field}", "message": message}]
    assert not Job.objects.exists()


def test_text_decoded_by_an_odd_charset_is_checked_too(
    client_for: Client, bob: User, dataset: Dataset
) -> None:
    # unicode_escape turns the six characters \ud800 into the surrogate itself, before
    # JSON sees the text.
    response = client_for(bob).post(
        url(dataset, "items/bulk"),
        data=b'{"items": [{"reference_id": "a\\ud800"}]}',
        content_type="application/json; charset=unicode_escape",
    )

    assert error_paths(response) == ["items[0].reference_id"]
    assert not Item.objects.exists()


def test_a_form_with_too_many_fields_is_a_json_400(
    client_for: Client, bob: User, dataset: Dataset
) -> None:
    """Django refuses a form body past DATA_UPLOAD_MAX_NUMBER_FIELDS while DRF parses it;
    the answer is the API's JSON 400, not Django's HTML page."""
    from django.conf import settings

    fields = "&".join(
        f"reference_ids={i}" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)
    )
    response = client_for(bob).generic(
        "POST", url(dataset, "items/delete"), fields, "application/x-www-form-urlencoded"
    )
    error = error_of(response, 400)
    assert "send the body as JSON" in error["message"]
    assert response["Content-Type"] == "application/json"
