"""Media on an S3-compatible server (moto on loopback): storage operations, presigned
redirects from the media view, and who gets them."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image
from rest_framework.test import APIClient

from curation.ingest.services import ingest_enqueue
from curation.jobs import job_run
from curation.models import Dataset, Item, JobStatus
from curation.storage import media_exists, media_presign, media_signed_url, storage_is_s3
from tests.s3 import S3Bucket, moto_server, s3_bucket, s3_client, s3_storage  # noqa: F401


def jpeg_bytes(color: tuple[int, int, int] = (10, 120, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(out, format="JPEG")
    return out.getvalue()


def fetch(url: str) -> requests.Response:
    session = requests.Session()
    session.trust_env = False  # loopback: never through a proxy from the environment
    return session.get(url, timeout=10)


@pytest.fixture
def s3_item(s3_storage: S3Bucket, dataset: Dataset) -> Item:  # noqa: F811
    data = jpeg_bytes()
    sha = hashlib.sha256(data).hexdigest()
    key = default_storage.save(
        f"datasets/{dataset.pk}/media/{sha[:2]}/{sha}.jpg", ContentFile(data)
    )
    return Item.objects.create(
        dataset=dataset, reference_id="a.jpg", media_key=key, sha256=sha, byte_size=len(data)
    )


def test_it_saves_opens_and_deletes_through_default_storage(s3_storage: S3Bucket) -> None:  # noqa: F811
    data = jpeg_bytes()
    key = "datasets/1/media/ab/abc.jpg"
    assert storage_is_s3()
    assert default_storage.save(key, ContentFile(data)) == key
    assert media_exists(key)
    with default_storage.open(key, "rb") as handle:
        assert handle.read() == data
    assert s3_storage.keys() == {key}
    head = s3_storage.client.head_object(Bucket=s3_storage.name, Key=f"{s3_storage.prefix}/{key}")
    assert head["ContentType"] == "image/jpeg"

    # Content-addressed keys: saving the same key again overwrites, never renames.
    assert default_storage.save(key, ContentFile(data)) == key
    assert s3_storage.keys() == {key}

    default_storage.delete(key)
    assert not media_exists(key)
    assert s3_storage.keys() == set()


def test_it_presigns_path_style_urls_for_a_custom_endpoint(s3_storage: S3Bucket) -> None:  # noqa: F811
    default_storage.save("x/y.jpg", ContentFile(jpeg_bytes()))
    url = media_presign("x/y.jpg", ttl=90)
    assert url.startswith(
        f"{s3_storage.endpoint_url}/{s3_storage.name}/{s3_storage.prefix}/x/y.jpg?"
    )
    assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["90"]


def test_the_media_view_redirects_to_a_presigned_url_with_the_bytes(
    s3_storage: S3Bucket,  # noqa: F811
    s3_item: Item,
    alice: User,
    settings: object,
    client_for: Callable[[User | None], APIClient],
) -> None:
    settings.MEDIA_URL_TTL = 120  # type: ignore[attr-defined]
    response = client_for(alice).get(f"/media/items/{s3_item.pk}/original")
    assert response.status_code == 302
    # Never proxied: the bytes come from the bucket, not from Django.
    assert response.content == b""
    location = response["Location"]
    query = parse_qs(urlsplit(location).query)
    assert location.startswith(s3_storage.endpoint_url + "/")
    assert query["X-Amz-Expires"] == ["120"]
    assert query["X-Amz-Signature"][0]
    assert "max-age=60" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]

    fetched = fetch(location)
    assert fetched.status_code == 200
    assert fetched.content == s3_storage.read(s3_item.media_key)
    assert hashlib.sha256(fetched.content).hexdigest() == s3_item.sha256


def test_a_user_without_a_role_gets_404_and_no_url(
    s3_item: Item,
    charlie: User,
    client_for: Callable[[User | None], APIClient],
) -> None:
    response = client_for(charlie).get(f"/media/items/{s3_item.pk}/original")
    assert response.status_code == 404
    assert "Location" not in response
    assert b"X-Amz" not in response.content


def test_an_item_without_a_thumbnail_gets_404_on_s3(
    s3_item: Item, alice: User, client_for: Callable[[User | None], APIClient]
) -> None:
    response = client_for(alice).get(f"/media/items/{s3_item.pk}/thumbnail")
    assert response.status_code == 404
    assert "Location" not in response


def test_a_signed_url_for_export_is_a_presigned_url(s3_item: Item) -> None:
    url = media_signed_url(s3_item, "original", ttl=600)
    assert url is not None
    assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["600"]
    assert hashlib.sha256(fetch(url).content).hexdigest() == s3_item.sha256


def test_an_ingest_stores_originals_and_thumbnails_in_the_bucket(
    s3_storage: S3Bucket,  # noqa: F811
    dataset: Dataset,
    alice: User,
    import_root: Path,
) -> None:
    folder = import_root / "batch"
    folder.mkdir()
    for i in range(3):
        (folder / f"img{i}.jpg").write_bytes(jpeg_bytes(color=(60 * i, 90, 30)))

    def ingest() -> None:
        job = ingest_enqueue(
            dataset=dataset, user=alice, source={"type": "folder", "path": str(folder)}
        )
        finished = job_run(job_id=job.pk)
        assert finished is not None and finished.status == JobStatus.SUCCEEDED, finished

    ingest()
    items = list(Item.objects.filter(dataset=dataset).order_by("reference_id"))
    assert len(items) == 3
    keys = s3_storage.keys()
    assert keys == {i.media_key for i in items} | {i.thumbnail_key for i in items}
    for item in items:
        assert item.media_key.startswith(f"datasets/{dataset.pk}/media/")
        assert item.thumbnail_key.startswith(f"datasets/{dataset.pk}/thumbs/")
        original = s3_storage.read(item.media_key)
        assert hashlib.sha256(original).hexdigest() == item.sha256
        assert original == (folder / Path(item.reference_id).name).read_bytes()
        with Image.open(io.BytesIO(s3_storage.read(item.thumbnail_key))) as thumb:
            assert thumb.format == "WEBP"

    ingest()
    again = list(Item.objects.filter(dataset=dataset).order_by("reference_id"))
    assert [(i.pk, i.media_key, i.thumbnail_key) for i in again] == [
        (i.pk, i.media_key, i.thumbnail_key) for i in items
    ]
    assert s3_storage.keys() == keys
