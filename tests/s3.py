"""An S3-compatible server on loopback (moto in server mode) and a default storage on it.

Import the fixtures into a test module: ``from tests.s3 import moto_server, s3_bucket,
s3_storage  # noqa: F401``. The server and bucket live for the whole session; each test
gets its own key prefix, so tests never see each other's objects.
"""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

import nucleus.settings

ACCESS_KEY = "nucleus-test-key"
SECRET_KEY = "nucleus-test-secret"
REGION = "us-east-1"
BUCKET = "nucleus-test"


@dataclass
class S3Bucket:
    """The test's view of the bucket: its client, name and this test's key prefix."""

    client: Any
    name: str
    prefix: str
    endpoint_url: str

    def keys(self) -> set[str]:
        """Every key under this test's prefix, relative to the prefix."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=self.prefix + "/"
        )
        return {
            obj["Key"][len(self.prefix) + 1 :] for page in pages for obj in page.get("Contents", [])
        }

    def read(self, key: str) -> bytes:
        body = self.client.get_object(Bucket=self.name, Key=f"{self.prefix}/{key}")["Body"]
        return bytes(body.read())


def _settings_module() -> ModuleType:
    """Evaluate nucleus/settings.py afresh, so tests use the storage config it builds."""
    spec = importlib.util.spec_from_file_location(
        "_nucleus_settings_for_s3", Path(nucleus.settings.__file__)
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def s3_client(moto_server: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=moto_server,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
    )


@pytest.fixture(scope="session")
def s3_bucket(s3_client: Any) -> str:
    s3_client.create_bucket(Bucket=BUCKET)
    return BUCKET


@pytest.fixture
def s3_storage(
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    _media_in_tmp: Path,
    moto_server: str,
    s3_client: Any,
    s3_bucket: str,
) -> S3Bucket:
    """Point the default storage at the bucket, configured as settings.py does from env.

    Depends on `_media_in_tmp` so that it runs after it and overrides its local storage.
    """
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    env = {
        "NUCLEUS_S3_BUCKET": s3_bucket,
        "NUCLEUS_S3_ENDPOINT_URL": moto_server,
        "NUCLEUS_S3_ACCESS_KEY_ID": ACCESS_KEY,
        "NUCLEUS_S3_SECRET_ACCESS_KEY": SECRET_KEY,
        "NUCLEUS_S3_REGION": REGION,
        "NUCLEUS_S3_PREFIX": prefix,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    configured = _settings_module()
    settings.STORAGES = {**settings.STORAGES, "default": configured.STORAGES["default"]}
    settings.MEDIA_URL_TTL = configured.MEDIA_URL_TTL
    return S3Bucket(client=s3_client, name=s3_bucket, prefix=prefix, endpoint_url=moto_server)
