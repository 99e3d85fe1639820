"""A marketer creates a template in a real browser and previews it as a contact picked by name."""

from pathlib import Path

import pytest

from accounts.models import Role
from accounts.tests.factories import PASSWORD, MembershipFactory, OrganizationFactory
from contacts.tests.factories import ContactFactory
from templates_app.models import MessageTemplate

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


def test_a_marketer_creates_a_template_and_previews_it_as_a_contact(admin_page):
    organization = OrganizationFactory(name="Acme")
    marketer = MembershipFactory(organization=organization, role=Role.MANAGER, user__is_staff=True)
    ContactFactory(organization=organization, email="ada@example.com", first_name="Ada", attributes={"city": "Utrecht"})
    ContactFactory(organization=organization, email="grace@example.com", first_name="Grace")
    ContactFactory(email="ada@elsewhere.example", first_name="Adalind")  # another organization's
    page = admin_page(marketer.user, PASSWORD)

    page.goto("/admin/templates_app/messagetemplate/")
    page.locator(".object-tools a.addlink").click()
    assert page.locator("#id_organization").input_value() == str(organization.pk)
    page.fill("#id_name", "Spring greeting")
    page.fill("#id_subject", "Spring is here, {{ contact.first_name }}")
    # A slip first: the syntax error stays on the field with its line.
    page.fill("#id_html_body", "<p>Hello {{ contact.first_name </p>")
    page.get_by_role("button", name="Save and continue editing").click()
    assert "line 1" in page.locator(".field-html_body .errorlist").inner_text()
    page.fill(
        "#id_html_body",
        '<p>Hello {{ contact.first_name }} from {{ contact.attributes.city or "nowhere" }}</p>'
        '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>',
    )
    page.get_by_role("button", name="Save and continue editing").click()
    page.locator(".messagelist .success").wait_for()
    assert MessageTemplate.objects.filter(organization=organization, name="Spring greeting").exists()

    page.fill("#preview-contact-search", "ada")
    choice = page.locator(".preview-contact", has_text="ada@example.com")
    choice.wait_for()
    assert page.locator(".preview-contact").count() == 1  # not the other organization's Adalind
    choice.click()
    page.locator(".preview-output", has_text="Previewing as Ada").wait_for()
    assert "Spring is here, Ada" in page.locator(".preview-output").inner_text()
    frame = page.frame_locator(".preview-output iframe")
    assert "Hello Ada from Utrecht" in frame.locator("body").inner_text()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "template-preview-as-contact.png"), full_page=True)
