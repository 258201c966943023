"""The admin: every model's pages render, stay at a fixed number of queries, and keep
API token secrets and job progress safe."""

from __future__ import annotations

from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import CompositePrimaryKey
from django.db.models import Model as DjangoModel
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from curation.admin import EstimatedCountPaginator
from curation.authentication import HashedTokenAuthentication, hash_token
from curation.history.models import AnnotationChange, AnnotationEvent
from curation.models import (
    Annotation,
    ApiToken,
    Dataset,
    Item,
    ItemTag,
    Job,
    JobStatus,
    Membership,
    Model,
    Prediction,
    Role,
    Slice,
    SliceItem,
    SliceVersion,
    SliceVersionItem,
    Tag,
)
from curation.services import token_create

# Django's admin cannot register a model with a composite primary key: ShapeCount's (the
# per-item counts that the database's triggers alone write) is not in it.
CURATION_MODELS = sorted(
    (
        m
        for m in apps.get_app_config("curation").get_models()
        if not isinstance(m._meta.pk, CompositePrimaryKey)
    ),
    key=lambda m: m.__name__,
)


def build_rows(owner: User, member: User, suffix: str) -> dict[type[DjangoModel], DjangoModel]:
    """One row of every curation model, all in a new dataset."""
    dataset = Dataset.objects.create(name=f"ds-{suffix}", owner=owner)
    membership = Membership.objects.create(dataset=dataset, user=member, role=Role.VIEWER)
    item = Item.objects.create(
        dataset=dataset, reference_id=f"img-{suffix}.jpg", sha256="a" * 64, width=10, height=10
    )
    annotation = Annotation.objects.create(
        dataset=dataset,
        item=item,
        annotation_id=f"ann-{suffix}",
        kind="box",
        label="car",
        geometry={"x": 1, "y": 1, "width": 2, "height": 2},
    )
    model = Model.objects.create(dataset=dataset, name=f"model-{suffix}")
    prediction = Prediction.objects.create(
        model=model,
        item=item,
        prediction_id=f"pred-{suffix}",
        kind="category",
        label="car",
        confidence=0.5,
    )
    slice_ = Slice.objects.create(dataset=dataset, name=f"slice-{suffix}", created_by=owner)
    slice_item = SliceItem.objects.create(slice=slice_, item=item)
    tag = Tag.objects.create(dataset=dataset, name=f"tag-{suffix}")
    item_tag = ItemTag.objects.create(tag=tag, item=item)
    job = Job.objects.create(
        kind="ingest",
        dataset=dataset,
        created_by=owner,
        progress_done=3,
        progress_total=10,
        errors=[{"index": 2, "message": "not an image"}],
        error_count=1,
    )
    token, _ = token_create(user=member, name=f"token-{suffix}")
    version = SliceVersion.objects.create(slice=slice_, number=1, item_count=1)
    version_item = SliceVersionItem.objects.create(
        version=version, item_id=item.pk, reference_id=item.reference_id
    )
    # The history triggers recorded the annotation's creation (curation.history).
    change = AnnotationChange.objects.select_related("event").get(annotation_pk=annotation.pk)
    return {
        AnnotationChange: change,
        AnnotationEvent: change.event,
        SliceVersion: version,
        SliceVersionItem: version_item,
        Dataset: dataset,
        Membership: membership,
        Item: item,
        Annotation: annotation,
        Model: model,
        Prediction: prediction,
        Slice: slice_,
        SliceItem: slice_item,
        Tag: tag,
        ItemTag: item_tag,
        Job: job,
        ApiToken: token,
    }


@pytest.fixture
def root(db: None) -> User:
    return User.objects.create_superuser("root", "root@example.com", "root-password-1")


@pytest.fixture
def rows(root: User, alice: User) -> dict[type[DjangoModel], DjangoModel]:
    return build_rows(root, alice, "1")


@pytest.fixture
def root_client(root: User) -> Client:
    client = Client()
    client.force_login(root)
    return client


def admin_url(model: type[DjangoModel], view: str, *args: Any) -> str:
    return reverse(f"admin:curation_{model._meta.model_name}_{view}", args=args)


HISTORY = (AnnotationChange, AnnotationEvent)


@pytest.mark.parametrize(
    "model", [Job, SliceVersion, SliceVersionItem, *HISTORY], ids=lambda m: m.__name__
)
def test_records_of_work_done_cannot_be_added_by_hand(
    model: type[DjangoModel], root_client: Client
) -> None:
    assert root_client.get(admin_url(model, "add")).status_code == 403


def test_every_curation_model_is_registered() -> None:
    missing = [m.__name__ for m in CURATION_MODELS if m not in admin.site._registry]
    assert missing == []


@pytest.mark.parametrize("model", CURATION_MODELS, ids=lambda m: m.__name__)
def test_it_renders_the_changelist_and_change_page(
    model: type[DjangoModel], rows: dict[type[DjangoModel], DjangoModel], root_client: Client
) -> None:
    assert root_client.get(admin_url(model, "changelist")).status_code == 200
    obj = rows[model]
    response = root_client.get(admin_url(model, "change", obj.pk))
    assert response.status_code == 200
    assert str(obj) in response.content.decode()


@pytest.mark.parametrize(
    "model",
    [m for m in CURATION_MODELS if m not in (Job, SliceVersion, SliceVersionItem, *HISTORY)],
    ids=lambda m: m.__name__,
)
def test_it_renders_the_add_page(model: type[DjangoModel], root_client: Client) -> None:
    assert root_client.get(admin_url(model, "add")).status_code == 200


