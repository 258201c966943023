"""Models: list, create (unique name), retrieve, delete with their predictions."""

from __future__ import annotations

from curation import selectors
from curation.models import Dataset, Model, Prediction
from tests.api_helpers import add_items, box, error_of, error_paths, url


def test_it_creates_and_lists_models(dataset, bob, victor, client_for):
    response = client_for(bob).post(
        url(dataset, "models"), {"name": "yolo-v9", "metadata": {"epochs": 30}}, format="json"
    )
    assert response.status_code == 201
    assert (response.json()["name"], response.json()["prediction_count"]) == ("yolo-v9", 0)
    results = client_for(victor).get(url(dataset, "models")).json()["results"]
    assert [(m["name"], m["metadata"]) for m in results] == [("yolo-v9", {"epochs": 30})]


def test_a_duplicate_name_is_a_409(dataset, bob, client_for):
    Model.objects.create(dataset=dataset, name="yolo")
    response = client_for(bob).post(url(dataset, "models"), {"name": "yolo"}, format="json")
    assert [f["path"] for f in error_of(response, 409, "conflict")["fields"]] == ["name"]


def test_the_same_name_in_another_dataset_is_fine(dataset, alice, client_for):
    other = Dataset.objects.create(name="other", owner=alice)
    Model.objects.create(dataset=other, name="yolo")
    assert (
        client_for(alice).post(url(dataset, "models"), {"name": "yolo"}, format="json").status_code
        == 201
    )


def test_bad_input_names_the_field(dataset, bob, client_for):
    client = client_for(bob)
    assert error_paths(client.post(url(dataset, "models"), {"name": ""}, format="json")) == ["name"]
    assert error_paths(
        client.post(url(dataset, "models"), {"name": "m", "metadata": [1]}, format="json")
    ) == ["metadata"]


def test_it_retrieves_a_model_with_its_prediction_count(dataset, victor, client_for):
    add_items(dataset, {"reference_id": "a", "predictions": [box(model="yolo", confidence=0.3)]})
    model = Model.objects.get(name="yolo")
    body = client_for(victor).get(url(dataset, f"models/{model.pk}")).json()
    assert (body["name"], body["prediction_count"]) == ("yolo", 1)


def test_it_deletes_a_model_and_its_predictions(dataset, bob, client_for):
    add_items(dataset, {"reference_id": "a", "predictions": [box(model="yolo", confidence=0.3)]})
    model = Model.objects.get(name="yolo")
    assert client_for(bob).delete(url(dataset, f"models/{model.pk}")).status_code == 204
    assert not Model.objects.exists()
    assert not Prediction.objects.exists()


def test_access_rules(dataset, victor, charlie, alice, client_for):
    model = Model.objects.create(dataset=dataset, name="yolo")
    foreign = Model.objects.create(dataset=Dataset.objects.create(name="x", owner=alice), name="m")
    error_of(client_for(victor).post(url(dataset, "models"), {"name": "n"}, format="json"), 403)
    error_of(client_for(victor).delete(url(dataset, f"models/{model.pk}")), 403)
    error_of(client_for(charlie).get(url(dataset, "models")), 404)
    error_of(client_for(charlie).get(url(dataset, f"models/{model.pk}")), 404)
    error_of(client_for(victor).get(url(dataset, f"models/{foreign.pk}")), 404)
    error_of(client_for(victor).get(url(dataset, "models/999999")), 404)
    error_of(client_for(None).get(url(dataset, "models")), 401)
    assert Model.objects.count() == 2


def test_a_nul_character_in_metadata_is_a_400_naming_the_field(dataset, bob, client_for):
    for metadata, path in (
        ({"a": "x\u0000"}, "metadata.a"),
        ({"a\u0000": 1}, "metadata"),  # a key: the object holding it
        ({"a": {"b": ["ok", "\u0000"]}}, "metadata.a.b[1]"),
    ):
        response = client_for(bob).post(
            url(dataset, "models"), {"name": "m", "metadata": metadata}, format="json"
        )
        error = error_of(response, 400, "invalid")
        assert [f["path"] for f in error["fields"]] == [path]
        assert "NUL" in error["message"]
    assert not Model.objects.exists()


def test_prediction_counts_past_the_exact_limit_are_estimates(
    dataset, victor, client_for, monkeypatch
):
    monkeypatch.setattr(selectors, "EXACT_COUNT_MAX", 2)
    add_items(
        dataset,
        *(
            {"reference_id": f"r{i}", "predictions": [box(model="yolo", confidence=0.5)]}
            for i in range(4)
        ),
    )
    model = Model.objects.get(name="yolo")
    client = client_for(victor)
    detail = client.get(url(dataset, f"models/{model.pk}")).json()
    assert detail["prediction_count"] >= 3 and detail["prediction_count_exact"] is False
    listed = client.get(url(dataset, "models")).json()["results"]
    assert [(m["name"], m["prediction_count_exact"]) for m in listed] == [("yolo", False)]
