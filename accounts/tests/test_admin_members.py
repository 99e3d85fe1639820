"""Memberships in the admin follow the members API's rules: only an owner grants or takes away the
owner role, an organization keeps an owner, and a refusal is a message, never a 500."""

import pytest

from accounts.models import Membership, Role
from accounts.tests.factories import MembershipFactory, OrganizationFactory

pytestmark = pytest.mark.django_db

MEMBERSHIPS = "/admin/accounts/membership/"


def staff(role, organization):
    membership = MembershipFactory(role=role, organization=organization)
    membership.user.is_staff = True
    membership.user.save(update_fields=["is_staff"])
    return membership


@pytest.fixture
def org():
    return OrganizationFactory(name="Acme")


@pytest.fixture
def owner(org):
    return staff(Role.OWNER, org)


@pytest.fixture
def admin_member(org, owner):
    return staff(Role.ADMIN, org)


def messages_of(response) -> str:
    return " ".join(str(m) for m in response.context["messages"])


def roles(org) -> dict:
    return {m.user.email: m.role for m in Membership.objects.filter(organization=org).select_related("user")}


def test_admin_cannot_make_itself_owner(client, org, owner, admin_member):
    client.force_login(admin_member.user)
    before = roles(org)

    response = client.post(f"{MEMBERSHIPS}{admin_member.pk}/change/", {"role": Role.OWNER}, follow=True)

    assert response.status_code == 200
    assert "Only an owner can grant or take away the owner role." in messages_of(response)
    assert roles(org) == before


def test_admin_cannot_demote_the_owner(client, org, owner, admin_member):
    client.force_login(admin_member.user)

    response = client.post(f"{MEMBERSHIPS}{owner.pk}/change/", {"role": Role.VIEWER}, follow=True)

    assert response.status_code == 200
    assert "Only an owner" in messages_of(response)
    owner.refresh_from_db()
    assert owner.role == Role.OWNER


def test_admin_cannot_remove_the_owner_one_by_one_or_in_bulk(client, org, owner, admin_member):
    viewer = MembershipFactory(organization=org, role=Role.VIEWER)
    client.force_login(admin_member.user)

    single = client.post(f"{MEMBERSHIPS}{owner.pk}/delete/", {"post": "yes"}, follow=True)
    assert single.status_code == 200
    assert "Only an owner" in messages_of(single)

    bulk = client.post(
        MEMBERSHIPS,
        {"action": "delete_selected", "post": "yes", "_selected_action": [str(viewer.pk), str(owner.pk)]},
        follow=True,
    )
    assert bulk.status_code == 200
    assert "Only an owner" in messages_of(bulk)
    # All or nothing: the viewer selected beside the owner is still there too.
    assert Membership.objects.filter(pk__in=[owner.pk, viewer.pk]).count() == 2


def test_admin_adds_members_by_email_like_the_api_but_not_owners(
    client, org, owner, admin_member, mailoutbox, django_capture_on_commit_callbacks
):
    client.force_login(admin_member.user)

    refused = client.post(
        f"{MEMBERSHIPS}add/",
        {"email": "boss@example.com", "organization": str(org.pk), "role": Role.OWNER},
        follow=True,
    )
    assert refused.status_code == 200
    assert "Only an owner" in messages_of(refused)
    assert not Membership.objects.filter(organization=org, user__email="boss@example.com").exists()

    with django_capture_on_commit_callbacks(execute=True):
        added = client.post(
            f"{MEMBERSHIPS}add/", {"email": "New@Example.com", "organization": str(org.pk), "role": Role.MANAGER}
        )
    assert added.status_code == 302
    membership = Membership.objects.get(organization=org, user__email="new@example.com")
    assert (membership.role, membership.invited_by) == (Role.MANAGER, admin_member.user)
    assert added["Location"].endswith(f"{MEMBERSHIPS}")  # not to a row that does not exist
    [invitation] = mailoutbox
    assert invitation.to == ["new@example.com"]

    again = client.post(
        f"{MEMBERSHIPS}add/",
        {"email": "new@example.com", "organization": str(org.pk), "role": Role.VIEWER},
        follow=True,
    )
    assert "already a member" in messages_of(again)
    assert Membership.objects.get(organization=org, user__email="new@example.com").role == Role.MANAGER


