"""Writes of the curation domain: `<noun>_<verb>(*, ...)`, typed and transactional."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from curation.authentication import hash_token, new_token_secret
from curation.models import ApiToken


@transaction.atomic
def token_create(*, user: Any, name: str) -> tuple[ApiToken, str]:
    """Create an API token; returns it and its secret, which is not stored and shown once."""
    secret = new_token_secret()
    token = ApiToken.objects.create(
        user=user, name=name[:200] or "token", prefix=secret[:12], key_hash=hash_token(secret)
    )
    return token, secret


def token_revoke(*, token: ApiToken) -> None:
    token.delete()
