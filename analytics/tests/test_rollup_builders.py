"""Builders for analytics tests: organizations in a time zone, campaigns, messages, events."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from accounts.tests.factories import OrganizationFactory
from analytics.models import Attribution, Conversion
from campaigns.models import Campaign, CampaignStatus, CampaignVariant, Message, MessageStatus
from campaigns.tests.factories import CampaignFactory
from contacts.tests.factories import ContactFactory
from tracking.models import MessageEvent


def organization(tz: str = "Europe/Amsterdam"):
    return OrganizationFactory(timezone=tz)


def campaign(org, *, channel: str = "email", variants: int = 0) -> Campaign:
    made = CampaignFactory(organization=org, channel=channel, status=CampaignStatus.RUNNING)
    for n in range(variants):
        CampaignVariant.objects.create(campaign=made, name=f"Variant {n}", template=made.template)
    return made


def message(
    of: Campaign,
    *,
    sent_at: datetime | None,
    status: int = MessageStatus.SENT,
    step: int = 0,
    variant: CampaignVariant | None = None,
    sending_domain: str = "mail.example.com",
    scheduled_at: datetime | None = None,
) -> Message:
    contact = ContactFactory(organization=of.organization)
    return Message.objects.create(
        organization=of.organization,
        campaign=of,
        step=step,
        variant=variant,
        contact=contact,
        to_address=contact.email,
        status=status,
        sent_at=sent_at,
        scheduled_at=scheduled_at if scheduled_at is not None else sent_at,
        sending_domain=sending_domain,
    )


def event(
    of: Message,
    type: str,
    at: datetime,
    *,
    machine: bool = False,
    is_unique: bool = False,
    url: str = "",
    received_at: datetime | None = None,
) -> MessageEvent:
    """An event stored when it happened (pass `received_at` for one that arrives late)."""
    return MessageEvent.objects.create(
        type=type,
        occurred_at=at,
        received_at=received_at or at,
        organization_id=of.organization_id,
        campaign_id=of.campaign_id,
        message=of,
        contact_id=of.contact_id,
        machine=machine,
        is_unique=is_unique,
        url=url,
        dedupe_key=uuid.uuid4().hex,
    )


def conversion(org, at: datetime, value: str, *, message: Message | None = None, campaign: Campaign | None = None):
    contact = message.contact if message is not None else ContactFactory(organization=org)
    return Conversion.objects.create(
        organization=org,
        contact=contact,
        message=message,
        campaign=campaign if campaign is not None else (message.campaign if message is not None else None),
        attribution=Attribution.GIVEN if (message or campaign) else Attribution.NONE,
        value=Decimal(value),
        currency="EUR",
        occurred_at=at,
    )