@pytest.mark.parametrize("model", CURATION_MODELS, ids=lambda m: m.__name__)
def test_changelists_take_the_same_queries_for_more_rows(
    model: type[DjangoModel],
    rows: dict[type[DjangoModel], DjangoModel],
    root: User,
    alice: User,
    root_client: Client,
) -> None:
    url = admin_url(model, "changelist")
    with CaptureQueriesContext(connection) as few:
        root_client.get(url)
    for suffix in ("2", "3", "4"):
        build_rows(root, alice, suffix)
    with CaptureQueriesContext(connection) as more:
        response = root_client.get(url)
    assert response.status_code == 200
    assert len(more) == len(few), [q["sql"] for q in more.captured_queries]


def test_a_user_who_is_not_staff_is_sent_to_the_login_page(
    alice: User, rows: dict[type[DjangoModel], DjangoModel]
) -> None:
    client = Client()
    client.force_login(alice)
    for url in (admin_url(Item, "changelist"), admin_url(Item, "change", rows[Item].pk)):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


def test_item_search_matches_reference_id_exactly(
    rows: dict[type[DjangoModel], DjangoModel], root: User, alice: User, root_client: Client
) -> None:
    build_rows(root, alice, "12")
    response = root_client.get(admin_url(Item, "changelist"), {"q": "img-1.jpg"})
    listed = [obj.reference_id for obj in response.context["cl"].result_list]
    assert listed == ["img-1.jpg"]


def test_items_can_be_filtered_by_dataset(
    rows: dict[type[DjangoModel], DjangoModel], root: User, alice: User, root_client: Client
) -> None:
    other = build_rows(root, alice, "2")
    response = root_client.get(
        admin_url(Item, "changelist"), {"dataset__id__exact": other[Dataset].pk}
    )
    assert [obj.pk for obj in response.context["cl"].result_list] == [other[Item].pk]


def test_the_dataset_page_edits_members_inline(
    rows: dict[type[DjangoModel], DjangoModel], root_client: Client
) -> None:
    response = root_client.get(admin_url(Dataset, "change", rows[Dataset].pk))
    assert 'name="memberships-0-role"' in response.content.decode()


def test_a_job_is_read_only_and_shows_progress_and_errors(
    rows: dict[type[DjangoModel], DjangoModel], root_client: Client
) -> None:
    job = rows[Job]
    page = root_client.get(admin_url(Job, "change", job.pk)).content.decode()
    assert "not an image" in page
    assert 'name="status"' not in page
    assert 'name="_save"' not in page
    listing = root_client.get(admin_url(Job, "changelist")).content.decode()
    assert "3 / 10" in listing
    response = root_client.post(admin_url(Job, "change", job.pk), {"status": "succeeded"})
    assert response.status_code == 403
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED


def test_the_cancel_action_cancels_unfinished_jobs(
    rows: dict[type[DjangoModel], DjangoModel], root_client: Client
) -> None:
    queued = rows[Job]
    done = Job.objects.create(kind="ingest", status=JobStatus.SUCCEEDED)
    response = root_client.post(
        admin_url(Job, "changelist"),
        {"action": "cancel_jobs", "_selected_action": [queued.pk, done.pk]},
        follow=True,
    )
    assert "Cancelled 1 job(s); 1 had already finished." in response.content.decode()
    queued.refresh_from_db()
    done.refresh_from_db()
    assert (queued.status, done.status) == (JobStatus.CANCELLED, JobStatus.SUCCEEDED)


def test_adding_a_token_shows_its_secret_once_and_stores_only_a_hash(
    alice: User, root_client: Client
) -> None:
    response = root_client.post(admin_url(ApiToken, "add"), {"user": alice.pk, "name": "ci"})
    assert response.status_code == 200
    secret = response.context["secret"]
    assert secret.startswith("nuc_") and secret in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert secret not in str(response.cookies)

    token = ApiToken.objects.get(name="ci")
    assert token.user == alice
    assert token.key_hash == hash_token(secret)
    assert HashedTokenAuthentication().authenticate_secret(secret)[0] == alice
    for url in (admin_url(ApiToken, "change", token.pk), admin_url(ApiToken, "changelist")):
        assert secret not in root_client.get(url).content.decode()


def test_a_token_hash_cannot_be_edited(
    rows: dict[type[DjangoModel], DjangoModel], root_client: Client
) -> None:
    token = rows[ApiToken]
    original_hash = token.key_hash
    response = root_client.post(
        admin_url(ApiToken, "change", token.pk), {"name": "renamed", "key_hash": "0" * 64}
    )
    assert response.status_code == 302
    token.refresh_from_db()
    assert (token.name, token.key_hash) == ("renamed", original_hash)


def test_the_paginator_estimates_a_large_unfiltered_table(
    rows: dict[type[DjangoModel], DjangoModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE curation_item")
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'curation_item'")
        estimate = cursor.fetchone()[0]
    monkeypatch.setattr(EstimatedCountPaginator, "exact_below", 0)
    assert EstimatedCountPaginator(Item.objects.all(), 100).count == estimate
    filtered = Item.objects.filter(reference_id="nope")
    assert EstimatedCountPaginator(filtered, 100).count == 0


def test_deleting_a_dataset_confirms_with_counts_then_deletes_everything(
    rows: dict[type[DjangoModel], DjangoModel], root_client: Client
) -> None:
    dataset = rows[Dataset]
    url = admin_url(Dataset, "delete", dataset.pk)
    page = root_client.get(url).content.decode()
    assert "Items: 1" in page and "Predictions: 1" in page
    assert "img-1.jpg" not in page  # counted, not listed row by row

    response = root_client.post(url, {"post": "yes"})
    assert response.status_code == 302
    for model in (Dataset, Item, Annotation, Prediction, Slice, SliceItem, Tag, ItemTag, Job):
        assert not model.objects.exists(), model.__name__
