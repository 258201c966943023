"""Who may do what on a dataset. Every API view, HTML view and media URL goes through here.

A user with no role on a dataset gets 404, never 403: the dataset's existence is private.
A user with a role that is too low gets 403.
"""

from __future__ import annotations

from typing import Any

from curation.errors import Forbidden, NotFound
from curation.models import ROLE_RANK, Dataset, Role


def has_role(role: str | None, needed: str) -> bool:
    return role is not None and ROLE_RANK[Role(role)] >= ROLE_RANK[Role(needed)]


def dataset_for(user: Any, dataset_id: Any, needed: str = Role.VIEWER) -> Dataset:
    """The dataset if `user` holds at least `needed` on it; else NotFound / Forbidden."""
    try:
        dataset = Dataset.objects.select_related("owner").get(pk=int(dataset_id))
    except (Dataset.DoesNotExist, TypeError, ValueError):
        raise NotFound("Dataset not found.") from None
    role = dataset.role_of(user)
    if role is None:
        raise NotFound("Dataset not found.")
    if not has_role(role, needed):
        raise Forbidden(f"This needs the {needed} role on the dataset; you are {role}.")
    dataset.user_role = role
    return dataset
