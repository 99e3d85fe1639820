"""End to end through a real Celery worker: an SMS campaign and a WhatsApp template campaign launched
from the API go out into the file backends, each contact exactly once. Dispatch runs here, in the
test, on the same code beat runs."""

import json
import time
from collections import Counter

import pytest

from accounts.models import Role
from accounts.tests.factories import MembershipFactory
from campaigns import sending
from campaigns.models import Campaign, Message, MessageStatus
from campaigns.tests.factories import EmailTemplateFactory
from conftest import bearer_client
from contacts import services as contact_services
from contacts.tests.factories import ContactFactory, TagFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
M = MessageStatus
CONTACTS = 40


def read_lines(directory) -> list[dict]:
    return [json.loads(line) for path in sorted(directory.glob("*.jsonl")) for line in path.read_text().splitlines()]


def dispatch_until(predicate, timeout, worker):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sending.dispatch_due()
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out; worker log:\n{worker.log[-4000:]}")


def build(channel, template_fields):
    owner = MembershipFactory(role=Role.MANAGER)
    organization = owner.organization
    vip = TagFactory(organization=organization, name="vip")
    contacts = [
        ContactFactory(
            organization=organization, email=None, phone=f"+316{10000000 + i}", first_name=f"P{i}", tags=[vip]
        )
        for i in range(CONTACTS)
    ]
    ContactFactory(organization=organization, email="no-phone@example.com", tags=[vip])
    ContactFactory(organization=organization, email=None, phone="+31620000000", tags=[vip])
    contact_services.suppression_add(organization_id=organization.pk, kind="phone", value="+31620000000")
    template = EmailTemplateFactory(
        organization=organization, channel=channel, subject="", html_body="", **template_fields
    )
    client = bearer_client(owner.user, organization)
    response = client.post(
        "/api/v1/campaigns/",
        {"name": f"{channel} E2E", "channel": channel, "template": str(template.pk), "audience": {"tags": ["vip"]}},
        format="json",
    )
    assert response.status_code == 201, response.content
    return client, response.json()["id"], contacts


@pytest.mark.parametrize(
    ("channel", "template_fields"),
    [
        ("sms", {"sms_body": "Hi {{ contact.first_name }}, 20% off today."}),
        (
            "whatsapp",
            {
                "whatsapp_template_name": "spring_sale",
                "whatsapp_language": "en_US",
                "whatsapp_parameters": {"body": ["{{ contact.first_name }}", "20%"]},
            },
        ),
    ],
)
def test_a_phone_campaign_goes_out_once_per_contact_through_a_worker(
    start_worker, settings, tmp_path, channel, template_fields
):
    settings.CAMPAIGN_SEND_BATCH = 10
    out = tmp_path / channel
    worker = start_worker(
        env={
            "SMS_BACKEND": "file",
            "SMS_FILE_PATH": str(tmp_path / "sms"),
            "WHATSAPP_BACKEND": "file",
            "WHATSAPP_FILE_PATH": str(tmp_path / "whatsapp"),
            "CAMPAIGN_SEND_BATCH": "10",
        }
    )
    client, campaign_id, contacts = build(channel, template_fields)
    assert client.post(f"/api/v1/campaigns/{campaign_id}/launch").status_code == 200

    dispatch_until(lambda: Campaign.objects.get(pk=campaign_id).status == "completed", 120, worker)

    lines = read_lines(out)
    received = Counter(line["to"] for line in lines)
    assert set(received) == {contact.phone for contact in contacts}
    assert set(received.values()) == {1}
    by_phone = {contact.phone: contact for contact in contacts}
    for line in lines:
        name = by_phone[line["to"]].first_name
        if channel == "sms":
            assert line["body"] == f"Hi {name}, 20% off today."
        else:
            assert (line["template"], line["language"], line["parameters"]) == (
                "spring_sale",
                "en_US",
                {"body": [name, "20%"]},
            )
    messages = Message.objects.filter(campaign_id=campaign_id)
    assert set(messages.values_list("status", flat=True)) == {M.SENT}
    assert {str(pk): provider for pk, provider in messages.values_list("pk", "provider_message_id")} == {
        line["message_id"]: line["provider_message_id"] for line in lines
    }
    assert Campaign.objects.get(pk=campaign_id).excluded == {"no_phone": 1, "suppressed": 1}
    stats = client.get(f"/api/v1/campaigns/{campaign_id}/stats").json()
    assert (stats["kpis"]["sent"], stats["kpis"]["failed"]) == (CONTACTS, 0)
    assert not (tmp_path / ("whatsapp" if channel == "sms" else "sms")).exists()
