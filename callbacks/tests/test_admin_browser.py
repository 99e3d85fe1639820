"""The callback settings page in a real browser, as a supervisor who types what they mean, typos included."""

import pytest

from accounts.models import Role
from accounts.tests.factories import PASSWORD, MembershipFactory
from callbacks.models import CallbackSettings

pytestmark = pytest.mark.django_db(transaction=True)


def test_absurd_sla_hours_are_a_form_error_and_nothing_changes(admin_page):
    membership = MembershipFactory(role=Role.ADMIN, user__is_staff=True)
    settings_row = CallbackSettings.objects.create(organization=membership.organization)
    page = admin_page(membership.user, PASSWORD)

    page.goto("/admin/")
    page.get_by_role("link", name="Callback settings").first.click()
    page.get_by_role("link", name=str(membership.organization)).first.click()
    page.fill("#id_sla_urgent_hours", "1000000000")
    page.fill("#id_sla_low_hours", "-12")
    page.get_by_role("button", name="Save", exact=True).click()

    page.locator(".errornote").wait_for()
    errors = page.locator(".errorlist").all_inner_texts()
    assert any("less than or equal to" in text for text in errors), errors
    assert any("greater than or equal to" in text for text in errors), errors
    settings_row.refresh_from_db()
    assert (settings_row.sla_urgent_hours, settings_row.sla_low_hours) == (2, 24)


def test_sensible_sla_hours_are_saved(admin_page):
    membership = MembershipFactory(role=Role.ADMIN, user__is_staff=True)
    settings_row = CallbackSettings.objects.create(organization=membership.organization)
    page = admin_page(membership.user, PASSWORD)

    page.goto(f"/admin/callbacks/callbacksettings/{settings_row.pk}/change/")
    page.fill("#id_sla_urgent_hours", "3")
    page.get_by_role("button", name="Save", exact=True).click()

    page.locator(".messagelist .success").wait_for()
    settings_row.refresh_from_db()
    assert settings_row.sla_urgent_hours == 3
