"""The follow-up step, and test sends."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from accounts.models import Role
from campaigns import sending
from campaigns.models import Campaign, Message, MessageStatus
from campaigns.tests.factories import CampaignFactory, EmailTemplateFactory
from contacts.tests.factories import ContactFactory
from templates_app.services import template_snapshot

pytestmark = pytest.mark.django_db
M = MessageStatus


def followup_campaign(criterion="not_opened", days=2):
    campaign = CampaignFactory(status="running")
    followup_template = EmailTemplateFactory(organization=campaign.organization, subject="Did you see this?")
    campaign.followup = {"enabled": True, "days": days, "template": str(followup_template.pk), "criterion": criterion}
    campaign.template_version = template_snapshot(template=campaign.template)
    campaign.followup_template_version = template_snapshot(template=followup_template)
    campaign.planned_at = timezone.now()
    campaign.save()
    return campaign


def first_step(campaign, statuses, sent_days_ago):
    sent_at = timezone.now() - timedelta(days=sent_days_ago)
    messages = []
    for status in statuses:
        contact = ContactFactory(organization=campaign.organization)
        messages.append(
            Message.objects.create(
                organization=campaign.organization,
                campaign=campaign,
                contact=contact,
                to_address=contact.email,
                status=status,
                sent_at=sent_at,
                scheduled_at=sent_at,
            )
        )
    return messages


@pytest.fixture
def dispatch(django_capture_on_commit_callbacks):
    def run():
        with django_capture_on_commit_callbacks(execute=True):
            return sending.dispatch_due()

    return run


def test_followup_goes_to_non_openers_after_the_delay(dispatch):
    campaign = followup_campaign()
    sent, delivered, _opened, _bounced = first_step(campaign, [M.SENT, M.DELIVERED, M.OPENED, M.BOUNCED], 1)

    dispatch()  # one day later: too early, and the campaign waits for its follow-up
    assert not Message.objects.filter(campaign=campaign, step=1).exists()
    assert Campaign.objects.get(pk=campaign.pk).status == "running"

    Message.objects.filter(campaign=campaign).update(sent_at=timezone.now() - timedelta(days=3))
    dispatch()  # expands and plans step 1
    dispatch()  # sends it
    followups = Message.objects.filter(campaign=campaign, step=1)
    assert set(followups.values_list("contact_id", flat=True)) == {sent.contact_id, delivered.contact_id}
    assert set(followups.values_list("status", flat=True)) == {M.SENT}
    assert sorted(e.to[0] for e in mail.outbox) == sorted([sent.to_address, delivered.to_address])
    assert {e.subject for e in mail.outbox} == {"Did you see this?"}
    dispatch()
    assert Campaign.objects.get(pk=campaign.pk).status == "completed"


def test_followup_to_non_clickers_includes_openers(dispatch):
    campaign = followup_campaign(criterion="not_clicked")
    first_step(campaign, [M.OPENED, M.CLICKED], 5)
    dispatch()
    assert Message.objects.filter(campaign=campaign, step=1).count() == 1


@pytest.mark.parametrize(
    ("followup", "field"),
    [
        ({"enabled": True, "days": 0, "template": None}, "followup.days"),
        ({"enabled": True, "days": 3, "template": "00000000-0000-0000-0000-000000000000"}, "followup.template"),
        ({"enabled": True, "days": 3, "criterion": "sometimes"}, "followup.criterion"),
    ],
)
def test_followup_configuration_is_validated(member_client, followup, field):
    client, _, org = member_client(Role.MANAGER)
    template = EmailTemplateFactory(organization=org)
    response = client.post(
        "/api/v1/campaigns/",
        {"name": "x", "template": str(template.pk), "audience": {"tags": ["vip"]}, "followup": followup},
        format="json",
    )
    assert response.status_code == 400
    assert field in response.json()


def test_test_send_goes_to_the_given_addresses_and_counts_nothing(member_client, django_capture_on_commit_callbacks):
    client, _, org = member_client(Role.MANAGER)
    template = EmailTemplateFactory(organization=org, subject="Hi {{ contact.first_name }} from {{ campaign.name }}")
    campaign = CampaignFactory(organization=org, template=template, name="Spring")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/api/v1/campaigns/{campaign.pk}/test-send",
            {"emails": ["me@example.com", "boss@example.com"]},
            format="json",
        )
    assert response.status_code == 202, response.content
    # One message per address: test recipients never see each other.
    assert sorted(tuple(email.to) for email in mail.outbox) == [("boss@example.com",), ("me@example.com",)]
    assert all("from Spring" in email.subject for email in mail.outbox)
    assert not Message.objects.exists()
    bad = client.post(f"/api/v1/campaigns/{campaign.pk}/test-send", {"emails": ["not-an-address"]}, format="json")
    assert bad.status_code == 400
    assert "emails" in bad.json()


@pytest.mark.parametrize("count", [11, 20])
def test_test_send_refuses_more_addresses_than_the_one_limit(
    member_client, settings, django_capture_on_commit_callbacks, count
):
    settings.TEST_SEND_MAX_RECIPIENTS = 10
    client, _, org = member_client(Role.MANAGER)
    campaign = CampaignFactory(organization=org)
    emails = [f"tester{i}@example.com" for i in range(count)]
    with django_capture_on_commit_callbacks(execute=True) as queued:
        response = client.post(f"/api/v1/campaigns/{campaign.pk}/test-send/", {"emails": emails}, format="json")
    assert response.status_code == 400, response.content
    assert "at most 10" in response.json()["emails"][0]
    assert not queued
    assert not mail.outbox

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/v1/campaigns/{campaign.pk}/test-send", {"emails": emails[:10]}, format="json")
    assert response.status_code == 202, response.content
    assert sorted(address for email in mail.outbox for address in email.to) == sorted(emails[:10])
    assert {len(email.to) for email in mail.outbox} == {1}


def test_test_send_from_an_unverified_domain_is_refused(member_client, django_capture_on_commit_callbacks):
    client, _, org = member_client(Role.MANAGER)
    template = EmailTemplateFactory(organization=org, from_email="security@paypal.com")
    campaign = CampaignFactory(organization=org, template=template)
    with django_capture_on_commit_callbacks(execute=True) as queued:
        response = client.post(
            f"/api/v1/campaigns/{campaign.pk}/test-send", {"emails": ["me@example.com"]}, format="json"
        )
    assert response.status_code == 400, response.content
    assert "paypal.com" in response.json()["from_email"][0]
    assert not queued
    assert not mail.outbox


def test_a_test_send_carries_the_from_the_campaigns_messages_would(member_client, django_capture_on_commit_callbacks):
    from email.utils import parseaddr

    from campaigns.tests.factories import SendingDomainFactory

    client, _, org = member_client(Role.MANAGER)
    SendingDomainFactory(organization=org, domain="mail.example.com")
    template = EmailTemplateFactory(organization=org, from_email="shop@not-verified.example")
    campaign = CampaignFactory(organization=org, template=template, sending_domains=["mail.example.com"])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/api/v1/campaigns/{campaign.pk}/test-send", {"emails": ["me@example.com"]}, format="json"
        )
    assert response.status_code == 202, response.content
    assert [parseaddr(email.from_email)[1] for email in mail.outbox] == ["shop@mail.example.com"]
