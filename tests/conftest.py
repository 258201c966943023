"""Shared fixtures. Named users, as in the style guide: alice owns the dataset, bob is a
curator on it, victor is a viewer, charlie has no role at all."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from curation.models import Dataset, Membership, Role
from curation.services import token_create


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    """PBKDF2's deliberate slowness is a quarter second per user fixture; tests need none."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _media_in_tmp(settings: Any, tmp_path: Path) -> Path:
    """Each test writes media under its own temporary folder and may import from it."""
    media = tmp_path / "media"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(media)},
        },
    }
    settings.MEDIA_ROOT = media
    imports = tmp_path / "import"
    imports.mkdir()
    settings.NUCLEUS_IMPORT_ROOTS = [imports]
    return media


@pytest.fixture
def import_root(tmp_path: Path) -> Path:
    return tmp_path / "import"


@pytest.fixture
def alice(db: None) -> User:
    return User.objects.create_user("alice", "alice@example.com", "alice-password-1")


@pytest.fixture
def bob(db: None) -> User:
    return User.objects.create_user("bob", "bob@example.com", "bob-password-1")


@pytest.fixture
def victor(db: None) -> User:
    return User.objects.create_user("victor", "victor@example.com", "victor-password-1")


@pytest.fixture
def charlie(db: None) -> User:
    return User.objects.create_user("charlie", "charlie@example.com", "charlie-password-1")


@pytest.fixture
def dataset(alice: User, bob: User, victor: User) -> Dataset:
    ds = Dataset.objects.create(name="street scenes", owner=alice)
    Membership.objects.create(dataset=ds, user=bob, role=Role.CURATOR)
    Membership.objects.create(dataset=ds, user=victor, role=Role.VIEWER)
    return ds


@pytest.fixture
def client_for() -> Callable[[User | None], APIClient]:
    """An API client authenticated with a fresh token of `user` (None: anonymous)."""

    def make(user: User | None) -> APIClient:
        client = APIClient()
        if user is not None:
            _, secret = token_create(user=user, name="test")
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        return client

    return make
