"""A template previewed as a real contact of its organization, picked by name or email."""

import pytest

from accounts.models import Role
from accounts.tests.factories import MembershipFactory
from contacts.tests.factories import ContactFactory
from templates_app.tests.factories import MessageTemplateFactory

pytestmark = pytest.mark.django_db

ADMIN = "/admin/templates_app/messagetemplate/"


@pytest.fixture
def marketer(client):
    membership = MembershipFactory(role=Role.MANAGER, user__is_staff=True)
    client.force_login(membership.user)
    return client, membership.organization


def test_contacts_are_found_by_name_or_email_in_the_templates_organization(marketer):
    client, org = marketer
    template = MessageTemplateFactory(organization=org)
    ada = ContactFactory(organization=org, email="ada@example.com", first_name="Ada", last_name="Lovelace")
    ContactFactory(organization=org, email="grace@example.com", first_name="Grace")
    ContactFactory(email="ada@elsewhere.example", first_name="Ada")  # another organization's

    by_name = client.get(f"{ADMIN}{template.pk}/preview-contacts/?q=ada").json()["results"]
    assert by_name == [{"id": str(ada.public_id), "text": "Ada Lovelace <ada@example.com>"}]
    by_email = client.get(f"{ADMIN}{template.pk}/preview-contacts/?q=grace@").json()["results"]
    assert [row["text"] for row in by_email] == ["Grace Tester <grace@example.com>"]


def test_the_preview_renders_for_the_chosen_contact(marketer):
    client, org = marketer
    template = MessageTemplateFactory(
        organization=org,
        subject="Hello {{ contact.first_name }}",
        html_body='<p>From {{ contact.attributes.city }}</p><a href="{{ unsubscribe_url }}">u</a>',
    )
    ada = ContactFactory(organization=org, first_name="Ada", attributes={"city": "Utrecht"})
    page = client.get(f"{ADMIN}{template.pk}/change/")
    assert 'id="preview-contact-search"' in page.content.decode()

    preview = client.get(f"{ADMIN}{template.pk}/preview/?contact={ada.public_id}")
    assert preview.status_code == 200
    html = preview.content.decode()
    assert "Previewing as Ada Tester" in html
    assert "<strong>Subject:</strong> Hello Ada</p>" in html
    assert "From Utrecht" in html


def test_another_organizations_contact_or_template_is_not_found(marketer):
    client, org = marketer
    template = MessageTemplateFactory(organization=org)
    stranger = ContactFactory()
    assert client.get(f"{ADMIN}{template.pk}/preview/?contact={stranger.public_id}").status_code == 404
    assert client.get(f"{ADMIN}{template.pk}/preview/?contact=junk").status_code == 404
    theirs = MessageTemplateFactory(organization=stranger.organization)
    assert client.get(f"{ADMIN}{theirs.pk}/preview-contacts/?q=a").status_code == 404
    assert client.get(f"{ADMIN}{theirs.pk}/preview/?contact={stranger.public_id}").status_code == 404


def test_a_render_error_for_the_contact_is_shown_not_raised(marketer):
    client, org = marketer
    template = MessageTemplateFactory(
        organization=org, html_body='<p>{{ contact.attributes.tier.name }}</p><a href="{{ unsubscribe_url }}">u</a>'
    )
    contact = ContactFactory(organization=org)
    preview = client.get(f"{ADMIN}{template.pk}/preview/?contact={contact.public_id}")
    assert preview.status_code == 200
    assert 'class="errornote"' in preview.content.decode()


def test_a_syntax_error_stays_on_its_field(marketer):
    client, org = marketer
    response = client.post(
        f"{ADMIN}add/",
        {
            "organization": str(org.pk),
            "name": "Broken",
            "channel": "email",
            "purpose": "marketing",
            "subject": "Hi",
            "html_body": '<p>{{ contact.first_name </p><a href="{{ unsubscribe_url }}">u</a>',
            "text_body": "",
            "variables": "{}",
            "whatsapp_parameters": "[]",
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "html_body" in errors
    assert "line 1" in errors["html_body"][0]
