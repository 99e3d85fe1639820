"""Campaign stats: rates over sent - bounced (true without delivery reports), and unsubscribes counted
from the unsubscribe events of the campaign's own messages."""

from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from accounts.models import Role
from campaigns.models import CampaignStatus, CampaignVariant, Message, MessageStatus
from campaigns.tests.factories import CampaignFactory
from contacts.models import Contact, ContactStatus
from tracking.models import EventType, MessageEvent

pytestmark = pytest.mark.django_db
M = MessageStatus
KPI_KEYS = {
    "planned",
    "sent",
    "delivered",
    "opened",
    "clicked",
    "bounced",
    "complained",
    "unsubscribed",
    "failed",
    "unknown",
    "open_rate",
    "click_rate",
    "click_to_open_rate",
    "bounce_rate",
    "unsubscribe_rate",
}


def messages(campaign, statuses: list[int], variant=None) -> list[Message]:
    """One message per status, each to a new contact, sent an hour ago (unless never sent)."""
    now = timezone.now()
    contacts = Contact.objects.bulk_create(
        [Contact(organization=campaign.organization, email=f"{uuid.uuid4().hex}@example.com") for _ in statuses]
    )
    return Message.objects.bulk_create(
        [
            Message(
                organization=campaign.organization,
                campaign=campaign,
                contact=contact,
                to_address=contact.email,
                status=status,
                variant=variant,
                sent_at=now - timezone.timedelta(hours=1) if M.SENT <= status <= M.COMPLAINED else None,
            )
            for contact, status in zip(contacts, statuses, strict=True)
        ]
    )


def unsubscribe_event(message, scope="all"):
    MessageEvent.objects.create(
        type=EventType.UNSUBSCRIBED,
        occurred_at=timezone.now(),
        organization_id=message.organization_id,
        campaign_id=message.campaign_id,
        message_id=message.pk,
        contact_id=message.contact_id,
        dedupe_key=f"unsubscribe:{message.pk}:{scope}",
    )


def stats(client, campaign) -> dict:
    response = client.get(f"/api/v1/campaigns/{campaign.pk}/stats")
    assert response.status_code == 200, response.content
    return response.json()


def test_rates_are_over_sent_without_any_delivery_report(member_client):
    client, _, org = member_client(Role.VIEWER)
    campaign = CampaignFactory(organization=org, status=CampaignStatus.COMPLETED)
    messages(campaign, [M.SENT] * 160 + [M.OPENED, M.CLICKED, M.CLICKED])

    kpis = stats(client, campaign)["kpis"]
    assert set(kpis) == KPI_KEYS
    # "delivered" is only inferred from the opens: over it the open rate would read 100%.
    assert (kpis["sent"], kpis["delivered"], kpis["opened"], kpis["clicked"]) == (163, 3, 3, 2)
    assert kpis["open_rate"] == round(3 / 163, 4)
    assert kpis["click_rate"] == round(2 / 163, 4)
    assert kpis["click_to_open_rate"] == round(2 / 3, 4)
    assert (kpis["bounce_rate"], kpis["unsubscribe_rate"]) == (0.0, 0.0)


def test_163_sent_and_2_opens_is_an_open_rate_of_2_over_163(member_client):
    client, _, org = member_client(Role.MANAGER)
    campaign = CampaignFactory(organization=org, status=CampaignStatus.COMPLETED)
    messages(campaign, [M.SENT] * 161 + [M.OPENED] * 2)
    kpis = stats(client, campaign)["kpis"]
    assert kpis["open_rate"] == round(2 / 163, 4) == 0.0123


def test_bounces_leave_the_base_of_the_rates(member_client):
    client, _, org = member_client(Role.MANAGER)
    campaign = CampaignFactory(organization=org, status=CampaignStatus.COMPLETED)
    messages(campaign, [M.SENT] * 6 + [M.OPENED] * 2 + [M.BOUNCED] * 2 + [M.FAILED, M.PLANNED])

    kpis = stats(client, campaign)["kpis"]
    assert (kpis["planned"], kpis["sent"], kpis["bounced"], kpis["failed"]) == (12, 10, 2, 1)
    assert kpis["open_rate"] == round(2 / 8, 4)
    assert kpis["bounce_rate"] == round(2 / 10, 4)


def test_unsubscribed_counts_this_campaigns_unsubscribe_events(member_client):
    client, _, org = member_client(Role.MANAGER)
    campaign = CampaignFactory(organization=org, status=CampaignStatus.COMPLETED)
    first, second, *others = messages(campaign, [M.SENT] * 5)
    # Both left through this campaign; the first clicked twice (one list, then everything). A list
    # unsubscribe leaves the contact subscribed otherwise: they count all the same.
    unsubscribe_event(first, scope="list")
    unsubscribe_event(first, scope="all")
    unsubscribe_event(second, scope="list")
    Contact.objects.filter(pk=first.contact_id).update(status=ContactStatus.UNSUBSCRIBED)
    # Unsubscribed elsewhere (another campaign, a form): not this campaign's doing.
    Contact.objects.filter(pk=others[0].contact_id).update(status=ContactStatus.UNSUBSCRIBED)
    elsewhere = CampaignFactory(organization=org, status=CampaignStatus.COMPLETED)
    unsubscribe_event(messages(elsewhere, [M.SENT])[0])

    kpis = stats(client, campaign)["kpis"]
    assert kpis["unsubscribed"] == 2
    assert kpis["unsubscribe_rate"] == round(2 / 5, 4)


def test_each_variant_has_the_same_rates(member_client):
    client, _, org = member_client(Role.MANAGER)
    campaign = CampaignFactory(organization=org, status=CampaignStatus.COMPLETED)
    a = CampaignVariant.objects.create(campaign=campaign, name="A", template=campaign.template)
    b = CampaignVariant.objects.create(campaign=campaign, name="B", template=campaign.template)
    messages(campaign, [M.SENT, M.SENT, M.OPENED, M.BOUNCED], variant=a)
    [clicked, _] = messages(campaign, [M.CLICKED, M.SENT], variant=b)
    unsubscribe_event(clicked)

    variants = {row["variant"]: row["kpis"] for row in stats(client, campaign)["variants"]}
    assert set(variants["A"]) == KPI_KEYS
    assert (variants["A"]["open_rate"], variants["A"]["bounce_rate"]) == (round(1 / 3, 4), 0.25)
    assert (variants["B"]["click_to_open_rate"], variants["B"]["unsubscribed"]) == (1.0, 1)
    assert variants["B"]["unsubscribe_rate"] == 0.5
