"""Predictions: idempotent all-or-nothing bulk upload for a model, confidence in [0, 1]."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from curation.models import Dataset, Model, Prediction
from tests.api_helpers import add_items, box, error_of, error_paths, url


@pytest.fixture
def model(dataset: Dataset) -> Model:
    add_items(dataset, {"reference_id": "a"}, {"reference_id": "b"})
    return Model.objects.create(dataset=dataset, name="yolo")


def upload(client, dataset, model, rows):
    return client.post(
        url(dataset, f"models/{model.pk}/predictions/bulk"), {"predictions": rows}, format="json"
    )


def test_it_uploads_predictions_for_the_model(dataset, model, bob, client_for):
    rows = [
        {"reference_id": "a", "id": "p1", "confidence": 0.9, **box()},
        {"reference_id": "b", "confidence": 0, **box(label="bus")},
    ]
    response = upload(client_for(bob), dataset, model, rows)
    assert response.status_code == 200
    assert response.json() == {"received": 2, "written": 2}
    assert sorted(
        Prediction.objects.values_list("model__name", "item__reference_id", "confidence")
    ) == [
        ("yolo", "a", 0.9),
        ("yolo", "b", 0.0),
    ]


def test_a_reupload_changes_nothing(dataset, model, bob, client_for):
    client = client_for(bob)
    rows = [{"reference_id": "a", "confidence": 0.5, **box()}]
    upload(client, dataset, model, rows)
    assert upload(client, dataset, model, rows).json() == {"received": 1, "written": 0}
    assert Prediction.objects.count() == 1


def test_bad_rows_refuse_the_batch_with_index_and_field_path(dataset, model, bob, client_for):
    rows = [
        {"reference_id": "a", "confidence": 0.5, **box()},
        {"reference_id": "a", "confidence": 1.5, **box()},
        {"reference_id": "a", **box()},
        {"reference_id": "a", "confidence": "high", **box()},
        {"reference_id": "a", "confidence": 0.5, **box(h=-3)},
        {"reference_id": "missing", "confidence": 0.5, **box()},
    ]
    assert error_paths(upload(client_for(bob), dataset, model, rows)) == [
        "predictions[1].confidence",
        "predictions[2].confidence",
        "predictions[3].confidence",
        "predictions[4].geometry.height",
        "predictions[5].reference_id",
    ]
    assert not Prediction.objects.exists()


def test_access_rules(dataset, model, alice, victor, charlie, bob, client_for):
    rows = [{"reference_id": "a", "confidence": 0.5, **box()}]
    error_of(upload(client_for(victor), dataset, model, rows), 403)
    error_of(upload(client_for(charlie), dataset, model, rows), 404)
    error_of(upload(client_for(None), dataset, model, rows), 401)
    foreign = Model.objects.create(dataset=Dataset.objects.create(name="x", owner=alice), name="m")
    error_of(upload(client_for(bob), dataset, foreign, rows), 404)
    assert not Prediction.objects.exists()


def test_an_upload_counts_nothing(dataset, model, bob, client_for):
    # Pipelines upload in many chunks: counting the model's predictions on each call would
    # read them all every time.
    client = client_for(bob)
    upload(client, dataset, model, [{"reference_id": "a", "confidence": 0.5, **box()}])
    with CaptureQueriesContext(connection) as queries:
        response = upload(client, dataset, model, [{"reference_id": "b", "confidence": 1, **box()}])
    assert response.json() == {"received": 1, "written": 1}
    assert not [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
