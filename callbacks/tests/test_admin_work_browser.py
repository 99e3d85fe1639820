"""A manager adds a callback request by hand and an agent's request is worked in a real browser:
assigned, started, completed with a resolution; the activity log shows each step."""

from pathlib import Path

import pytest

from accounts.models import Role
from accounts.tests.factories import PASSWORD, MembershipFactory, OrganizationFactory
from callbacks.models import CallbackActivity, CallbackRequest, CallbackSource, CallbackStatus
from callbacks.tests.factories import agent_of
from contacts.tests.factories import ContactFactory

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


def test_a_manager_adds_assigns_starts_and_completes_a_callback(admin_page):
    organization = OrganizationFactory(name="Acme")
    manager = MembershipFactory(organization=organization, role=Role.MANAGER, user__is_staff=True)
    agent = agent_of(organization, user__email="alex@acme.example")
    ContactFactory(organization=organization, email="ada@example.com", first_name="Ada", phone="+31612345678")
    page = admin_page(manager.user, PASSWORD)

    page.goto("/admin/callbacks/callbackrequest/")
    page.locator(".object-tools a.addlink").click()
    assert page.locator("#id_organization").input_value() == str(organization.pk)
    # The contact by autocomplete: type, pick.
    page.locator(".field-contact .select2-selection").click()
    page.locator(".select2-search__field").fill("ada")
    page.locator(".select2-results__option", has_text="ada@example.com").click()
    page.fill("#id_reason", "Wants a quote")
    page.select_option("#id_urgency", label="Today")
    page.get_by_role("button", name="Save", exact=True).click()
    page.locator(".messagelist .success").wait_for()
    callback = CallbackRequest.objects.get(organization=organization)
    assert (callback.source, callback.phone, callback.status) == (CallbackSource.MANUAL, "+31612345678", "new")

    # Assign: only the organization's agents are offered, with who can be chosen explained.
    work = page.locator("#callback-work")
    assert "agent role" in work.locator("#callback-assign .help").inner_text()
    options = page.locator("#id_assign-agent option").all_inner_texts()
    assert [o for o in options if "@" in o] == ["alex@acme.example"]
    page.select_option("#id_assign-agent", label="alex@acme.example")
    page.fill("#id_note-note", "Alex knows the account")
    page.get_by_role("button", name="Assign").click()
    page.locator(".messagelist .success", has_text="Assigned to alex@acme.example").wait_for()

    page.get_by_role("button", name="Start the call").click()
    page.locator(".messagelist .success", has_text="Call started").wait_for()
    # Completing without a resolution is refused, with the reason.
    page.get_by_role("button", name="Complete").click()
    page.locator(".messagelist .error", has_text="Say how the request was resolved").wait_for()
    page.fill("#id_complete-resolution", "Quote sent by email")
    page.get_by_role("button", name="Complete").click()
    page.locator(".messagelist .success", has_text="Completed").wait_for()

    callback.refresh_from_db()
    assert (callback.status, callback.assigned_to, callback.resolution) == (
        CallbackStatus.COMPLETED,
        agent,
        "Quote sent by email",
    )
    log = page.locator("#activities-group").inner_text()
    assert "Alex knows the account" in log
    assert "Completed" in log
    assert CallbackActivity.objects.filter(callback=callback).count() == 4  # created, assigned, started, completed
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "callback-worked.png"), full_page=True)
