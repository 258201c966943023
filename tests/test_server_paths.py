"""Members see server paths relative to the import root; staff users see them whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth.models import User
from django.test import Client

from curation.fetch import server_paths_hidden
from curation.jobs import job_run
from curation.models import Item, Membership, Role
from tests.api_helpers import url
from tests.ingest_support import write_image


def test_it_makes_import_root_paths_relative(settings: Any, import_root: Path) -> None:
    root = str(import_root)
    settings.DATA_DIR = Path("/srv/nucleus-data")
    value = {
        "path": f"{root}/cam1/a.jpg",
        "errors": [
            {"source": f"{root}/b.jpg", "message": f"[Errno 2] No such file: '{root}/b.jpg'"}
        ],
        "root": root,
        "sibling": f"{root}2/c.jpg",
        "data": "/srv/nucleus-data/pg/base",
        "count": 3,
    }
    assert server_paths_hidden(value) == {
        "path": "cam1/a.jpg",
        "errors": [{"source": "b.jpg", "message": "[Errno 2] No such file: 'b.jpg'"}],
        "root": ".",
        "sibling": f"{root}2/c.jpg",  # another folder that only starts with the root's name
        "data": "$NUCLEUS_DATA_DIR/pg/base",
        "count": 3,
    }


def test_it_also_knows_a_root_by_its_resolved_path(settings: Any, tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    settings.NUCLEUS_IMPORT_ROOTS = [link]
    assert server_paths_hidden([f"{link}/x.jpg", f"{real}/y.jpg"]) == ["x.jpg", "y.jpg"]


def ingest_folder(dataset: Any, client: Any, import_root: Path) -> dict[str, Any]:
    write_image(import_root / "cam1" / "a.jpg")
    (import_root / "cam1" / "broken.jpg").write_bytes(b"not an image")
    started = client.post(
        url(dataset, "ingest"),
        {"source": {"type": "folder", "path": str(import_root / "cam1")}},
        format="json",
    )
    assert started.status_code == 202, started.json()
    job_run(job_id=started.json()["id"])
    return dict(client.get(url(dataset, f"jobs/{started.json()['id']}")).json())


def test_members_see_job_and_item_paths_relative_to_the_import_root(
    dataset: Any, bob: User, client_for: Any, import_root: Path
) -> None:
    client = client_for(bob)
    job = ingest_folder(dataset, client, import_root)
    assert job["error_count"] == 1, job
    shown = str(job)
    assert str(import_root) not in shown
    assert job["params"]["source"]["path"] == "cam1"
    assert job["errors"][0]["source"] == "cam1/broken.jpg"
    item = Item.objects.get(dataset=dataset, reference_id="a.jpg")
    listed = client.get(url(dataset, f"items/{item.pk}")).json()
    assert listed["source_uri"] == "cam1/a.jpg"

    session = Client()
    session.force_login(bob)
    for page in ("/jobs/", f"/datasets/{dataset.pk}/items/{item.pk}"):
        response = session.get(page)
        assert response.status_code == 200, page
        assert str(import_root) not in response.content.decode(), page


def test_staff_see_absolute_paths(
    dataset: Any, bob: User, client_for: Any, import_root: Path
) -> None:
    operator = User.objects.create_user("olga", "olga@example.com", "olga-password-1")
    operator.is_staff = True
    operator.save()
    Membership.objects.create(dataset=dataset, user=operator, role=Role.CURATOR)
    job = ingest_folder(dataset, client_for(operator), import_root)
    assert job["params"]["source"]["path"] == str(import_root.resolve() / "cam1")
    assert job["errors"][0]["source"] == str(import_root.resolve() / "cam1" / "broken.jpg")
