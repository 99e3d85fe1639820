"""The admin is scoped like the API for staff who are not superusers."""

import pytest

from accounts.models import Role
from accounts.tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from contacts.models import Tag
from contacts.tests.factories import TagFactory

pytestmark = pytest.mark.django_db


def staff_member(role, organization=None):
    membership = MembershipFactory(role=role, organization=organization or OrganizationFactory())
    membership.user.is_staff = True
    membership.user.save(update_fields=["is_staff"])
    return membership


def test_staff_see_only_their_organizations_rows(client):
    membership = staff_member(Role.MANAGER)
    TagFactory(organization=membership.organization, name="ours-tag")
    theirs = TagFactory(name="theirs-tag")
    client.force_login(membership.user)

    changelist = client.get("/admin/contacts/tag/")
    assert changelist.status_code == 200
    assert b"ours-tag" in changelist.content
    assert b"theirs-tag" not in changelist.content

    # Another organization's row is "not found": the admin redirects away instead of showing it.
    assert client.get(f"/admin/contacts/tag/{theirs.pk}/change/").status_code == 302
    client.post(f"/admin/contacts/tag/{theirs.pk}/change/", {"name": "hijacked"})
    theirs.refresh_from_db()
    assert theirs.name == "theirs-tag"


def test_staff_can_only_pick_their_own_organizations(client):
    membership = staff_member(Role.MANAGER)
    other = OrganizationFactory(name="Not Mine Ltd")
    client.force_login(membership.user)
    add_page = client.get("/admin/contacts/tag/add/")
    assert add_page.status_code == 200
    assert membership.organization.name.encode() in add_page.content
    assert b"Not Mine Ltd" not in add_page.content

    client.post("/admin/contacts/tag/add/", {"organization": str(other.pk), "name": "planted"})
    assert not Tag.objects.filter(name="planted").exists()
    client.post("/admin/contacts/tag/add/", {"organization": str(membership.organization.pk), "name": "mine"})
    assert Tag.objects.get(name="mine").organization == membership.organization


def test_viewer_staff_read_but_cannot_change(client):
    membership = staff_member(Role.VIEWER)
    tag = TagFactory(organization=membership.organization, name="read-only")
    client.force_login(membership.user)
    assert client.get("/admin/contacts/tag/").status_code == 200
    assert client.get("/admin/contacts/tag/add/").status_code == 403
    client.post(f"/admin/contacts/tag/{tag.pk}/change/", {"organization": str(tag.organization_id), "name": "x"})
    tag.refresh_from_db()
    assert tag.name == "read-only"


def test_staff_see_only_their_organizations_in_the_organization_admin(client):
    membership = staff_member(Role.ADMIN)
    OrganizationFactory(name="Hidden Org")
    client.force_login(membership.user)
    page = client.get("/admin/accounts/organization/")
    assert page.status_code == 200
    assert membership.organization.name.encode() in page.content
    assert b"Hidden Org" not in page.content


def test_superuser_sees_everything(client):
    admin = UserFactory(is_staff=True, is_superuser=True)
    TagFactory(name="alpha-tag")
    TagFactory(name="beta-tag")
    client.force_login(admin)
    page = client.get("/admin/contacts/tag/")
    assert b"alpha-tag" in page.content
    assert b"beta-tag" in page.content


@pytest.mark.parametrize(
    "changelist",
    ["/admin/contacts/tag/", "/admin/contacts/contact/", "/admin/accounts/membership/", "/admin/campaigns/campaign/"],
)
def test_by_organization_filter_lists_only_their_organizations(client, changelist):
    membership = staff_member(Role.ADMIN, OrganizationFactory(name="Our Own Org"))
    # A filter shows once there are two choices: the staff member is in two organizations.
    MembershipFactory(user=membership.user, organization=OrganizationFactory(name="Our Second Org"), role=Role.ADMIN)
    rival = OrganizationFactory(name="Rival Corp")
    TagFactory(organization=rival)
    MembershipFactory(organization=rival, role=Role.OWNER)
    client.force_login(membership.user)

    page = client.get(changelist)

    assert page.status_code == 200
    assert b"Our Own Org" in page.content
    assert b"Our Second Org" in page.content
    assert b"Rival Corp" not in page.content
    filtered = client.get(changelist, {"organization__id__exact": str(membership.organization.pk)})
    assert filtered.status_code == 200


def test_superuser_filter_lists_every_organization(client):
    admin = UserFactory(is_staff=True, is_superuser=True)
    OrganizationFactory(name="Rival Corp")
    OrganizationFactory(name="Other Corp")
    client.force_login(admin)
    page = client.get("/admin/contacts/tag/").content
    assert b"Rival Corp" in page
    assert b"Other Corp" in page


def test_user_choices_are_members_of_their_organizations(rf):
    from django.contrib import admin as django_admin

    from callbacks.models import CallbackRequest

    membership = staff_member(Role.MANAGER)
    colleague = MembershipFactory(organization=membership.organization)
    stranger = MembershipFactory()
    request = rf.get("/")
    request.user = membership.user
    model_admin = django_admin.site._registry[CallbackRequest]
    field = model_admin.formfield_for_foreignkey(CallbackRequest._meta.get_field("assigned_to"), request)

    choices = set(field.queryset)

    assert colleague.user in choices
    assert stranger.user not in choices


def test_bulk_delete_reaches_only_organizations_where_the_role_may_write(client):
    """A manager in one organization and a viewer in another sees both organizations' tags, but
    the bulk delete of a mixed selection is refused and deletes nothing."""
    membership = staff_member(Role.MANAGER)
    other = OrganizationFactory()
    MembershipFactory(user=membership.user, organization=other, role=Role.VIEWER)
    ours = TagFactory(organization=membership.organization, name="ours-tag")
    theirs = TagFactory(organization=other, name="read-only-tag")
    client.force_login(membership.user)
    assert b"read-only-tag" in client.get("/admin/contacts/tag/").content
    response = client.post(
        "/admin/contacts/tag/",
        {"action": "delete_selected", "post": "yes", "_selected_action": [str(ours.pk), str(theirs.pk)]},
    )
    assert response.status_code == 403
    assert set(Tag.objects.values_list("name", flat=True)) == {"ours-tag", "read-only-tag"}
