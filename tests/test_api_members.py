"""Members: viewers list them; admins add, change and remove; the owner stays admin."""

from __future__ import annotations

from curation.models import Membership, Role
from tests.api_helpers import error_of, error_paths, url


def test_it_lists_the_owner_first_then_members(dataset, victor, client_for):
    results = client_for(victor).get(url(dataset, "members")).json()["results"]
    assert [(m["username"], m["role"], m["is_owner"]) for m in results] == [
        ("alice", "admin", True),
        ("bob", "curator", False),
        ("victor", "viewer", False),
    ]


def test_listing_without_a_role_is_404(dataset, charlie, client_for):
    error_of(client_for(charlie).get(url(dataset, "members")), 404)


def test_an_admin_adds_a_member(dataset, alice, charlie, client_for):
    response = client_for(alice).post(
        url(dataset, "members"), {"username": "charlie", "role": "viewer"}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["role"] == "viewer"
    assert dataset.role_of(charlie) == Role.VIEWER
    assert client_for(charlie).get(url(dataset)).status_code == 200


def test_posting_an_existing_member_changes_their_role(dataset, alice, bob, client_for):
    response = client_for(alice).post(
        url(dataset, "members"), {"username": "bob", "role": "admin"}, format="json"
    )
    assert response.status_code == 200
    assert dataset.role_of(bob) == Role.ADMIN
    assert Membership.objects.filter(dataset=dataset, user=bob).count() == 1


def test_an_admin_changes_a_role_by_user_id(dataset, alice, victor, client_for):
    response = client_for(alice).patch(
        url(dataset, f"members/{victor.pk}"), {"role": "curator"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["role"] == "curator"
    assert dataset.role_of(victor) == Role.CURATOR


def test_an_admin_removes_a_member(dataset, alice, victor, client_for):
    assert client_for(alice).delete(url(dataset, f"members/{victor.pk}")).status_code == 204
    assert dataset.role_of(victor) is None
    error_of(client_for(victor).get(url(dataset)), 404)


def test_the_owner_can_be_neither_demoted_nor_removed(dataset, alice, bob, client_for):
    Membership.objects.filter(dataset=dataset, user=bob).update(role=Role.ADMIN)
    client = client_for(bob)
    response = client.post(
        url(dataset, "members"), {"username": "alice", "role": "viewer"}, format="json"
    )
    assert error_paths(response) == ["username"]
    error_of(
        client.patch(url(dataset, f"members/{alice.pk}"), {"role": "viewer"}, format="json"), 400
    )
    error_of(client.delete(url(dataset, f"members/{alice.pk}")), 400)
    assert dataset.role_of(alice) == Role.ADMIN


def test_a_curator_cannot_manage_members(dataset, bob, victor, client_for):
    client = client_for(bob)
    error_of(
        client.post(
            url(dataset, "members"), {"username": "charlie", "role": "viewer"}, format="json"
        ),
        403,
    )
    error_of(client.delete(url(dataset, f"members/{victor.pk}")), 403)
    assert dataset.role_of(victor) == Role.VIEWER


def test_no_role_means_404_even_for_writes(dataset, charlie, victor, client_for):
    error_of(client_for(charlie).delete(url(dataset, f"members/{victor.pk}")), 404)


def test_bad_input_names_the_field(dataset, alice, client_for):
    client = client_for(alice)
    response = client.post(
        url(dataset, "members"), {"username": "nobody", "role": "viewer"}, format="json"
    )
    assert error_paths(response) == ["username"]
    response = client.post(
        url(dataset, "members"), {"username": "charlie", "role": "boss"}, format="json"
    )
    assert error_paths(response) == ["role"]


def test_an_unknown_member_is_404(dataset, alice, charlie, client_for):
    client = client_for(alice)
    error_of(client.delete(url(dataset, f"members/{charlie.pk}")), 404, "not_found")
    error_of(client.patch(url(dataset, "members/999999"), {"role": "viewer"}, format="json"), 404)


def test_anonymous_is_401(dataset, client_for):
    error_of(client_for(None).get(url(dataset, "members")), 401)
