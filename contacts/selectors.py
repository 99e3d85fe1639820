"""Audience reads."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, Q, QuerySet

from contacts.models import CONSENT_CHANNELS, Contact, ContactEvent, ContactTag, ListMembership, Segment
from contacts.segments import compile_rules


def contact_queryset(*, organization_id) -> QuerySet:
    """The organization's contacts (not erased), with tags prefetched for listing."""
    return (
        Contact.objects.active()
        .filter(organization_id=organization_id)
        .prefetch_related(Prefetch("tag_links", queryset=ContactTag.objects.select_related("tag")))
    )


def contact_search(queryset: QuerySet, text: str) -> QuerySet:
    text = text.strip()
    if not text:
        return queryset
    if "@" in text:
        return queryset.filter(email__startswith=text.lower())
    return queryset.filter(
        Q(email__startswith=text.lower()) | Q(first_name__icontains=text) | Q(last_name__icontains=text)
    )


def segment_contacts(*, segment: Segment) -> QuerySet:
    return Contact.objects.active().filter(organization_id=segment.organization_id).filter(compile_rules(segment.rules))


def contact_export_data(*, contact: Contact) -> dict[str, Any]:
    """Everything stored about one contact, for a GDPR access request."""
    memberships = ListMembership.objects.filter(contact=contact).select_related("contact_list")
    events = ContactEvent.objects.filter(contact=contact).order_by("occurred_at")
    return {
        "id": str(contact.public_id),
        "email": contact.email,
        "phone": contact.phone,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "timezone": contact.timezone,
        "locale": contact.locale,
        "attributes": contact.attributes,
        "status": contact.status,
        "consent": {
            "source": contact.consent_source,
            "at": contact.consent_at.isoformat() if contact.consent_at else None,
            "ip": contact.consent_ip,
            # Per channel: true, false, or null (no answer: the contact's status decides).
            "channels": {channel: (contact.consent or {}).get(channel) for channel in CONSENT_CHANNELS},
        },
        "last_contacted_at": contact.last_contacted_at.isoformat() if contact.last_contacted_at else None,
        "created_at": contact.created_at.isoformat(),
        "updated_at": contact.updated_at.isoformat(),
        "tags": sorted(link.tag.name for link in contact.tag_links.select_related("tag")),
        "lists": [
            {
                "id": str(m.contact_list_id),
                "name": m.contact_list.name,
                "subscribed_at": m.subscribed_at.isoformat(),
                "unsubscribed_at": m.unsubscribed_at.isoformat() if m.unsubscribed_at else None,
            }
            for m in memberships
        ],
        "events": [
            {"name": e.name, "properties": e.properties, "occurred_at": e.occurred_at.isoformat()} for e in events
        ],
    }
