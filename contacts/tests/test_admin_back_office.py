"""The marketer's audience pages: segment builder and count, contacts with key/value attributes and an
engagement timeline, an export that imports back as the same contacts, and the import page."""

import csv
import io
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from accounts.models import Role
from accounts.tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from analytics.models import Conversion
from callbacks.tests.factories import CallbackRequestFactory
from campaigns.models import Enrollment, Message, MessageStatus, Sequence
from campaigns.tests.factories import CampaignFactory
from contacts.models import Contact, ContactTag, ImportJob, ImportStatus, Segment
from contacts.tests.factories import ContactFactory, ContactListFactory, SegmentFactory, TagFactory
from tracking.models import EventType, MessageEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def marketer(client):
    membership = MembershipFactory(role=Role.MANAGER, user__is_staff=True)
    client.force_login(membership.user)
    return client, membership.organization


def inline_management() -> dict:
    return {
        "tag_links-TOTAL_FORMS": "0",
        "tag_links-INITIAL_FORMS": "0",
        "list_memberships-TOTAL_FORMS": "0",
        "list_memberships-INITIAL_FORMS": "0",
    }


# --- segments --------------------------------------------------------------------------------------


def test_the_segment_page_offers_the_builder_with_the_rule_languages_fields(marketer):
    client, org = marketer
    page = client.get("/admin/contacts/segment/add/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'class="segment-builder-widget"' in html
    assert "contacts/segment_builder.js" in html
    spec = page.context["adminform"].form.fields["rules"].widget.get_context("rules", "{}", {})["widget"]["spec"]
    assert {"email", "status", "tags", "lists", "event", "created_at", "attributes."} <= {
        f["name"] for f in spec["fields"]
    }
    assert "did_not" in spec["operators"]["event"]
    assert page.context["adminform"].form.initial["organization"] == org.pk  # preselected


def test_a_bad_rule_is_an_error_on_the_form_naming_its_row(marketer):
    client, org = marketer
    rules = {"all": [{"field": "email", "op": "eq", "value": "a@example.com"}, {"field": "tags", "op": "gt"}]}
    response = client.post(
        "/admin/contacts/segment/add/", {"organization": str(org.pk), "name": "Bad", "rules": json.dumps(rules)}
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["rules"]
    assert errors[0].startswith("rules.all[1].op: unknown operator 'gt'")
    assert 'data-error-path="rules.all[1].op"' in response.content.decode()
    assert not Segment.objects.filter(name="Bad").exists()


def test_a_built_segment_is_saved_as_the_rule_json(marketer):
    client, org = marketer
    rules = {
        "all": [
            {"field": "tags", "op": "contains", "value": "vip"},
            {
                "any": [
                    {"field": "attributes.city", "op": "eq", "value": "Utrecht"},
                    {"field": "locale", "op": "eq", "value": "nl"},
                ]
            },
        ]
    }
    response = client.post(
        "/admin/contacts/segment/add/", {"organization": str(org.pk), "name": "VIP Utrecht", "rules": json.dumps(rules)}
    )
    assert response.status_code == 302
    assert Segment.objects.get(name="VIP Utrecht", organization=org).rules == rules


def test_the_live_count_uses_the_preview_and_stays_in_the_organization(marketer):
    client, org = marketer
    vip = TagFactory(organization=org, name="vip")
    ContactFactory(organization=org, tags=[vip], attributes={"city": "Utrecht"})
    ContactFactory(organization=org, attributes={"city": "Utrecht"})
    other = OrganizationFactory()
    ContactFactory(organization=other, tags=[TagFactory(organization=other, name="vip")])
    rules = {"all": [{"field": "tags", "op": "contains", "value": "vip"}]}

    counted = client.post("/admin/contacts/segment/preview/", {"organization": str(org.pk), "rules": json.dumps(rules)})
    assert counted.status_code == 200
    assert counted.json()["count"] == 1

    bad = client.post(
        "/admin/contacts/segment/preview/",
        {"organization": str(org.pk), "rules": json.dumps({"any": [{"field": "nope", "op": "eq", "value": 1}]})},
    )
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["path"] == "rules.any[0].field"

    assert client.post("/admin/contacts/segment/preview/", {"organization": "junk", "rules": "{}"}).status_code == 404
    theirs = client.post(
        "/admin/contacts/segment/preview/", {"organization": str(other.pk), "rules": json.dumps(rules)}
    )
    assert theirs.status_code == 404
    assert client.get(f"/admin/contacts/segment/choices/?organization={other.pk}").status_code == 404

    choices = client.get(f"/admin/contacts/segment/choices/?organization={org.pk}").json()
    assert choices["tags"] == ["vip"]


def test_the_segment_change_page_counts_its_contacts(marketer):
    client, org = marketer
    ContactFactory(organization=org, first_name="Ada")
    segment = SegmentFactory(organization=org, rules={"all": [{"field": "first_name", "op": "eq", "value": "ada"}]})
    page = client.get(f"/admin/contacts/segment/{segment.pk}/change/")
    assert page.status_code == 200
    assert f'data-organization="{org.pk}"' in page.content.decode()
    assert "Matching contacts now" in page.content.decode()


# --- contacts --------------------------------------------------------------------------------------


def test_attributes_are_edited_as_key_value_rows_and_stored_typed(marketer):
    client, org = marketer
    contact = ContactFactory(organization=org, attributes={"city": "Utrecht", "orders": 3})
    page = client.get(f"/admin/contacts/contact/{contact.pk}/change/")
    html = page.content.decode()
    assert 'name="attributes_key" value="city"' in html
    assert 'name="attributes_value" value="3"' in html
    assert '<textarea name="attributes"' not in html

    data = {
        "email": contact.email,
        "status": "subscribed",
        "attributes_key": ["city", "orders", "vip", "postcode", ""],
        "attributes_value": ["Amsterdam", "4", "true", "0123", ""],
        **inline_management(),
    }
    response = client.post(f"/admin/contacts/contact/{contact.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    contact.refresh_from_db()
    assert contact.attributes == {"city": "Amsterdam", "orders": 4, "vip": True, "postcode": "0123"}

    twice = {**data, "attributes_key": ["city", "city"], "attributes_value": ["A", "B"]}
    refused = client.post(f"/admin/contacts/contact/{contact.pk}/change/", twice)
    assert refused.status_code == 200
    assert "appears twice" in refused.content.decode()
    contact.refresh_from_db()
    assert contact.attributes["city"] == "Amsterdam"


def test_the_contact_page_shows_one_engagement_timeline_newest_first(marketer):
    client, org = marketer
    contact = ContactFactory(organization=org)
    now = timezone.now()
    campaign = CampaignFactory(organization=org, name="Spring sale")
    message = Message.objects.create(
        organization=org,
        campaign=campaign,
        contact=contact,
        to_address=contact.email,
        status=MessageStatus.CLICKED,
        sent_at=now - timedelta(days=3),
    )
    for kind, days, key in ((EventType.OPENED, 2, "o"), (EventType.CLICKED, 1, "c")):
        MessageEvent.objects.create(
            type=kind,
            occurred_at=now - timedelta(days=days),
            organization=org,
            campaign=campaign,
            message=message,
            contact=contact,
            url="https://example.com/offer" if kind == EventType.CLICKED else "",
            dedupe_key=key,
        )
    Conversion.objects.create(
        organization=org, contact=contact, campaign=campaign, value=Decimal("49.95"), currency="EUR",
        name="order", occurred_at=now - timedelta(hours=12),
    )  # fmt: skip
    sequence = Sequence.objects.create(
        organization=org, name="Onboarding", campaign=CampaignFactory(organization=org, name="Onboarding drip")
    )
    Enrollment.objects.create(organization=org, sequence=sequence, contact=contact, entered_at=now - timedelta(days=5))
    CallbackRequestFactory(
        organization=org, contact=contact, reason="Wants a demo", created_at=now - timedelta(hours=1)
    )
    stranger = ContactFactory()  # another organization's: its entries stay out
    CallbackRequestFactory(organization=stranger.organization, contact=stranger, reason="Not ours")

    page = client.get(f"/admin/contacts/contact/{contact.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Engagement timeline" in html
    order = [
        html.index("Wants a demo"),
        html.index("Conversion order: 49.95 EUR"),
        html.index("Clicked: Spring sale (https://example.com/offer)"),
        html.index("Opened: Spring sale"),
        html.index("EMAIL message of Spring sale"),
        html.index("Enrolled in the sequence Onboarding"),
    ]
    assert order == sorted(order)
    assert "Not ours" not in html


def test_the_timeline_is_paged(marketer):
    client, org = marketer
    contact = ContactFactory(organization=org)
    for n in range(30):
        CallbackRequestFactory(
            organization=org, contact=contact, reason=f"call {n:02d}", created_at=timezone.now() - timedelta(hours=n)
        )
    first = client.get(f"/admin/contacts/contact/{contact.pk}/change/").content.decode()
    assert "call 00" in first
    assert "call 24" in first
    assert "call 25" not in first
    assert "?timeline=2#timeline" in first
    second = client.get(f"/admin/contacts/contact/{contact.pk}/change/?timeline=2").content.decode()
    assert "call 25" in second
    assert "call 29" in second
    assert "call 00" not in second
    assert client.get(f"/admin/contacts/contact/{contact.pk}/change/?timeline=junk").status_code == 200


def test_another_organizations_contact_is_not_found(marketer):
    client, _ = marketer
    stranger = ContactFactory()
    page = client.get(f"/admin/contacts/contact/{stranger.pk}/change/")
    assert page.status_code == 302  # the admin's "does not exist" redirect, showing nothing of it
    assert stranger.email not in client.get(page.url).content.decode()


# --- export and import ----------------------------------------------------------------------------


def test_an_export_imports_back_as_the_same_contacts(marketer, django_capture_on_commit_callbacks):
    client, org = marketer
    vip, news = TagFactory(organization=org, name="vip"), TagFactory(organization=org, name="newsletter")
    ContactFactory(
        organization=org,
        email="ada@example.com",
        phone="+31612345678",
        first_name="Ada",
        last_name="Lovelace",
        timezone="Europe/Amsterdam",
        locale="nl",
        attributes={"city": "Utrecht", "orders": 3, "vip_since": "2024-01-05", "postcode": "0123", "active": True},
        consent={"email": True, "sms": False},
        tags=[vip, news],
    )
    ContactFactory(organization=org, email="grace@example.com", first_name="Grace", attributes={"city": "Delft"})
    ContactFactory(organization=org, email=None, email_domain="", phone="+31687654321", first_name="Alan")

    def fields(contact):
        tags = sorted(ContactTag.objects.filter(contact=contact).values_list("tag__name", flat=True))
        return (
            contact.email, contact.phone, contact.first_name, contact.last_name, contact.timezone, contact.locale,
            contact.attributes, contact.consent, tags,
        )  # fmt: skip

    before = {c.email or c.phone: fields(c) for c in Contact.objects.filter(organization=org)}
    ids = [str(pk) for pk in Contact.objects.filter(organization=org).values_list("pk", flat=True)]
    export = client.post("/admin/contacts/contact/", {"action": "export_csv", "_selected_action": ids})
    body = b"".join(export.streaming_content)
    header = next(csv.reader(io.StringIO(body.decode())))
    assert header[:10] == [
        "email", "phone", "first_name", "last_name", "timezone", "locale", "tags",
        "consent_email", "consent_sms", "consent_whatsapp",
    ]  # fmt: skip
    assert {"city", "orders", "vip_since", "postcode", "active"} <= set(header)

    # Into a fresh organization: the same contacts come out.
    fresh_member = MembershipFactory(role=Role.MANAGER, user__is_staff=True)
    fresh = fresh_member.organization
    client.force_login(fresh_member.user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/contacts/importjob/add/",
            {"organization": str(fresh.pk), "file": SimpleUploadedFile("contacts.csv", body, content_type="text/csv")},
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    job = ImportJob.objects.get(organization=fresh)
    assert job.status == ImportStatus.COMPLETED, job.failure_reason
    assert job.failed == 0
    after = {c.email or c.phone: fields(c) for c in Contact.objects.filter(organization=fresh)}
    assert after == before


def test_the_import_page_explains_the_columns_offers_a_sample_and_leads_to_the_job(
    marketer, django_capture_on_commit_callbacks
):
    client, org = marketer
    page = client.get("/admin/contacts/importjob/add/")
    html = page.content.decode()
    for column in ("consent_email", "consent_sms", "consent_whatsapp", "tags", "timezone"):
        assert f"<code>{column}</code>" in html
    assert "custom event" in html
    assert page.context["adminform"].form.initial["organization"] == org.pk

    sample = client.get("/admin/contacts/importjob/sample.csv")
    assert sample.status_code == 200
    assert sample["Content-Disposition"] == 'attachment; filename="contacts-sample.csv"'
    contact_list = ContactListFactory(organization=org)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/contacts/importjob/add/",
            {
                "organization": str(org.pk),
                "file": SimpleUploadedFile("sample.csv", sample.content, content_type="text/csv"),
                "contact_list": str(contact_list.pk),
                "event_name": "imported",
            },
        )
    job = ImportJob.objects.get(organization=org)
    assert response.status_code == 302
    assert response.url == f"/admin/contacts/importjob/{job.pk}/change/"
    assert job.status == ImportStatus.COMPLETED
    assert job.created == 3
    assert Contact.objects.get(organization=org, email="ada@example.com").attributes == {
        "city": "Utrecht",
        "plan": "gold",
    }


def test_tag_and_list_rows_show_no_raw_ids(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))  # the inlines need model permissions
    org = OrganizationFactory()
    tag, contact_list = TagFactory(organization=org, name="vip"), ContactListFactory(organization=org, name="News")
    contact = ContactFactory(organization=org, tags=[tag], lists=[contact_list])
    html = client.get(f"/admin/contacts/contact/{contact.pk}/change/").content.decode()
    assert f"{contact.pk} has {tag.pk}" not in html
    assert f"{contact.pk} on {contact_list.pk}" not in html
    assert "vip</option>" in html
    assert "News</option>" in html
    assert str(contact.tag_links.get()) == f"{contact} tagged vip"
    assert str(contact.list_memberships.get()) == f"{contact} on News"
