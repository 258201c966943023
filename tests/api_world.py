"""A dataset with one of everything, for tests that call every operation of the API."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User

from curation import versions
from curation.export.jobs import export_job_start
from curation.history.models import AnnotationChange
from curation.jobs import job_run
from curation.models import Annotation, Dataset, Slice
from curation.services import tag_add, token_create
from embeddings.autotag import ExampleSource, autotag_create
from evaluation import scenarios
from evaluation.services import evaluation_create
from review.services import queue_create
from selection.services import selection_create
from tests.api_helpers import add_items, box
from tests.embedding_factories import custom_model, items_with_vectors


@pytest.fixture(name="world")
def world_fixture(alice: User, bob: User, dataset: Dataset) -> dict[str, Any]:
    """Alice's dataset with items, shapes, a model, a slice with a version, a tag, vectors,
    a finished export, a finished evaluation run, a scenario suite evaluated once, a
    review queue, a scored autotag and a selection: its ids by path parameter name, and
    alice's token (`secret`)."""
    ids = add_items(
        dataset,
        *(
            {
                "reference_id": f"r{i}",
                "metadata": {"weather": "rain" if i % 2 else "sun", "n": i},
                "annotations": [box(label="car"), box(x=40, label="person")],
                "predictions": [box(model="yolo", label="car", confidence=0.5)],
            }
            for i in range(4)
        ),
    )
    found = Slice.objects.create(dataset=dataset, name="picked")
    found.items.add(*ids.values())
    versions.slice_version_create(slice=found, user=alice)
    tag, _ = tag_add(dataset=dataset, name="checked", reference_ids=["r0", "r1"])
    vectors = custom_model(dataset, 4)
    embedded = items_with_vectors(
        dataset, vectors, np.random.default_rng(3).normal(size=(6, 4)).astype(np.float32)
    )
    autotag, _, scoring = autotag_create(
        dataset=dataset,
        user=alice,
        name="rain",
        model=vectors,
        positives=ExampleSource(reference_ids=[embedded[0].reference_id]),
    )
    job_run(job_id=scoring.pk)
    picked = selection_create(
        dataset=dataset,
        user=alice,
        data={"name": "to label", "strategies": [{"name": "random"}], "budget": 2},
    )
    export = export_job_start(dataset=dataset, user=alice, format="jsonl", slice=found)
    job_run(job_id=export.pk)
    evaluation = evaluation_create(
        dataset=dataset, user=alice, name="first", model_id=dataset.models.get().pk
    )
    assert evaluation.job_id is not None
    job_run(job_id=evaluation.job_id)
    suite = scenarios.suite_create(dataset=dataset, user=alice, name="gates")
    gate = scenarios.test_create(suite=suite, name="good enough", metric="map", threshold=0.0)
    scenario = scenarios.suite_evaluate(suite=suite, user=alice, model_id=dataset.models.get().pk)
    assert scenario.job_id is not None
    job_run(job_id=scenario.job_id)
    queue = queue_create(
        dataset=dataset,
        user=alice,
        name="check",
        source={"kind": "items", "reference_ids": ["r0", "r1"], "with_annotations": True},
    )
    token, secret = token_create(user=alice, name="world")
    return {
        "secret": secret,
        "dataset_id": dataset.pk,
        "item_id": ids["r0"],
        "annotation_pk": Annotation.objects.filter(item_id=ids["r0"]).order_by("pk")[0].pk,
        "model_id": dataset.models.get().pk,
        "embedding_model_id": vectors.pk,
        "slice_id": found.pk,
        "number": 1,
        "tag_id": tag.pk,
        "job_id": export.pk,
        "user_id": bob.pk,
        "token_id": token.pk,
        "run_id": evaluation.pk,
        "suite_id": suite.pk,
        "test_id": gate.pk,
        "evaluation_id": scenario.pk,
        "queue_id": queue.pk,
        "entry_id": queue.entries.get(position=0).pk,
        "autotag_id": autotag.pk,
        "selection_id": picked.pk,
        "change_id": AnnotationChange.objects.filter(dataset=dataset).latest("id").pk,
    }


def path_ids(template: str, world: dict[str, Any]) -> dict[str, Any]:
    """The world's id for each {parameter} of an API path template."""
    out = {}
    for name in world:
        if "{" + name + "}" in template:
            out[name] = world[name]
    if "{model_id}" in template:
        key = "embedding_model_id" if "/embedding-models/" in template else "model_id"
        out["model_id"] = world[key]
    return out
