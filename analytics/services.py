"""Analytics writes: conversions, attributed to the campaign message that brought them."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Case, F, IntegerField, Value, When
from django.utils import timezone

from analytics.models import Attribution, Conversion
from campaigns.models import Campaign, Message
from contacts.models import Contact
from tracking.models import EventType, MessageEvent

CURRENCY = re.compile(r"[A-Z]{3}")
# Clocks disagree a little: a conversion stamped this far ahead of ours is still accepted.
FUTURE_TOLERANCE = timedelta(minutes=5)


def attribution_window() -> timedelta:
    return timedelta(days=settings.CONVERSION_ATTRIBUTION_DAYS)


def contact_by_reference(*, organization_id, reference: str) -> Contact:
    """The organization's contact with this public id or email address; ValidationError on `contact`
    when there is none."""
    contacts = Contact.objects.active().filter(organization_id=organization_id)
    text = (reference or "").strip()
    contact = None
    if "@" in text:
        contact = contacts.filter(email=text.lower()).first()
    elif text:
        try:
            contact = contacts.filter(public_id=uuid.UUID(text)).first()
        except ValueError:
            contact = None
    if contact is None:
        raise ValidationError({"contact": ["No contact with this id or email address."]})
    return contact


def last_engaged_message(*, organization_id, contact_id, at: datetime) -> dict | None:
    """The contact's message a person last clicked (else last opened) within the attribution window
    before `at`: {message_id, message_campaign_id, type}, or None. Machine opens and clicks do not count."""
    return (
        MessageEvent.objects.filter(
            organization_id=organization_id,
            message_id__in=Message.objects.filter(organization_id=organization_id, contact_id=contact_id).values("id"),
            type__in=[EventType.CLICKED, EventType.OPENED],
            machine=False,
            occurred_at__gte=at - attribution_window(),
            occurred_at__lte=at,
        )
        .annotate(rank=Case(When(type=EventType.CLICKED, then=Value(0)), default=Value(1), output_field=IntegerField()))
        .order_by("rank", "-occurred_at", "-id")
        # The campaign is the message's (an event's own copy may be empty).
        .values("message_id", "type", message_campaign_id=F("message__campaign_id"))
        .first()
    )


def _check_input(*, value: Decimal, currency: str, occurred_at: datetime) -> None:
    errors = {}
    if value is None or value < 0:
        errors["value"] = ["Must be zero or more."]
    if not isinstance(currency, str) or not CURRENCY.fullmatch(currency):
        errors["currency"] = ["Must be a three-letter ISO 4217 code in capitals, e.g. EUR."]
    if occurred_at > timezone.now() + FUTURE_TOLERANCE:
        errors["occurred_at"] = ["May not be in the future."]
    if errors:
        raise ValidationError(errors)


def conversion_record(
    *,
    organization_id,
    contact: Contact | str,
    campaign: Campaign | None = None,
    message: Message | None = None,
    value: Decimal,
    currency: str,
    name: str = "",
    occurred_at: datetime | None = None,
) -> Conversion:
    """Store a conversion of a contact (a Contact, or its public id or email address). A campaign or
    message given is its attribution; else the contact's last clicked (else opened) message within
    CONVERSION_ATTRIBUTION_DAYS before it; else it is kept unattributed."""
    occurred_at = occurred_at or timezone.now()
    _check_input(value=value, currency=currency, occurred_at=occurred_at)
    if not isinstance(contact, Contact):
        contact = contact_by_reference(organization_id=organization_id, reference=contact)
    elif contact.organization_id != organization_id:
        raise ValidationError({"contact": ["No contact with this id or email address."]})
    if campaign is not None and campaign.organization_id != organization_id:
        raise ValidationError({"campaign": ["No campaign with this id."]})
    if message is not None:
        if message.organization_id != organization_id:
            raise ValidationError({"message": ["No message with this id."]})
        if message.contact_id != contact.pk:
            raise ValidationError({"message": ["This message was not sent to this contact."]})
        if campaign is not None and message.campaign_id != campaign.pk:
            raise ValidationError({"message": ["This message is not one of this campaign's."]})

    campaign_id = campaign.pk if campaign is not None else None
    message_id = message.pk if message is not None else None
    if message is not None or campaign is not None:
        attribution = Attribution.GIVEN
        campaign_id = campaign_id or message.campaign_id
    else:
        engaged = last_engaged_message(organization_id=organization_id, contact_id=contact.pk, at=occurred_at)
        if engaged is None:
            attribution = Attribution.NONE
        else:
            attribution = Attribution.CLICK if engaged["type"] == EventType.CLICKED else Attribution.OPEN
            message_id, campaign_id = engaged["message_id"], engaged["message_campaign_id"]

    with transaction.atomic():
        conversion = Conversion.objects.create(
            organization_id=organization_id,
            contact=contact,
            campaign_id=campaign_id,
            message_id=message_id,
            attribution=attribution,
            name=name,
            value=value,
            currency=currency,
            occurred_at=occurred_at,
        )
    return conversion
