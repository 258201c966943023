"""The native JSONL export: one object per item, streamed, for a dataset, slice or version."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine

from curation import slices, versions
from curation.bulk.write import items_upsert
from curation.export.jsonl import jsonl_chunks
from curation.export.sources import export_source
from curation.services import slice_create
from curation.storage import MediaTokens, MediaUrls, media_signature_valid
from tests.api_helpers import error_of, error_paths
from tests.slice_factories import box, polygon, write_items

pytestmark = pytest.mark.django_db

ROWS = [
    {
        "reference_id": "street/1.jpg",
        "metadata": {"weather": "rain", "nested": {"speed": 3}},
        "annotations": [
            box("car", metadata={"occluded": True}),
            polygon("person", [[1, 1], [9, 1], [9, 9]]),
        ],
        "predictions": [
            {
                "model": "det",
                "label": "car",
                "confidence": 0.75,
                "kind": "box",
                "geometry": {"x": 1, "y": 2, "width": 3, "height": 4},
            }
        ],
    },
    {"reference_id": 'quoted "name", comma', "metadata": {}, "annotations": []},
    {"reference_id": "street/3.jpg", "metadata": {"weather": "sun"}, "annotations": [box("bus")]},
]


@pytest.fixture
def ids(dataset: Any) -> dict[str, int]:
    return write_items(dataset, ROWS)


def export(dataset: Any, **kw: Any) -> list[dict[str, Any]]:
    model = kw.pop("model", None)
    source = export_source(dataset=dataset, **kw)
    body = b"".join(jsonl_chunks(source, urls=MediaUrls(), model=model, batch_size=2))
    assert body.endswith(b"\n")
    return [json.loads(line) for line in body.decode().split("\n")[:-1]]


def test_it_writes_one_line_per_item_in_id_order(dataset: Any, ids: dict[str, int]) -> None:
    lines = export(dataset)
    assert [line["reference_id"] for line in lines] == [r["reference_id"] for r in ROWS]
    first = lines[0]
    assert set(first) == {
        "id",
        "reference_id",
        "width",
        "height",
        "metadata",
        "annotations",
        "media_url",
    }
    assert first["id"] == ids["street/1.jpg"]
    assert (first["width"], first["height"]) == (640, 480)
    assert first["metadata"] == {"weather": "rain", "nested": {"speed": 3}}
    assert first["annotations"] == [
        {
            "id": "street/1.jpg/0",
            "kind": "box",
            "label": "car",
            "geometry": {"x": 10, "y": 20, "width": 30, "height": 40},
            "metadata": {"occluded": True},
        },
        {
            "id": "street/1.jpg/1",
            "kind": "polygon",
            "label": "person",
            "geometry": {"vertices": [[1, 1], [9, 1], [9, 9]]},
            "metadata": {},
        },
    ]


def test_media_urls_are_signed_for_that_item_and_expire(dataset: Any, ids: dict[str, int]) -> None:
    url = export(dataset)[0]["media_url"]
    parts = urlsplit(url)
    assert parts.path == f"/media/items/{ids['street/1.jpg']}/original"
    signature = parse_qs(parts.query)["sig"][0]
    assert media_signature_valid(signature, ids["street/1.jpg"], "original")
    assert not media_signature_valid(signature, ids["street/3.jpg"], "original")


@time_machine.travel(datetime(2030, 6, 1, tzinfo=UTC), tick=False)
def test_fast_tokens_are_the_ones_the_media_view_accepts() -> None:
    tokens = MediaTokens(int(time.time()) + 60)
    assert tokens._fast  # Django's token format is the one MediaTokens reproduces
    assert media_signature_valid(tokens.token(42), 42, "original")
    assert not media_signature_valid(tokens.token(42), 43, "original")
    expired = MediaTokens(int(time.time()) - 1)
    assert not media_signature_valid(expired.token(42), 42, "original")


def test_items_without_media_have_a_null_url(dataset: Any) -> None:
    write_items(dataset, [{"reference_id": "bare"}], size=None)
    (line,) = export(dataset)
    assert line["media_url"] is None and line["width"] is None


def test_predictions_of_a_named_model_are_added_on_request(
    dataset: Any, ids: dict[str, int]
) -> None:
    from curation.models import Model

    lines = export(dataset, model=Model.objects.get(dataset=dataset, name="det"))
    assert lines[0]["predictions"] == [
        {
            "id": lines[0]["predictions"][0]["id"],
            "kind": "box",
            "label": "car",
            "confidence": 0.75,
            "geometry": {"x": 1, "y": 2, "width": 3, "height": 4},
            "metadata": {},
        }
    ]
    assert lines[1]["predictions"] == []
    assert "predictions" not in export(dataset)[0]


def test_a_version_export_adds_the_models_current_predictions(
    dataset: Any, alice: Any, ids: dict[str, int]
) -> None:
    from curation.models import Model

    chosen, _ = slice_create(dataset=dataset, user=alice, name="s", reference_ids=list(ids))
    version = versions.slice_version_create(slice=chosen, user=alice)
    model = Model.objects.get(dataset=dataset, name="det")
    lines = export(dataset, slice=chosen, version=version, model=model)
    assert [len(line["predictions"]) for line in lines] == [1, 0, 0]
    assert lines[0]["predictions"][0]["confidence"] == 0.75


def test_a_slice_exports_its_items_and_a_dynamic_slice_its_matches(
    dataset: Any, alice: Any, ids: dict[str, int]
) -> None:
    static, _ = slice_create(dataset=dataset, user=alice, name="s", reference_ids=["street/3.jpg"])
    rainy, _ = slices.slice_create_from_query(
        dataset=dataset, user=alice, name="rainy", query='metadata.weather = "rain"'
    )
    assert [line["reference_id"] for line in export(dataset, slice=static)] == ["street/3.jpg"]
    assert [line["reference_id"] for line in export(dataset, slice=rainy)] == ["street/1.jpg"]
    items_upsert(
        dataset=dataset, rows=[{"reference_id": "street/3.jpg", "metadata": {"weather": "rain"}}]
    )
    assert len(export(dataset, slice=rainy)) == 2


def test_the_api_streams_the_export(
    client_for: Any, dataset: Any, victor: Any, ids: dict[str, int]
) -> None:
    response = client_for(victor).get(f"/api/v1/datasets/{dataset.pk}/export?format=jsonl")
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "application/x-ndjson"
    assert response["Content-Disposition"] == 'attachment; filename="street_scenes.jsonl"'
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert [json.loads(line)["reference_id"] for line in lines] == [r["reference_id"] for r in ROWS]
    # Absolute URLs, from the request's host.
    assert json.loads(lines[0])["media_url"].startswith("http://testserver/media/items/")


def test_the_api_refuses_bad_options_by_name(
    client_for: Any, dataset: Any, victor: Any, ids: dict[str, int]
) -> None:
    client = client_for(victor)
    base = f"/api/v1/datasets/{dataset.pk}/export"
    assert error_paths(client.get(base + "?format=csv")) == ["format"]
    assert error_paths(client.get(base + "?predictions=nope")) == ["predictions"]
    assert error_paths(client.get(base + "?format=coco&predictions=det")) == ["predictions"]
    assert error_paths(client.get(base + "?url_ttl=5")) == ["url_ttl"]
    assert error_paths(client.get(base + "?format=coco&include_media=true")) == ["include_media"]
    error_of(client.get(f"/api/v1/datasets/{dataset.pk}/slices/999999/export"), 404, "not_found")
