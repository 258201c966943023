"""The item view: image with annotations and predictions per label, metadata, tags,
slices, and moving to the previous and next item of the same view."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import User
from django.test import Client

from curation.history import change_context
from curation.models import Annotation, Dataset, Item, Prediction
from curation.services import slice_create, tag_add
from curation.ui.palette import LabelColours
from tests.api_helpers import add_items, box
from tests.ui_factories import populate

pytestmark = pytest.mark.django_db


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def items(dataset: Dataset) -> list[Item]:
    return populate(dataset, 8)


def test_it_draws_every_annotation_and_prediction_over_the_original(
    alice: User, dataset: Dataset, items: list[Item]
) -> None:
    item = items[1]
    url = f"/datasets/{dataset.pk}/items/{item.pk}?conf=0"
    body = logged_in(alice).get(url).content.decode()
    assert f'src="/media/items/{item.pk}/original"' in body
    assert f'viewBox="0 0 {item.width} {item.height}"' in body
    assert body.count('class="shape shape-gt"') == Annotation.objects.filter(item=item).count()
    assert body.count('class="shape shape-pred"') == Prediction.objects.filter(item=item).count()
    prediction = Prediction.objects.filter(item=item).order_by("id").first()
    assert (
        f'data-label="{prediction.label}" data-source="pred" '
        f'data-confidence="{prediction.confidence:.2f}"' in body
    )


def test_it_offers_a_toggle_per_label_for_ground_truth_and_predictions(
    alice: User, dataset: Dataset, items: list[Item]
) -> None:
    item = items[1]
    body = logged_in(alice).get(f"/datasets/{dataset.pk}/items/{item.pk}").content.decode()
    labels = set(Annotation.objects.filter(item=item).values_list("label", flat=True))
    for label in labels:
        assert f'data-toggle-label="{label}" data-toggle-source="gt"' in body
        assert f'data-toggle-label="{label}" data-toggle-source="pred"' in body


def test_it_shows_metadata_tags_and_slices(
    alice: User, dataset: Dataset, items: list[Item]
) -> None:
    item = items[2]
    tag_add(dataset=dataset, name="night", reference_ids=[item.reference_id])
    slice_create(dataset=dataset, user=None, name="to label", reference_ids=[item.reference_id])
    body = logged_in(alice).get(f"/datasets/{dataset.pk}/items/{item.pk}").content.decode()
    assert "<th>camera.side</th><td>rear</td>" in body
    assert f"<th>speed</th><td>{item.metadata['speed']}</td>" in body
    assert "# night" in body
    assert ">to label</a>" in body
    assert 'aria-label="Remove tag night"' in body


def test_a_viewer_gets_no_editing_forms(victor: User, dataset: Dataset, items: list[Item]) -> None:
    tag_add(dataset=dataset, name="night", reference_ids=[items[0].reference_id])
    body = logged_in(victor).get(f"/datasets/{dataset.pk}/items/{items[0].pk}").content.decode()
    assert "# night" in body
    assert "Remove tag" not in body
    assert 'placeholder="Add a tag"' not in body


def test_it_moves_to_the_previous_and_next_item_of_the_same_view(
    alice: User, dataset: Dataset, items: list[Item]
) -> None:
    cars = [i for i in items if i.annotations.filter(label="car").exists()]
    assert len(cars) >= 3
    body = (
        logged_in(alice)
        .get(f"/datasets/{dataset.pk}/items/{cars[1].pk}?label=car")
        .content.decode()
    )
    nxt = re.search(r'href="([^"]+)" data-key-next', body).group(1)
    prev = re.search(r'href="([^"]+)" data-key-prev', body).group(1)
    assert nxt == f"/datasets/{dataset.pk}/items/{cars[2].pk}?label=car"
    assert prev == f"/datasets/{dataset.pk}/items/{cars[0].pk}?label=car"
    assert f'href="/datasets/{dataset.pk}/?label=car" data-key-back' in body


def test_an_item_of_another_dataset_is_not_found(
    alice: User, charlie: User, dataset: Dataset
) -> None:
    other = Dataset.objects.create(name="other", owner=charlie)
    foreign = populate(other, 1)[0]
    assert logged_in(alice).get(f"/datasets/{dataset.pk}/items/{foreign.pk}").status_code == 404


def test_it_says_why_there_are_no_neighbours_or_duplicates(
    alice: User, dataset: Dataset, items: list[Item]
) -> None:
    body = logged_in(alice).get(f"/datasets/{dataset.pk}/items/{items[0].pk}").content.decode()
    assert "No embeddings yet." in body
    assert "No duplicates job has run on this dataset." in body


def test_it_shows_the_items_duplicate_group(
    alice: User, dataset: Dataset, items: list[Item]
) -> None:
    from curation.jobs import job_run
    from embeddings.duplicates import duplicates_job_start

    Item.objects.filter(pk=items[4].pk).update(sha256=items[1].sha256)  # an exact copy
    job = duplicates_job_start(dataset=dataset, user=alice, model=None)
    assert job_run(job_id=job.pk).status == "succeeded"
    body = logged_in(alice).get(f"/datasets/{dataset.pk}/items/{items[4].pk}").content.decode()
    strip = re.search(r'data-testid="duplicates">(.*?)</div>', body, re.S).group(1)
    linked = {int(i) for i in re.findall(rf'href="/datasets/{dataset.pk}/items/(\d+)"', strip)}
    assert linked == {items[1].pk, items[4].pk}
    assert "kept" in strip


def test_it_lists_the_dynamic_slices_whose_query_the_item_matches(
    alice: User, dataset: Dataset, items: list[Item]
) -> None:
    from curation.slices import slice_create_from_query

    slice_create_from_query(
        dataset=dataset, user=alice, name="rear cam", query='metadata.camera.side = "rear"'
    )
    client = logged_in(alice)
    rear = client.get(f"/datasets/{dataset.pk}/items/{items[0].pk}").content.decode()
    front = client.get(f"/datasets/{dataset.pk}/items/{items[1].pk}").content.decode()
    assert ">rear cam</a>" in rear
    assert ">rear cam</a>" not in front


def test_it_checks_every_dynamic_slice_in_one_statement(
    alice: User, dataset: Dataset, items: list[Item]
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from curation.models import Slice
    from curation.slices import slice_create_from_query

    def queries_for_page() -> int:
        client = logged_in(alice)
        client.get(f"/datasets/{dataset.pk}/items/{items[0].pk}")  # sessions, caches
        with CaptureQueriesContext(connection) as queries:
            assert client.get(f"/datasets/{dataset.pk}/items/{items[0].pk}").status_code == 200
        return len(queries)

    slice_create_from_query(
        dataset=dataset, user=alice, name="rear cam", query='metadata.camera.side = "rear"'
    )
    one = queries_for_page()
    for name, query in [("front", 'metadata.camera.side = "front"'), ("wide", "width > 1")]:
        slice_create_from_query(dataset=dataset, user=alice, name=name, query=query)
    assert queries_for_page() == one
    # A slice whose saved query no longer compiles is left out, not an error.
    Slice.objects.create(dataset=dataset, name="broken", query='slice = "gone"')
    body = logged_in(alice).get(f"/datasets/{dataset.pk}/items/{items[0].pk}").content.decode()
    assert ">rear cam</a>" in body and ">wide</a>" in body
    assert ">front</a>" not in body and ">broken</a>" not in body


def pred_count(body: str) -> int:
    return body.count('class="shape shape-pred"')


def test_it_draws_predictions_at_or_above_the_views_confidence(
    alice: User, dataset: Dataset, items: list[Item]
) -> None:
    # An item with a confident prediction (0.9) and an unsure one (0.3).
    item = next(i for i in items if Prediction.objects.filter(item=i).count() >= 2)
    unsure = Prediction.objects.filter(item=item, confidence__lt=0.5).count()
    assert unsure
    client = logged_in(alice)
    url = f"/datasets/{dataset.pk}/items/{item.pk}"
    default = client.get(url).content.decode()
    assert pred_count(default) == Prediction.objects.filter(item=item, confidence__gte=0.5).count()
    assert f'data-testid="hidden-predictions">{unsure} below it, not drawn' in default
    assert 'name="conf" min="0" max="1" step="0.05" value="0.5"' in default
    assert pred_count(client.get(url + "?conf=0").content.decode()) == (
        Prediction.objects.filter(item=item).count()
    )
    none = client.get(url + "?conf=0.95").content.decode()
    assert pred_count(none) == 0
    assert "None at or above the threshold." in none and "No predictions." not in none


@pytest.mark.parametrize("conf", ["abc", "1.5", "-1", "nan"])
def test_a_bad_confidence_is_a_400_that_names_it(
    alice: User, dataset: Dataset, items: list[Item], conf: str
) -> None:
    response = logged_in(alice).get(f"/datasets/{dataset.pk}/items/{items[0].pk}?conf={conf}")
    assert response.status_code == 400
    assert "conf: must be a number from 0 to 1" in response.content.decode()


def test_the_confidence_goes_back_to_the_grid_and_on_to_the_next_item(
    alice: User, dataset: Dataset, items: list[Item]
) -> None:
    body = (
        logged_in(alice)
        .get(f"/datasets/{dataset.pk}/items/{items[1].pk}?label=car&conf=0.2")
        .content.decode()
        .replace("&amp;", "&")
    )
    back = re.search(r'href="([^"]+)" data-key-back', body).group(1)
    assert parse_qs(urlsplit(back).query) == {"label": ["car"], "conf": ["0.2"]}
    nxt = re.search(r'href="([^"]+)" data-key-next', body).group(1)
    assert parse_qs(urlsplit(nxt).query)["conf"] == ["0.2"]
    # The threshold form keeps the rest of the view and sets conf alone.
    form = re.search(r'data-testid="conf-form">(.*?)</form>', body, re.S).group(1)
    assert '<input type="hidden" name="label" value="car">' in form
    assert 'name="conf"' in form and 'type="hidden" name="conf"' not in form


def test_labels_take_the_datasets_colours(alice: User, dataset: Dataset, items: list[Item]) -> None:
    colours = LabelColours(Annotation.objects.values_list("label", flat=True))
    item = items[1]
    body = logged_in(alice).get(f"/datasets/{dataset.pk}/items/{item.pk}").content.decode()
    for label in set(Annotation.objects.filter(item=item).values_list("label", flat=True)):
        assert f'data-label="{label}" data-source="gt" style="--c: {colours(label)}"' in body
        assert f'style="background: {colours(label)}"></span>{label}<' in body


def test_a_bad_part_of_the_view_leaves_the_threshold_in_the_links(
    alice: User, dataset: Dataset, items: list[Item]
) -> None:
    body = (
        logged_in(alice)
        .get(f"/datasets/{dataset.pk}/items/{items[1].pk}?after=abc&conf=0.2")
        .content.decode()
    )
    back = re.search(r'href="([^"]+)" data-key-back', body).group(1)
    assert parse_qs(urlsplit(back).query) == {"conf": ["0.2"]}


def test_it_shows_image_quality_with_its_meaning(
    alice: User, dataset: Dataset, items: list[Item]
) -> None:
    item = items[0]
    body = logged_in(alice).get(f"/datasets/{dataset.pk}/items/{item.pk}").content.decode()
    table = re.search(r'data-testid="quality">(.*?)</table>', body, re.S)
    assert table is not None
    assert '<th class="mono">blur</th>' in table.group(1)
    assert "lower is blurrier" in table.group(1)
    assert 'data-testid="quality-notes"' not in body  # a drawn scene: nothing to flag

    Item.objects.filter(pk=item.pk).update(quality_blur=5, quality_brightness=20)
    body = logged_in(alice).get(f"/datasets/{dataset.pk}/items/{item.pk}").content.decode()
    notes = re.search(r'data-testid="quality-notes">(.*?)</div>', body, re.S)
    assert notes is not None
    assert re.findall(r'class="pill">([^<]+)<', notes.group(1)) == ["blurry", "dark"]

    Item.objects.filter(pk=item.pk).update(quality_blur=None)
    body = logged_in(alice).get(f"/datasets/{dataset.pk}/items/{item.pk}").content.decode()
    assert "Not computed yet" in body


def editor_data(body: str) -> Any:
    found = re.search(r'<script id="editor-data" type="application/json">(.*?)</script>', body)
    return json.loads(found.group(1)) if found else None


def test_a_curator_gets_the_editor_with_each_annotation_and_its_version(
    bob: User, dataset: Dataset, items: list[Item]
) -> None:
    item = items[2]
    Annotation.objects.filter(item=item).update(version=4)
    body = logged_in(bob).get(f"/datasets/{dataset.pk}/items/{item.pk}").content.decode()
    assert 'data-testid="edit-button"' in body
    data = editor_data(body)
    assert data is not None
    stored = list(Annotation.objects.filter(item=item).order_by("id"))
    assert [(a["pk"], a["label"], a["version"]) for a in data["annotations"]] == [
        (a.pk, a.label, 4) for a in stored
    ]
    # the predictions drawn (at the page's threshold), and every label to complete
    drawn = Prediction.objects.filter(item=item, confidence__gte=0.5).count()
    assert len(data["predictions"]) == drawn
    assert set(data["colours"]) >= {"car", "person", "bicycle", "traffic light"}
    assert data["annotationUrl"] == f"/api/v1/datasets/{dataset.pk}/annotations/"
    assert data["createUrl"] == f"/api/v1/datasets/{dataset.pk}/items/{item.pk}/annotations"
    assert 'data-open="0"' in body


@pytest.mark.parametrize(
    ("next_value", "kept"),
    [
        ("/datasets/1/review/?queue=3", "/datasets/1/review/?queue=3"),
        ("https://example.com/steal", ""),
        ("//example.com/steal", ""),
        ("/\\example.com", ""),
        ("javascript:alert(1)", ""),
        ("relative/path", ""),
    ],
)
def test_edit_opens_the_editor_and_next_must_be_a_local_path(
    bob: User, dataset: Dataset, items: list[Item], next_value: str, kept: str
) -> None:
    response = logged_in(bob).get(
        f"/datasets/{dataset.pk}/items/{items[0].pk}", {"edit": "1", "next": next_value}
    )
    body = response.content.decode()
    assert 'data-open="1"' in body
    data = editor_data(body)
    assert data is not None and data["next"] == kept


def test_a_viewer_gets_no_editor(victor: User, dataset: Dataset, items: list[Item]) -> None:
    body = (
        logged_in(victor)
        .get(f"/datasets/{dataset.pk}/items/{items[0].pk}", {"edit": "1"})
        .content.decode()
    )
    assert "editor-data" not in body and 'data-testid="edit-button"' not in body
    assert "editor.js" not in body


def test_the_item_address_with_a_trailing_slash_moves_to_the_one_without(
    bob: User, dataset: Dataset, items: list[Item]
) -> None:
    path = f"/datasets/{dataset.pk}/items/{items[0].pk}"
    response = logged_in(bob).get(f"{path}/?edit=1&next=/datasets/{dataset.pk}/")
    assert response.status_code == 301
    assert response["Location"] == f"{path}?edit=1&next=/datasets/{dataset.pk}/"


def test_the_history_panel_lists_changes_and_a_curator_reverts_one(
    alice: User, bob: User, victor: User, dataset: Dataset
) -> None:
    ids = add_items(dataset, {"reference_id": "h", "annotations": [box(id="h-1")]})
    with change_context(user=bob, source="api"):
        add_items(dataset, {"reference_id": "h", "annotations": [box(id="h-1", label="bus")]})
    url = f"/datasets/{dataset.pk}/items/{ids['h']}"
    body = logged_in(bob).get(url).content.decode()
    panel = body.split('data-testid="item-history"')[1].split("</section>")[0]
    assert "by <strong>bob</strong> via api" in panel
    assert "car (box) at 10,10 20x20 → bus (box) at 10,10 20x20" in panel
    assert panel.count(">Revert</button>") == 1  # only the latest change of h-1
    # A viewer sees the history but no Revert button.
    assert ">Revert</button>" not in logged_in(victor).get(url).content.decode()
    change = re.search(r'action="(/datasets/\d+/history/(\d+)/revert)"', panel)
    assert change is not None
    refused = logged_in(victor).post(change.group(1), {"next": url})
    assert refused.status_code == 403
    reverted = logged_in(bob).post(change.group(1), {"next": url})
    assert reverted.status_code == 302 and reverted["Location"] == url
    assert Annotation.objects.get(annotation_id="h-1").label == "car"
    after = logged_in(bob).get(url).content.decode()
    assert f"(reverts {change.group(2)})" in after
