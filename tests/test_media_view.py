"""The authenticated media view with local storage: /media/items/<id>/<original|thumbnail>."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from PIL import Image
from rest_framework.test import APIClient

from curation.models import Dataset, Item
from curation.storage import (
    MediaUrls,
    media_signature,
    media_signature_valid,
    media_signed_url,
    media_url,
)


def image_bytes(fmt: str, color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), color).save(out, format=fmt)
    return out.getvalue()


@pytest.fixture
def original() -> bytes:
    return image_bytes("JPEG")


@pytest.fixture
def thumbnail() -> bytes:
    return image_bytes("WEBP")


@pytest.fixture
def item(dataset: Dataset, original: bytes, thumbnail: bytes) -> Item:
    sha = hashlib.sha256(original).hexdigest()
    media_key = default_storage.save(
        f"datasets/{dataset.pk}/media/{sha[:2]}/{sha}.jpg", ContentFile(original)
    )
    thumbnail_key = default_storage.save(
        f"datasets/{dataset.pk}/thumbs/{sha}.webp", ContentFile(thumbnail)
    )
    return Item.objects.create(
        dataset=dataset,
        reference_id="cam1/0001.jpg",
        media_key=media_key,
        thumbnail_key=thumbnail_key,
        sha256=sha,
        byte_size=len(original),
        width=32,
        height=24,
    )


def session_client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def body(response: Any) -> bytes:
    return b"".join(response.streaming_content)


def test_it_streams_the_original_to_the_owner(alice: User, item: Item, original: bytes) -> None:
    response = session_client(alice).get(f"/media/items/{item.pk}/original")
    assert response.status_code == 200
    assert body(response) == original
    assert response["Content-Type"] == "image/jpeg"
    assert response["Content-Length"] == str(len(original))
    assert response["ETag"] == f'"{item.sha256}"'
    cache_control = {part.strip() for part in response["Cache-Control"].split(",")}
    assert cache_control == {"private", "max-age=3600"}
    assert "Authorization" in response["Vary"]


def test_it_streams_the_thumbnail(alice: User, item: Item, thumbnail: bytes) -> None:
    response = session_client(alice).get(f"/media/items/{item.pk}/thumbnail")
    assert response.status_code == 200
    assert body(response) == thumbnail
    assert response["Content-Type"] == "image/webp"
    assert response["ETag"] not in ("", f'"{item.sha256}"')


def test_it_answers_304_when_the_etag_matches(alice: User, item: Item) -> None:
    client = session_client(alice)
    for kind in ("original", "thumbnail"):
        etag = client.get(f"/media/items/{item.pk}/{kind}")["ETag"]
        response = client.get(f"/media/items/{item.pk}/{kind}", HTTP_IF_NONE_MATCH=etag)
        assert response.status_code == 304
        assert response.content == b""
        assert response["ETag"] == etag
        assert "private" in response["Cache-Control"]


def test_it_streams_again_when_the_etag_differs(alice: User, item: Item) -> None:
    response = session_client(alice).get(
        f"/media/items/{item.pk}/original", HTTP_IF_NONE_MATCH='"0000"'
    )
    assert response.status_code == 200


def test_it_serves_a_viewer_authenticated_by_api_token(
    victor: User, item: Item, original: bytes, client_for: Callable[[User | None], APIClient]
) -> None:
    response = client_for(victor).get(f"/media/items/{item.pk}/original")
    assert response.status_code == 200
    assert body(response) == original


@pytest.mark.parametrize("kind", ["original", "thumbnail"])
def test_it_hides_media_from_a_user_without_a_role(
    charlie: User, item: Item, kind: str, client_for: Callable[[User | None], APIClient]
) -> None:
    for client in (client_for(charlie), session_client(charlie)):
        response = client.get(f"/media/items/{item.pk}/{kind}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
        missing = client.get(f"/media/items/{item.pk + 1000}/{kind}")
        # Same answer as for an item that does not exist: existence stays private.
        assert missing.status_code == 404
        assert missing.json() == response.json()


def test_it_answers_401_to_an_anonymous_api_request(item: Item) -> None:
    response = Client().get(f"/media/items/{item.pk}/original", HTTP_ACCEPT="image/*")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "not_authenticated"


def test_it_sends_an_anonymous_browser_to_the_login_page(item: Item) -> None:
    response = Client().get(
        f"/media/items/{item.pk}/original", HTTP_ACCEPT="text/html,application/xhtml+xml"
    )
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert location.path == "/login/"
    assert f"/media/items/{item.pk}/original" in location.query


def test_it_rejects_an_invalid_token_even_with_a_session(alice: User, item: Item) -> None:
    client = session_client(alice)
    response = client.get(
        f"/media/items/{item.pk}/original", HTTP_AUTHORIZATION="Bearer nuc_not-a-token"
    )
    assert response.status_code == 401
    assert "token" in response.json()["error"]["message"].lower()


def test_it_answers_404_for_an_item_without_media(alice: User, dataset: Dataset) -> None:
    bare = Item.objects.create(dataset=dataset, reference_id="no-media")
    for kind in ("original", "thumbnail"):
        response = session_client(alice).get(f"/media/items/{bare.pk}/{kind}")
        assert response.status_code == 404
        assert kind in response.json()["error"]["message"]


def test_it_answers_404_when_the_file_is_gone_from_storage(alice: User, item: Item) -> None:
    default_storage.delete(item.media_key)
    response = session_client(alice).get(f"/media/items/{item.pk}/original")
    assert response.status_code == 404
    assert "missing" in response.json()["error"]["message"]


def test_it_knows_only_original_and_thumbnail(alice: User, item: Item) -> None:
    assert session_client(alice).get(f"/media/items/{item.pk}/raw").status_code == 404


def test_it_refuses_writes(alice: User, item: Item) -> None:
    assert session_client(alice).post(f"/media/items/{item.pk}/original").status_code == 405


def test_media_url_is_the_view_path_or_none(rf: Any, dataset: Dataset, item: Item) -> None:
    assert media_url(item, "original") == f"/media/items/{item.pk}/original"
    assert media_url(item, "thumbnail", rf.get("/")) == (
        f"http://testserver/media/items/{item.pk}/thumbnail"
    )
    bare = Item.objects.create(dataset=dataset, reference_id="no-media")
    assert media_url(bare, "original") is None


def test_a_signed_url_works_without_credentials(item: Item, original: bytes) -> None:
    url = media_signed_url(item, "original", ttl=60)
    assert url is not None and url.startswith("http://127.0.0.1:8000/media/")
    response = Client().get(url.removeprefix("http://127.0.0.1:8000"))
    assert response.status_code == 200
    assert body(response) == original


def test_a_signed_url_is_bound_to_its_item_kind_and_lifetime(dataset: Dataset, item: Item) -> None:
    other = Item.objects.create(dataset=dataset, reference_id="other", media_key=item.media_key)
    cases = {
        f"/media/items/{other.pk}/original": media_signature(item.pk, "original", ttl=60),
        f"/media/items/{item.pk}/thumbnail": media_signature(item.pk, "original", ttl=60),
        f"/media/items/{item.pk}/original": media_signature(item.pk, "original", ttl=-1),
    }
    for path, signature in cases.items():
        response = Client().get(path, {"sig": signature}, HTTP_ACCEPT="image/*")
        assert response.status_code == 401, path
    tampered = media_signature(item.pk, "original", ttl=60)[:-2] + "xx"
    response = Client().get(f"/media/items/{item.pk}/original", {"sig": tampered})
    assert response.status_code == 401


@pytest.mark.parametrize("fraction", [0, 1, 500_000, 999_999])
def test_a_signed_url_lives_at_least_its_ttl_whatever_the_fraction_of_the_second(
    item: Item, fraction: int
) -> None:
    """The expiry is counted in whole seconds; rounding it down once gave a URL asked for
    10 seconds as little as 9 (a signature made at .999 s expired 9.001 s later)."""
    signed_at = datetime(2030, 1, 1, 12, 0, 0, fraction, tzinfo=UTC)
    with time_machine.travel(signed_at, tick=False) as clock:
        signature = media_signature(item.pk, "original", ttl=10)
        url = MediaUrls(ttl=10).url(item.pk, item.media_key)
        assert url is not None
        token = parse_qs(urlsplit(url).query)["sig"][0]
        clock.move_to(signed_at + timedelta(seconds=10) - timedelta(microseconds=1))
        assert media_signature_valid(signature, item.pk, "original")
        assert media_signature_valid(token, item.pk, "original")
        clock.move_to(signed_at + timedelta(seconds=11))
        assert not media_signature_valid(signature, item.pk, "original")
        assert not media_signature_valid(token, item.pk, "original")


def test_a_versions_plain_media_url_needs_a_token_and_never_expires(
    alice: User,
    victor: User,
    charlie: User,
    item: Item,
    original: bytes,
    client_for: Callable[[User | None], APIClient],
) -> None:
    from curation.services import slice_create
    from curation.versions import slice_version_create

    chosen, _ = slice_create(
        dataset=item.dataset, user=alice, name="chosen", reference_ids=[item.reference_id]
    )
    slice_version_create(slice=chosen, user=alice)
    export = f"/api/v1/datasets/{item.dataset_id}/slices/{chosen.pk}/export?version=1"
    viewer = client_for(victor)
    response = viewer.get(export)
    (record,) = [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    url = record["media_url"]
    assert url == f"http://testserver/media/items/{item.pk}/original"
    assert body(viewer.get(url)) == original
    assert Client().get(url, HTTP_ACCEPT="image/*").status_code == 401
    assert client_for(charlie).get(url).status_code == 404
