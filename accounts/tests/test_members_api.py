import re

import pytest
from django.core import mail

from accounts.models import Membership, Role, User
from accounts.tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

MEMBERS = "/api/v1/members/"


def accept_link(message) -> tuple[str, str]:
    match = re.search(r"/invite/accept\?uid=([\w-]+)&token=([\w-]+)", message.body)
    assert match, message.body
    return match.group(1), match.group(2)


def test_owner_invites_a_new_member_who_sets_a_password_and_signs_in(
    member_client, api_client, django_capture_on_commit_callbacks
):
    client, _, organization = member_client(Role.OWNER)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(MEMBERS, {"email": "New.Person@example.com", "role": "manager"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["user"]["email"] == "new.person@example.com"
    assert response.json()["role"] == "manager"

    invited = User.objects.get(email="new.person@example.com")
    assert not invited.has_usable_password()
    assert Membership.objects.get(user=invited).organization == organization
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["new.person@example.com"]
    assert organization.name in mail.outbox[0].subject

    uid, token = accept_link(mail.outbox[0])
    accept = api_client.post(
        "/api/v1/auth/invitations/accept", {"uid": uid, "token": token, "password": "Fresh-pass-word-42"}, format="json"
    )
    assert accept.status_code == 204
    login = api_client.post(
        "/api/v1/auth/login", {"email": "new.person@example.com", "password": "Fresh-pass-word-42"}, format="json"
    )
    assert login.status_code == 200
    # The link works once: the password change invalidates it.
    again = api_client.post(
        "/api/v1/auth/invitations/accept", {"uid": uid, "token": token, "password": "Other-pass-word-42"}, format="json"
    )
    assert again.status_code == 400
    assert "token" in again.json()


def test_inviting_an_existing_user_adds_a_membership_without_touching_the_password(
    member_client, django_capture_on_commit_callbacks
):
    client, _, _ = member_client(Role.ADMIN)
    existing = UserFactory()
    password_hash = existing.password
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(MEMBERS, {"email": existing.email, "role": "viewer"}, format="json")
    assert response.status_code == 201
    existing.refresh_from_db()
    assert existing.password == password_hash
    assert mail.outbox[0].to == [existing.email]
    assert "/invite/accept" not in mail.outbox[0].body


def test_inviting_a_member_twice_is_400(member_client):
    client, _, organization = member_client(Role.OWNER)
    existing = MembershipFactory(organization=organization, role=Role.VIEWER)
    response = client.post(MEMBERS, {"email": existing.user.email, "role": "viewer"}, format="json")
    assert response.status_code == 400
    assert "email" in response.json()


def test_bad_role_is_400(member_client):
    client, _, _ = member_client(Role.OWNER)
    response = client.post(MEMBERS, {"email": "x@example.com", "role": "emperor"}, format="json")
    assert response.status_code == 400
    assert "role" in response.json()
    assert not User.objects.filter(email="x@example.com").exists()


@pytest.mark.parametrize("role", [Role.MANAGER, Role.AGENT, Role.VIEWER])
def test_only_owners_and_admins_manage_members(member_client, role):
    client, _, _ = member_client(role)
    assert client.get(MEMBERS).status_code == 403
    assert client.post(MEMBERS, {"email": "x@example.com", "role": "viewer"}, format="json").status_code == 403


def test_admin_cannot_grant_the_owner_role(member_client):
    client, _, organization = member_client(Role.ADMIN)
    member = MembershipFactory(organization=organization, role=Role.VIEWER)
    response = client.patch(f"{MEMBERS}{member.pk}/", {"role": "owner"}, format="json")
    assert response.status_code == 400
    assert "role" in response.json()
    member.refresh_from_db()
    assert member.role == Role.VIEWER


def test_the_last_owner_cannot_step_down_or_be_removed(member_client):
    client, owner, organization = member_client(Role.OWNER)
    membership = Membership.objects.get(user=owner, organization=organization)
    assert client.patch(f"{MEMBERS}{membership.pk}/", {"role": "admin"}, format="json").status_code == 409
    assert client.delete(f"{MEMBERS}{membership.pk}/").status_code == 409
    membership.refresh_from_db()
    assert membership.role == Role.OWNER

    second_owner = MembershipFactory(organization=organization, role=Role.OWNER)
    assert client.patch(f"{MEMBERS}{membership.pk}/", {"role": "admin"}, format="json").status_code == 200
    assert Membership.objects.get(pk=second_owner.pk).role == Role.OWNER


def test_owner_changes_a_role_and_removes_a_member(member_client):
    client, _, organization = member_client(Role.OWNER)
    member = MembershipFactory(organization=organization, role=Role.VIEWER)
    response = client.patch(f"{MEMBERS}{member.pk}/", {"role": "agent"}, format="json")
    assert response.status_code == 200
    assert response.json()["role"] == "agent"
    assert client.delete(f"{MEMBERS}{member.pk}/").status_code == 204
    assert not Membership.objects.filter(pk=member.pk).exists()


def test_another_organizations_membership_answers_404(member_client):
    client, _, _ = member_client(Role.OWNER)
    foreign = MembershipFactory(role=Role.VIEWER)
    assert client.get(f"{MEMBERS}{foreign.pk}/").status_code == 404
    assert client.patch(f"{MEMBERS}{foreign.pk}/", {"role": "admin"}, format="json").status_code == 404
    assert client.delete(f"{MEMBERS}{foreign.pk}/").status_code == 404
    assert Membership.objects.filter(pk=foreign.pk, role=Role.VIEWER).exists()


def test_members_list(member_client):
    client, _, organization = member_client(Role.OWNER)
    MembershipFactory(organization=organization, role=Role.AGENT)
    MembershipFactory(role=Role.AGENT)  # elsewhere
    body = client.get(MEMBERS).json()
    assert body["count"] == 2
    assert {row["role"] for row in body["results"]} == {"owner", "agent"}
    assert client.get(MEMBERS, {"role": "agent"}).json()["count"] == 1


def test_current_organization_read_by_all_and_changed_by_admins(member_client):
    client, _, organization = member_client(Role.VIEWER)
    assert client.get("/api/v1/organization").json()["id"] == str(organization.pk)
    assert client.patch("/api/v1/organization", {"timezone": "UTC"}, format="json").status_code == 403

    admin_client, _, _ = member_client(Role.ADMIN, organization)
    bad = admin_client.patch("/api/v1/organization", {"timezone": "Mars/Olympus"}, format="json")
    assert bad.status_code == 400
    assert "timezone" in bad.json()
    ok = admin_client.patch("/api/v1/organization", {"timezone": "America/New_York"}, format="json")
    assert ok.status_code == 200
    organization.refresh_from_db()
    assert organization.timezone == "America/New_York"
