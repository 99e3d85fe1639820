"""The marketer's audience screens in the admin."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import Role
from accounts.tests.factories import MembershipFactory
from contacts.models import Contact, ContactTag, ImportJob, ImportStatus, ListMembership
from contacts.tests.factories import ContactFactory, ContactListFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def marketer(client):
    membership = MembershipFactory(role=Role.MANAGER)
    membership.user.is_staff = True
    membership.user.save(update_fields=["is_staff"])
    client.force_login(membership.user)
    return client, membership.organization


def test_import_from_the_admin_and_watch_it(marketer, django_capture_on_commit_callbacks):
    client, org = marketer
    contact_list = ContactListFactory(organization=org)
    upload = SimpleUploadedFile("people.csv", b"email,first_name\na@example.com,A\nnope,B\n", content_type="text/csv")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/contacts/importjob/add/",
            {"organization": str(org.pk), "file": upload, "tags": "from-admin", "contact_list": str(contact_list.pk)},
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    job = ImportJob.objects.get(organization=org)
    assert job.status == ImportStatus.COMPLETED
    assert ListMembership.objects.filter(contact_list=contact_list).count() == 1

    page = client.get(f"/admin/contacts/importjob/{job.pk}/change/")
    assert page.status_code == 200
    assert b"100%" in page.content
    assert b"line 3: &#x27;nope&#x27; is not a valid email address" in page.content


def test_tag_and_list_actions_and_csv_export(marketer):
    client, org = marketer
    contacts = [ContactFactory(organization=org) for _ in range(3)]
    contact_list = ContactListFactory(organization=org)
    ids = [str(c.pk) for c in contacts[:2]]

    client.post("/admin/contacts/contact/", {"action": "add_tag", "_selected_action": ids, "tag": "Spring"})
    assert ContactTag.objects.filter(tag__name="Spring").count() == 2

    client.post(
        "/admin/contacts/contact/",
        {"action": "add_to_list", "_selected_action": ids, "contact_list": str(contact_list.pk)},
    )
    assert ListMembership.objects.filter(contact_list=contact_list).count() == 2

    export = client.post("/admin/contacts/contact/", {"action": "export_csv", "_selected_action": ids})
    body = b"".join(export.streaming_content).decode()
    lines = body.strip().splitlines()
    assert lines[0].startswith("id,email,phone")
    assert len(lines) == 3
    assert "Spring" in lines[1]


def test_admin_contact_form_normalizes_and_refuses_bad_input(marketer):
    client, org = marketer
    response = client.post(
        "/admin/contacts/contact/add/",
        {
            "organization": str(org.pk),
            "email": "New@Example.com",
            "phone": "+31 6 12345678",
            "status": "subscribed",
            "attributes": "{}",
            "tag_links-TOTAL_FORMS": "0",
            "tag_links-INITIAL_FORMS": "0",
            "list_memberships-TOTAL_FORMS": "0",
            "list_memberships-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    contact = Contact.objects.get(organization=org)
    assert (contact.email, contact.email_domain, contact.phone) == ("new@example.com", "example.com", "+31612345678")

    bad = client.post(
        "/admin/contacts/contact/add/",
        {
            "organization": str(org.pk),
            "email": "broken",
            "status": "subscribed",
            "attributes": "{}",
            "tag_links-TOTAL_FORMS": "0",
            "tag_links-INITIAL_FORMS": "0",
            "list_memberships-TOTAL_FORMS": "0",
            "list_memberships-INITIAL_FORMS": "0",
        },
    )
    assert bad.status_code == 200
    assert b"not a valid email address" in bad.content
    assert Contact.objects.filter(organization=org).count() == 1
