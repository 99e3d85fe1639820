"""Members in the admin, driven in a real browser by a staff admin who is not the owner."""

import pytest

from accounts.models import Membership, Role
from accounts.tests.factories import PASSWORD, MembershipFactory, OrganizationFactory

pytestmark = pytest.mark.django_db(transaction=True)


def staff(role, organization):
    membership = MembershipFactory(role=role, organization=organization, user__is_staff=True)
    return membership


def test_an_admin_cannot_make_itself_owner_nor_see_other_organizations(admin_page):
    acme = OrganizationFactory(name="Acme")
    OrganizationFactory(name="Globex Secret Corp")
    owner = staff(Role.OWNER, acme)
    admin = staff(Role.ADMIN, acme)
    page = admin_page(admin.user, PASSWORD)

    page.goto("/admin/")
    page.get_by_role("link", name="Memberships").first.click()
    assert "Globex Secret Corp" not in page.content()  # not in the list, nor in the "By organization" filter
    page.get_by_role("link", name=admin.user.email).click()
    page.select_option("#id_role", label="Owner")
    page.get_by_role("button", name="Save", exact=True).click()

    page.locator(".messagelist").wait_for()
    assert "Only an owner can grant or take away the owner role." in page.locator(".messagelist").inner_text()
    assert Membership.objects.get(pk=admin.pk).role == Role.ADMIN
    assert Membership.objects.get(pk=owner.pk).role == Role.OWNER


def test_an_admin_cannot_demote_the_owner(admin_page):
    acme = OrganizationFactory(name="Acme")
    owner = staff(Role.OWNER, acme)
    admin = staff(Role.ADMIN, acme)
    page = admin_page(admin.user, PASSWORD)

    page.goto("/admin/accounts/membership/")
    page.get_by_role("link", name=owner.user.email).click()
    page.select_option("#id_role", label="Viewer")
    page.get_by_role("button", name="Save", exact=True).click()

    page.locator(".messagelist").wait_for()
    assert "owner" in page.locator(".messagelist").inner_text().lower()
    assert Membership.objects.get(pk=owner.pk).role == Role.OWNER
