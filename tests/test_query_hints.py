"""The query bar's help: warnings about names a dataset lacks, the quoted-name hint of a
parse error, and completion of the name at the cursor."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from curation import selectors
from curation.models import Dataset
from curation.query import QueryError, validate_query
from curation.query.compiler import query_names
from curation.query.hints import FixedNames, complete, name_text
from curation.vocabulary import query_completion, query_warnings
from tests.query_dataset import module_dataset


@pytest.fixture(scope="module")
def shared_dataset(django_db_blocker: Any) -> Iterator[Dataset]:
    with module_dataset(django_db_blocker) as dataset:
        yield dataset


@pytest.fixture
def dataset(db: None, shared_dataset: Dataset) -> Dataset:
    return shared_dataset


def messages(dataset: Dataset, text: str) -> list[str]:
    return [w.message for w in query_warnings(text, dataset=dataset)]


# ------------------------------------------------------------------------------ warnings


def test_it_warns_about_a_misspelt_label_and_names_the_right_one(dataset: Dataset) -> None:
    text = "annotations.pedestrain >= 2"
    [warning] = query_warnings(text, dataset=dataset)
    assert warning.message == (
        "No annotation in this dataset is labelled 'pedestrain', so it counts 0. "
        "Did you mean 'pedestrian'?"
    )
    assert warning.suggestion == "pedestrian"
    assert text[warning.offset : warning.end_offset] == "pedestrain"


def test_it_does_not_warn_about_labels_the_dataset_has(dataset: Dataset) -> None:
    assert (
        messages(dataset, "annotations.pedestrian >= 2 AND annotations.car.occluded = true") == []
    )
    assert messages(dataset, 'annotations."car" >= 1 AND annotations.count > 0') == []
    assert messages(dataset, "annotations.kind.box >= 1") == []


def test_it_warns_about_prediction_labels_no_shape_has(dataset: Dataset) -> None:
    assert messages(dataset, "predictions[detector].truck.confidence > 0.5") == []
    # A ground-truth label is a name the dataset has, even if this model never predicted it.
    assert messages(dataset, "predictions[segmenter].car >= 1") == []
    assert messages(dataset, "predictions[detector].trukc >= 1") == [
        "No prediction of 'detector' nor annotation is labelled 'trukc', so it counts 0. "
        "Did you mean 'truck'?"
    ]


def test_it_warns_about_metadata_keys_no_item_has(dataset: Dataset) -> None:
    assert messages(dataset, 'metadata.wether = "rain"') == [
        "No item has the metadata key 'wether'. Did you mean 'weather'?"
    ]
    assert messages(dataset, 'metadata.camera.modle = "x100"') == [
        "No item has the metadata key 'camera.modle'. Did you mean 'camera.model'?"
    ]
    assert messages(dataset, 'metadata.weather = "rain" AND metadata.camera.lens = "wide"') == []
    assert messages(dataset, 'metadata."camera model" = "X 100"') == []


def test_it_warns_about_tags_nobody_used(dataset: Dataset) -> None:
    assert messages(dataset, "tag = reviewd") == [
        "No tag named 'reviewd' in this dataset, so it matches nothing. Did you mean 'reviewed'?"
    ]
    assert messages(dataset, 'tag IN (reviewed, "flagged")') == []
    assert messages(dataset, "tag = zzz") == [
        "No tag named 'zzz' in this dataset, so it matches nothing."
    ]


def test_checking_labels_reads_only_the_names_used(dataset: Dataset) -> None:
    # No metadata sample and no list of every label unless a name is missing.
    with CaptureQueriesContext(connection) as queries:
        assert messages(dataset, "annotations.car >= 1 AND tag = reviewed") == []
    sql = " ".join(q["sql"] for q in queries.captured_queries)
    assert "jsonb_each" not in sql
    assert "RECURSIVE" not in sql
    # The compiler's tag lookup, then one presence check for the labels and one for tags.
    assert len(queries.captured_queries) == 3


def test_names_past_the_listed_ones_are_still_found(
    dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(selectors, "MAX_DATASET_LABELS", 2)
    assert selectors.dataset_labels(dataset=dataset) == ["bus", "car"]
    assert messages(dataset, "annotations.truck >= 1 AND tag = unused") == []
    assert messages(dataset, "annotations.truk >= 1") == [
        "No annotation in this dataset is labelled 'truk', so it counts 0."
    ]


def test_it_gives_no_warnings_for_a_query_that_does_not_compile(dataset: Dataset) -> None:
    assert messages(dataset, "annotations.pedestrain >= AND") == []
    assert messages(dataset, "") == []


def test_an_unknown_model_is_an_error_with_a_did_you_mean(dataset: Dataset) -> None:
    with pytest.raises(QueryError) as caught:
        validate_query("predictions[detektor].car >= 1", dataset=dataset)
    assert caught.value.message == (
        "No model named 'detektor' in this dataset (at column 13); models: detector, "
        "segmenter. Did you mean 'detector'?"
    )


def test_an_unknown_slice_is_an_error_with_a_did_you_mean(dataset: Dataset) -> None:
    with pytest.raises(QueryError) as caught:
        validate_query("slice IN (train, vall)", dataset=dataset)
    assert caught.value.message == (
        "No slice named 'vall' in this dataset (at column 18). Did you mean 'val'?"
    )


# ----------------------------------------------------------------------- quoted names


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("predictions[demo-detector].car >= 1", 'predictions["demo-detector"]'),
        ("predictions[demo-detector", 'predictions["demo-detector"]'),
        ("predictions[yolo v8].car >= 1", 'predictions["yolo v8"]'),
        ("metadata.2020 = 1", 'metadata."2020"'),
        # Parsed as a subtraction, which then fails: the dash was part of the name.
        ("annotations.traffic-light >= 1", 'annotations."traffic-light"'),
        ('metadata.camera-model = "x"', 'metadata."camera-model"'),
        ("annotations.traffic-light.occluded = true", 'annotations."traffic-light".occluded'),
        ("predictions[detector].traffic-light >= 1", 'predictions[detector]."traffic-light"'),
    ],
)
def test_a_name_that_needs_quotes_gets_the_quoted_form(
    dataset: Dataset, text: str, hint: str
) -> None:
    with pytest.raises(QueryError) as caught:
        validate_query(text, dataset=dataset)
    assert caught.value.message.endswith(f" Quote the name: {hint}.")


@pytest.mark.parametrize(
    "text", ["width > 100; DROP TABLE x", "annotations.traffic - light >= 1", "metadata.x = AND"]
)
def test_other_errors_get_no_quote_hint(dataset: Dataset, text: str) -> None:
    with pytest.raises(QueryError) as caught:
        validate_query(text, dataset=dataset)
    assert "Quote" not in caught.value.message


def test_a_subtraction_that_works_is_left_alone(dataset: Dataset) -> None:
    validate_query(
        "annotations.car-2 >= 1 AND annotations.car-annotations.bus >= 0", dataset=dataset
    )


# --------------------------------------------------------------------------- completion


def labels_of(text: str, dataset: Dataset, position: int | None = None) -> list[str]:
    found = query_completion(text, len(text) if position is None else position, dataset=dataset)
    return [s.label for s in found.suggestions]


def test_it_completes_fields(dataset: Dataset) -> None:
    found = query_completion("width > 1 AND ann", 17, dataset=dataset)
    assert (found.start, found.end) == (14, 17)
    assert [s.text for s in found.suggestions] == ["annotations"]
    assert "predictions" in labels_of("pred", dataset)


def test_it_completes_quality_signals(dataset: Dataset) -> None:
    assert "quality" in labels_of("qual", dataset)
    assert labels_of("quality.bl", dataset) == ["blur"]
    assert labels_of("quality.", dataset) == [
        "aspect",
        "blur",
        "brightness",
        "contrast",
        "entropy",
        "saturation",
        "uniform",
    ]
    assert labels_of("quality.blur.", dataset) == []


def test_it_completes_labels_from_the_dataset(dataset: Dataset) -> None:
    assert labels_of("annotations.pe", dataset) == ["pedestrian"]
    assert labels_of("annotations.", dataset)[:4] == ["bus", "car", "pedestrian", "truck"]
    assert labels_of("annotations.car.c", dataset) == ["count"]
    # Names that start with what was typed come first, then names that contain it.
    assert labels_of("annotations.kind.po", dataset) == ["polygon", "keypoints"]


def test_it_completes_model_names_and_their_labels(dataset: Dataset) -> None:
    found = query_completion("predictions[seg", 15, dataset=dataset)
    assert [s.text for s in found.suggestions] == ["segmenter]"]
    assert found.start == 12
    assert labels_of("predictions[segmenter].pe", dataset) == ["pedestrian"]
    assert "confidence" in labels_of("predictions[detector].", dataset)


def test_it_completes_metadata_keys(dataset: Dataset) -> None:
    assert labels_of("metadata.we", dataset) == ["weather"]
    assert labels_of("metadata.camera.", dataset) == ["lens", "model"]
    found = query_completion("metadata.cam", 12, dataset=dataset)
    assert [s.text for s in found.suggestions] == ["camera", '"camera model"']


def test_it_completes_tags_and_slices(dataset: Dataset) -> None:
    assert labels_of("tag = re", dataset) == ["reviewed"]
    assert labels_of("slice IN (train, v", dataset) == ["val"]
    assert labels_of('tag != "fl', dataset) == ["flagged"]


def test_it_completes_at_the_cursor_not_the_end(dataset: Dataset) -> None:
    text = "annotations.ca >= 1 AND width > 1"
    found = query_completion(text, 14, dataset=dataset)
    assert (found.start, found.end) == (12, 14)
    assert [s.text for s in found.suggestions] == ["car"]
    # In the middle of a word, the choice replaces the whole word.
    found = query_completion("annotations.tru >= 1", 13, dataset=dataset)
    assert (found.start, found.end) == (12, 15)
    assert found.suggestions[0].text == "truck"  # "t" typed: names starting with it first
    found = query_completion("predictions[dete].car", 15, dataset=dataset)
    assert (found.start, found.end) == (12, 16)
    assert [s.text for s in found.suggestions] == ["detector"]  # the ']' is there


def test_names_that_are_not_words_are_completed_quoted() -> None:
    vocabulary = FixedNames(model_names=["demo-detector"], label_names=["traffic light"])
    assert [s.text for s in complete("predictions[de", 14, vocabulary).suggestions] == [
        '"demo-detector"]'
    ]
    assert [s.text for s in complete("annotations.tra", 15, vocabulary).suggestions] == [
        '"traffic light"'
    ]
    # In a string, nothing to complete.
    assert complete('metadata.weather = "ra', 22, vocabulary).suggestions == []


@pytest.mark.parametrize("name", ['say "hi"', "back\\slash", "new\nline", "and", "7up", "plain"])
def test_a_completed_name_reads_back_as_itself(dataset: Dataset, name: str) -> None:
    [use] = query_names(f"annotations.{name_text(name)} >= 1", dataset=dataset)
    assert use.parts == (name,)