def test_owner_hands_ownership_over_but_the_last_owner_stays(client, org, owner, admin_member):
    client.force_login(owner.user)

    alone = client.post(f"{MEMBERSHIPS}{owner.pk}/change/", {"role": Role.ADMIN}, follow=True)
    assert alone.status_code == 200
    assert "An organization must keep at least one owner." in messages_of(alone)
    owner.refresh_from_db()
    assert owner.role == Role.OWNER

    assert client.post(f"{MEMBERSHIPS}{admin_member.pk}/change/", {"role": Role.OWNER}).status_code == 302
    assert client.post(f"{MEMBERSHIPS}{owner.pk}/change/", {"role": Role.ADMIN}).status_code == 302
    assert roles(org) == {owner.user.email: Role.ADMIN, admin_member.user.email: Role.OWNER}


def test_a_membership_keeps_its_user_and_organization(client, org, owner, admin_member):
    elsewhere = staff(Role.OWNER, OrganizationFactory())
    MembershipFactory(user=admin_member.user, organization=elsewhere.organization, role=Role.ADMIN)
    client.force_login(admin_member.user)
    viewer = MembershipFactory(organization=org, role=Role.VIEWER)

    client.post(
        f"{MEMBERSHIPS}{viewer.pk}/change/",
        {"role": Role.VIEWER, "user": str(admin_member.user.pk), "organization": str(elsewhere.organization.pk)},
    )

    viewer.refresh_from_db()
    assert (viewer.user_id, viewer.organization_id) != (admin_member.user_id, elsewhere.organization_id)
    assert viewer.organization_id == org.pk


# --- the organization page's members inline ---------------------------------------------------


def organization_form(org, rows):
    data = {
        "name": org.name,
        "slug": org.slug,
        "timezone": org.timezone,
        "default_from_name": "",
        "default_from_email": "",
        "memberships-TOTAL_FORMS": str(len(rows)),
        "memberships-INITIAL_FORMS": str(len(rows)),
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
    }
    for i, (membership, role, delete) in enumerate(rows):
        data[f"memberships-{i}-id"] = str(membership.pk)
        data[f"memberships-{i}-organization"] = str(org.pk)
        data[f"memberships-{i}-user"] = str(membership.user_id)
        data[f"memberships-{i}-role"] = role
        if delete:
            data[f"memberships-{i}-DELETE"] = "on"
    return data


def test_inline_admin_cannot_make_itself_owner_or_demote_the_owner(client, org, owner, admin_member):
    client.force_login(admin_member.user)
    before = roles(org)
    url = f"/admin/accounts/organization/{org.pk}/change/"

    promote = client.post(
        url, organization_form(org, [(owner, Role.OWNER, False), (admin_member, Role.OWNER, False)]), follow=True
    )
    assert promote.status_code == 200
    assert "Only an owner" in messages_of(promote)

    demote = client.post(
        url, organization_form(org, [(owner, Role.VIEWER, False), (admin_member, Role.ADMIN, False)]), follow=True
    )
    assert demote.status_code == 200
    assert "Only an owner" in messages_of(demote)

    remove = client.post(
        url, organization_form(org, [(owner, Role.OWNER, True), (admin_member, Role.ADMIN, False)]), follow=True
    )
    assert remove.status_code == 200
    assert "Only an owner" in messages_of(remove)
    assert roles(org) == before


def test_inline_owner_hands_ownership_over_in_one_save(client, org, owner, admin_member):
    client.force_login(owner.user)
    url = f"/admin/accounts/organization/{org.pk}/change/"

    response = client.post(url, organization_form(org, [(owner, Role.ADMIN, False), (admin_member, Role.OWNER, False)]))

    assert response.status_code == 302, response.content.decode()[:3000]
    assert roles(org) == {owner.user.email: Role.ADMIN, admin_member.user.email: Role.OWNER}


def test_inline_cannot_hand_a_membership_to_another_user(client, org, owner, admin_member):
    viewer = MembershipFactory(organization=org, role=Role.VIEWER)
    client.force_login(admin_member.user)
    data = organization_form(org, [(owner, Role.OWNER, False), (viewer, Role.VIEWER, False)])
    data["memberships-1-user"] = str(admin_member.user_id)  # would swap the viewer row onto itself

    client.post(f"/admin/accounts/organization/{org.pk}/change/", data)

    viewer.refresh_from_db()
    assert viewer.user_id != admin_member.user_id
