"""Safe reading of ingest sources: URLs that cannot reach internal addresses, local paths
only inside the import roots, s3:// objects, never the service's own storage, and a size
cap on every read."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from curation import fetch
from curation.fetch import (
    AddressNotAllowed,
    BucketNotAllowed,
    FetchError,
    PathNotAllowed,
    TooLarge,
    address_refusal,
    read_local,
    read_location,
    read_s3,
    read_url,
    s3_url_check,
)
from tests.ingest_support import Served, s3_bucket_ensure, serve_http
from tests.s3 import S3Bucket, moto_server, s3_bucket, s3_client, s3_storage  # noqa: F401

BODY = b"\xff\xd8 pretend image bytes"
LIMIT = 1024 * 1024


@pytest.fixture
def http_server() -> Iterator[Served]:
    with serve_http() as served:
        yield served


@pytest.fixture
def allow_private(settings: Any) -> None:
    settings.NUCLEUS_ALLOW_PRIVATE_URLS = True


@pytest.fixture
def deny_private(settings: Any) -> None:
    settings.NUCLEUS_ALLOW_PRIVATE_URLS = False
    # Bounded, should a refused address ever be connected to after all.
    settings.NUCLEUS_FETCH_TIMEOUT = 3.0


# ------------------------------------------------------------------------------- http


def test_it_fetches_a_url_when_private_addresses_are_allowed(
    http_server: Served, allow_private: None
) -> None:
    http_server.files["/a.jpg"] = BODY
    assert read_url(http_server.url("/a.jpg"), max_bytes=LIMIT) == BODY


def test_it_keeps_the_host_name_while_connecting_to_the_checked_address(
    http_server: Served, allow_private: None
) -> None:
    http_server.files["/a.jpg"] = BODY
    assert read_url(f"http://localhost:{http_server.port}/a.jpg", max_bytes=LIMIT) == BODY
    assert http_server.requests == [("/a.jpg", f"localhost:{http_server.port}")]


def test_it_follows_redirects(http_server: Served, allow_private: None) -> None:
    http_server.files["/a.jpg"] = BODY
    http_server.redirects["/old"] = "/a.jpg"
    assert read_url(http_server.url("/old"), max_bytes=LIMIT) == BODY


def test_it_stops_after_a_few_redirects(http_server: Served, allow_private: None) -> None:
    http_server.redirects["/loop"] = "/loop"
    with pytest.raises(FetchError, match="redirects"):
        read_url(http_server.url("/loop"), max_bytes=LIMIT)
    assert len(http_server.requests) == fetch.MAX_REDIRECTS + 1


def test_it_checks_every_redirect_target(
    http_server: Served, deny_private: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Let this one test server pass as public; the redirect target must still be judged.
    real = fetch.address_refusal
    monkeypatch.setattr(fetch, "address_refusal", lambda a: None if a == "127.0.0.1" else real(a))
    http_server.redirects["/go"] = "http://169.254.169.254/latest/meta-data/"
    with pytest.raises(AddressNotAllowed, match=r"169\.254\.169\.254"):
        read_url(http_server.url("/go"), max_bytes=LIMIT)
    assert [path for path, _ in http_server.requests] == ["/go"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/a.jpg",
        "http://localhost:{port}/a.jpg",
        "http://[::1]:{port}/a.jpg",
        "http://[::ffff:127.0.0.1]:{port}/a.jpg",
        "http://0.0.0.0:{port}/a.jpg",
        "http://10.1.2.3/a.jpg",
        "http://192.168.0.10/a.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "https://[fe80::1]/a.jpg",
    ],
)
def test_it_refuses_internal_addresses_without_connecting(
    url: str, http_server: Served, deny_private: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_connect(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("connected to a refused address")

    monkeypatch.setattr(fetch, "create_connection", no_connect)
    http_server.files["/a.jpg"] = BODY
    with pytest.raises(AddressNotAllowed, match="NUCLEUS_ALLOW_PRIVATE_URLS"):
        read_url(url.format(port=http_server.port), max_bytes=LIMIT)
    assert http_server.requests == []


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("8.8.8.8", False),
        ("2606:4700:4700::1111", False),
        ("127.0.0.1", True),
        ("10.0.0.1", True),
        ("172.16.5.4", True),
        ("192.168.1.1", True),
        ("169.254.169.254", True),
        ("100.64.0.1", True),
        ("0.0.0.0", True),  # noqa: S104
        ("224.0.0.1", True),
        ("240.0.0.1", True),
        ("::1", True),
        ("::", True),
        ("fe80::1", True),
        ("fc00::1", True),
        ("ff02::1", True),
        ("::ffff:10.0.0.1", True),
        ("::ffff:8.8.8.8", False),
        ("2002:7f00:1::", True),  # 6to4 around 127.0.0.1
        ("64:ff9b::a9fe:a9fe", True),  # NAT64 around 169.254.169.254
    ],
)
def test_address_refusal(address: str, refused: bool) -> None:
    assert (address_refusal(address) is not None) is refused


def test_it_caps_the_declared_size(http_server: Served, allow_private: None) -> None:
    http_server.files["/big.jpg"] = b"\0" * 5000
    with pytest.raises(TooLarge):
        read_url(http_server.url("/big.jpg"), max_bytes=4999)


def test_it_caps_a_stream_without_a_declared_size(http_server: Served, allow_private: None) -> None:
    with pytest.raises(TooLarge):
        read_url(http_server.url("/stream-big"), max_bytes=10_000)


def test_it_reports_http_errors(http_server: Served, allow_private: None) -> None:
    with pytest.raises(FetchError, match="HTTP 404"):
        read_url(http_server.url("/missing.jpg"), max_bytes=LIMIT)


def test_it_reports_an_unreachable_server(allow_private: None) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the fetch: nobody listens there
    with pytest.raises(FetchError, match="connection failed"):
        read_url(f"http://127.0.0.1:{port}/a.jpg", max_bytes=LIMIT)


@pytest.mark.parametrize("url", ["ftp://example.com/a.jpg", "file:///etc/passwd", "gopher://x/"])
def test_it_refuses_other_schemes(url: str) -> None:
    with pytest.raises(FetchError, match="scheme"):
        read_location(url, max_bytes=LIMIT)


# ------------------------------------------------------------------------------ local


def test_it_reads_a_file_inside_an_import_root(import_root: Path) -> None:
    (import_root / "a.jpg").write_bytes(BODY)
    assert read_local(import_root / "a.jpg", max_bytes=LIMIT) == BODY


def test_it_refuses_a_path_outside_the_import_roots(tmp_path: Path, import_root: Path) -> None:
    (tmp_path / "secret.txt").write_bytes(b"secret")
    with pytest.raises(PathNotAllowed):
        read_local(tmp_path / "secret.txt", max_bytes=LIMIT)
    with pytest.raises(PathNotAllowed):
        read_local(f"{import_root}/../secret.txt", max_bytes=LIMIT)


def test_it_refuses_a_symlink_out_of_the_import_root(tmp_path: Path, import_root: Path) -> None:
    (tmp_path / "secret.txt").write_bytes(b"secret")
    os.symlink(tmp_path / "secret.txt", import_root / "innocent.jpg")
    with pytest.raises(PathNotAllowed):
        read_local(import_root / "innocent.jpg", max_bytes=LIMIT)


def test_it_refuses_relative_paths(import_root: Path) -> None:
    with pytest.raises(PathNotAllowed, match="absolute"):
        read_local("a.jpg", max_bytes=LIMIT)


def test_trusted_reads_may_leave_the_import_roots(tmp_path: Path) -> None:
    (tmp_path / "operator.jpg").write_bytes(BODY)
    assert read_local(tmp_path / "operator.jpg", max_bytes=LIMIT, trusted=True) == BODY


def test_it_caps_local_files(import_root: Path) -> None:
    (import_root / "big.jpg").write_bytes(b"\0" * 100)
    with pytest.raises(TooLarge):
        read_local(import_root / "big.jpg", max_bytes=99)


def test_it_reports_a_missing_file(import_root: Path) -> None:
    with pytest.raises(FetchError, match="does not exist"):
        read_local(import_root / "nope.jpg", max_bytes=LIMIT)


def test_it_refuses_a_folder(import_root: Path) -> None:
    (import_root / "dir").mkdir()
    with pytest.raises(FetchError):
        read_local(import_root / "dir", max_bytes=LIMIT)


def test_a_nul_character_is_a_fetch_error(import_root: Path) -> None:
    with pytest.raises(FetchError, match="cannot be resolved"):
        read_location(f"{import_root}/a\x00.jpg", max_bytes=LIMIT)


def test_it_refuses_media_storage_inside_an_import_root(
    tmp_path: Path, _media_in_tmp: Path, settings: Any
) -> None:
    # An operator made the whole parent folder an import root: media is still off limits.
    settings.NUCLEUS_IMPORT_ROOTS = [tmp_path]
    stored = _media_in_tmp / "datasets" / "1" / "media" / "ab" / "abc.jpg"
    stored.parent.mkdir(parents=True)
    stored.write_bytes(BODY)
    (tmp_path / "import" / "link.jpg").symlink_to(stored)

    for path in (stored, tmp_path / "import" / "link.jpg"):
        with pytest.raises(PathNotAllowed, match="media storage"):
            read_local(path, max_bytes=LIMIT)


def test_it_refuses_the_data_directory_but_not_an_import_root_inside_it(
    tmp_path: Path, settings: Any
) -> None:
    data = tmp_path / "var"
    (data / "import").mkdir(parents=True)
    (data / "secret_key").write_text("s3cret")
    (data / "import" / "a.jpg").write_bytes(BODY)
    settings.DATA_DIR = data
    settings.NUCLEUS_IMPORT_ROOTS = [data / "import"]
    assert read_local(data / "import" / "a.jpg", max_bytes=LIMIT) == BODY

    settings.NUCLEUS_IMPORT_ROOTS = [tmp_path]  # a root that holds the data directory
    with pytest.raises(PathNotAllowed, match="data directory"):
        read_local(data / "secret_key", max_bytes=LIMIT)
    with pytest.raises(PathNotAllowed, match="data directory"):
        read_local(data / "import" / "a.jpg", max_bytes=LIMIT)


# --------------------------------------------------------------------------------- s3


IMPORTS_BUCKET = "nucleus-test-imports"


@pytest.fixture
def s3_source(s3_storage: S3Bucket, settings: Any) -> S3Bucket:  # noqa: F811
    """A bucket to import from, next to the bucket that `s3_storage` stores media in."""
    settings.NUCLEUS_S3_ENDPOINT_URL = s3_storage.endpoint_url
    settings.NUCLEUS_S3_ACCESS_KEY_ID = "nucleus-test-key"
    settings.NUCLEUS_S3_SECRET_ACCESS_KEY = "nucleus-test-secret"
    settings.NUCLEUS_S3_REGION = "us-east-1"
    return S3Bucket(
        client=s3_storage.client,
        name=s3_bucket_ensure(s3_storage.client, IMPORTS_BUCKET),
        prefix=s3_storage.prefix,
        endpoint_url=s3_storage.endpoint_url,
    )


def test_it_reads_an_s3_object(s3_source: S3Bucket) -> None:
    key = f"{s3_source.prefix}/in/a.jpg"
    s3_source.client.put_object(Bucket=s3_source.name, Key=key, Body=BODY)
    assert read_location(f"s3://{s3_source.name}/{key}", max_bytes=LIMIT) == BODY


def test_it_caps_s3_objects(s3_source: S3Bucket) -> None:
    key = f"{s3_source.prefix}/in/big.jpg"
    s3_source.client.put_object(Bucket=s3_source.name, Key=key, Body=b"\0" * 100)
    with pytest.raises(TooLarge):
        read_s3(f"s3://{s3_source.name}/{key}", max_bytes=99)


def test_it_reports_a_missing_s3_object(s3_source: S3Bucket) -> None:
    with pytest.raises(FetchError, match="NoSuchKey"):
        read_s3(f"s3://{s3_source.name}/{s3_source.prefix}/nope.jpg", max_bytes=LIMIT)


def test_it_refuses_objects_in_its_own_media_storage(
    s3_source: S3Bucket,
    s3_storage: S3Bucket,  # noqa: F811
) -> None:
    key = f"{s3_storage.prefix}/datasets/1/media/ab/abc.jpg"
    s3_storage.client.put_object(Bucket=s3_storage.name, Key=key, Body=BODY)

    for url in (
        f"s3://{s3_storage.name}/{key}",
        f"s3://{s3_storage.name}//{key}",
        f"s3://{s3_storage.name.upper()}/{key}",
        f"s3://{s3_storage.name}/{s3_storage.prefix}",
    ):
        with pytest.raises(BucketNotAllowed, match="own media storage"):
            read_location(url, max_bytes=LIMIT)


def test_it_reads_the_rest_of_a_bucket_it_shares_under_a_prefix(
    s3_source: S3Bucket,
    s3_storage: S3Bucket,  # noqa: F811
) -> None:
    key = f"{s3_storage.prefix}-raw/a.jpg"  # beside the media prefix, not under it
    s3_storage.client.put_object(Bucket=s3_storage.name, Key=key, Body=BODY)
    assert read_location(f"s3://{s3_storage.name}/{key}", max_bytes=LIMIT) == BODY


def test_without_a_prefix_its_whole_bucket_is_refused(settings: Any) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {"bucket_name": "media-bucket", "location": ""},
        },
    }
    with pytest.raises(BucketNotAllowed, match="own media storage"):
        s3_url_check("s3://media-bucket/anything/at/all.jpg")
    with pytest.raises(BucketNotAllowed, match="own media storage"):
        s3_url_check("s3://media-bucket/", prefix_only=True)
    assert s3_url_check("s3://other-bucket/a.jpg") == ("other-bucket", "a.jpg")


def test_the_bucket_allow_list_limits_reads(s3_source: S3Bucket, settings: Any) -> None:
    key = f"{s3_source.prefix}/in/a.jpg"
    s3_source.client.put_object(Bucket=s3_source.name, Key=key, Body=BODY)
    url = f"s3://{s3_source.name}/{key}"

    settings.NUCLEUS_IMPORT_S3_BUCKETS = ["somewhere-else"]
    with pytest.raises(BucketNotAllowed, match="NUCLEUS_IMPORT_S3_BUCKETS"):
        read_location(url, max_bytes=LIMIT)

    settings.NUCLEUS_IMPORT_S3_BUCKETS = ["somewhere-else", s3_source.name]
    assert read_location(url, max_bytes=LIMIT) == BODY


@pytest.mark.parametrize(
    "url",
    [
        "s3://imports/raw/../media/a.jpg",
        "s3://imports/./a.jpg",
        "s3://imports/a.jpg/..",
        "s3://imports/a\x00.jpg",
        "s3://imports/",
        "s3:///a.jpg",
        "s3://user@imports/a.jpg",
    ],
)
def test_it_refuses_malformed_s3_urls(url: str) -> None:
    with pytest.raises(FetchError):
        s3_url_check(url)
