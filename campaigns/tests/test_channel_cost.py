"""SMS and WhatsApp cost: the estimate in the dry-run, the actual figure in the stats; SMS templates
written as text_body; WhatsApp campaigns only with an approved template."""

import pytest
from django.utils import timezone

from accounts.models import Role
from campaigns.models import Campaign, Message, MessageStatus
from contacts.tests.factories import ContactFactory, TagFactory
from templates_app.models import MessageTemplate

pytestmark = pytest.mark.django_db
M = MessageStatus

# 170 GSM-7 characters once "Jane" (the sample contact) is in: two segments of 153.
LONG_SMS = "Hi {{ contact.first_name }}! " + "x" * 160


@pytest.fixture
def manager(member_client, settings):
    settings.SMS_BACKEND = "file"
    settings.WHATSAPP_BACKEND = "file"
    return member_client(Role.MANAGER)


def audience(organization):
    vip = TagFactory(organization=organization, name="vip")
    for number in ("+31612345601", "+31612345602", "+31612345603"):
        ContactFactory(organization=organization, phone=number, tags=[vip])
    ContactFactory(organization=organization, phone="+31612345604", tags=[vip], consent={"sms": False})
    ContactFactory(organization=organization, phone=None, email="mail-only@example.com", tags=[vip])


def create_campaign(client, channel, **template_fields):
    template = client.post(
        "/api/v1/templates/", {"name": f"{channel} template", "channel": channel, **template_fields}, format="json"
    )
    assert template.status_code == 201, template.content
    campaign = client.post(
        "/api/v1/campaigns/",
        {"name": "Texts", "channel": channel, "template": template.json()["id"], "audience": {"tags": ["vip"]}},
        format="json",
    )
    assert campaign.status_code == 201, campaign.content
    return campaign.json()["id"]


def test_an_sms_template_is_written_as_text_body(manager):
    client, _, _ = manager
    response = client.post(
        "/api/v1/templates/", {"name": "Sms", "channel": "sms", "text_body": LONG_SMS}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["text_body"], body["sms_body"], body["sms_segments"]) == (LONG_SMS, LONG_SMS, 2)

    response = client.patch(f"/api/v1/templates/{body['id']}/", {"text_body": "Short"}, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["sms_body"], response.json()["sms_segments"]) == ("Short", 1)
    response = client.patch(f"/api/v1/templates/{body['id']}/", {"sms_body": "Shorter"}, format="json")
    assert (response.json()["text_body"], response.json()["sms_body"]) == ("Shorter", "Shorter")

    response = client.patch(f"/api/v1/templates/{body['id']}/", {"text_body": "A", "sms_body": "B"}, format="json")
    assert response.status_code == 400
    assert "text_body" in response.json()
    assert MessageTemplate.objects.get(pk=body["id"]).sms_body == "Shorter"


def test_sms_dry_run_estimates_the_cost_from_segments_and_the_organizations_price(manager):
    client, _, organization = manager
    organization.sms_segment_price = "0.07500"
    organization.save()
    audience(organization)
    campaign_id = create_campaign(client, "sms", text_body=LONG_SMS)

    response = client.post(f"/api/v1/campaigns/{campaign_id}/dry-run")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["recipients"] == 3
    assert body["excluded"] == {"no_phone": 1, "no_consent": 1}
    assert body["estimated_cost"] == {"amount": "0.4500", "currency": "EUR", "segments": 6}

    organization.sms_segment_price = None
    organization.save()
    response = client.post(f"/api/v1/campaigns/{campaign_id}/dry-run")
    assert response.json()["estimated_cost"] == {"amount": None, "currency": "EUR", "segments": 6}


def test_sms_stats_cost_counts_the_messages_sent(manager, django_capture_on_commit_callbacks):
    client, _, organization = manager
    organization.sms_segment_price = "0.07500"
    organization.message_price_currency = "USD"
    organization.save()
    audience(organization)
    campaign_id = create_campaign(client, "sms", text_body=LONG_SMS)
    assert client.post(f"/api/v1/campaigns/{campaign_id}/launch").status_code == 200
    campaign = Campaign.objects.get(pk=campaign_id)
    contacts = list(organization_contacts(organization))
    statuses = [M.SENT, M.DELIVERED, M.QUEUED, M.FAILED]
    Message.objects.bulk_create(
        [
            Message(
                organization=organization,
                campaign=campaign,
                contact=contact,
                to_address=contact.phone,
                status=status,
                sent_at=timezone.now() if status >= M.SENT else None,
            )
            for contact, status in zip(contacts, statuses, strict=True)
        ],
        ignore_conflicts=True,
    )

    response = client.get(f"/api/v1/campaigns/{campaign_id}/stats")

    assert response.status_code == 200, response.content
    # Sent and delivered count; queued and failed cost nothing.
    assert response.json()["cost"] == {"amount": "0.3000", "currency": "USD", "segments": 4}


def organization_contacts(organization):
    from contacts.models import Contact

    return Contact.objects.filter(organization=organization, phone__isnull=False).order_by("id")


def test_whatsapp_cost_is_per_message_and_email_has_none(manager):
    client, _, organization = manager
    organization.whatsapp_message_price = "0.04000"
    organization.save()
    audience(organization)
    campaign_id = create_campaign(
        client, "whatsapp", whatsapp_template_name="spring_sale", whatsapp_language="en", whatsapp_parameters=[]
    )
    body = client.post(f"/api/v1/campaigns/{campaign_id}/dry-run").json()
    # consent.sms false does not keep anyone from WhatsApp.
    assert body["recipients"] == 4
    assert body["estimated_cost"] == {"amount": "0.1600", "currency": "EUR", "segments": 4}

    email_id = create_campaign(client, "email", subject="Hi", html_body="<p>Hi {{ unsubscribe_url }}</p>")
    assert client.post(f"/api/v1/campaigns/{email_id}/dry-run").json()["estimated_cost"] is None
    assert client.get(f"/api/v1/campaigns/{email_id}/stats").json()["cost"] is None


def test_a_whatsapp_campaign_without_an_approved_template_name_is_refused_at_launch(manager):
    client, _, organization = manager
    audience(organization)
    campaign_id = create_campaign(client, "whatsapp", whatsapp_template_name="spring_sale", whatsapp_language="en")
    # Only templates are sent on WhatsApp: a template whose approved name went missing cannot launch.
    template_id = Campaign.objects.get(pk=campaign_id).template_id
    MessageTemplate.objects.filter(pk=template_id).update(whatsapp_template_name="")

    response = client.post(f"/api/v1/campaigns/{campaign_id}/launch")

    assert response.status_code == 400, response.content
    assert "whatsapp_template_name" in response.content.decode()
    assert Campaign.objects.get(pk=campaign_id).status == "draft"


def test_another_organizations_campaign_cost_is_404(manager, member_client):
    client, _, _ = manager
    other_client, _, other = member_client(Role.MANAGER)
    other.sms_segment_price = "1"
    other.save()
    campaign_id = create_campaign(other_client, "sms", text_body="Hi")
    assert client.post(f"/api/v1/campaigns/{campaign_id}/dry-run").status_code == 404
    assert client.get(f"/api/v1/campaigns/{campaign_id}/stats").status_code == 404
