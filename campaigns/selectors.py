"""Campaign reads."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Exists, OuterRef, Q
from django.db.models.functions import TruncDate

from campaigns.models import Campaign, Message, MessageStatus
from contacts.models import Contact, ContactStatus

M = MessageStatus
# A message counts in every stage it has passed: a clicked message was also delivered and opened.
REACHED = {
    "sent": Q(status__gte=M.SENT, status__lte=M.COMPLAINED),
    "delivered": Q(status__in=[M.DELIVERED, M.OPENED, M.CLICKED, M.COMPLAINED]),
    "opened": Q(status__in=[M.OPENED, M.CLICKED]),
    "clicked": Q(status=M.CLICKED),
    "bounced": Q(status=M.BOUNCED),
    "complained": Q(status=M.COMPLAINED),
    "failed": Q(status=M.FAILED),
    "unknown": Q(status=M.UNKNOWN),
}


def _kpis(messages) -> dict[str, Any]:
    recipients_unsubscribed = Exists(
        Contact.objects.filter(pk=OuterRef("contact_id"), status=ContactStatus.UNSUBSCRIBED)
    )
    counts = messages.aggregate(
        planned=Count("id"),
        unsubscribed=Count("id", filter=Q(recipients_unsubscribed) & REACHED["sent"]),
        **{name: Count("id", filter=condition) for name, condition in REACHED.items()},
    )
    sent = counts["sent"] or 0
    delivered = counts["delivered"] or 0
    counts["open_rate"] = round(counts["opened"] / delivered, 4) if delivered else 0.0
    counts["click_rate"] = round(counts["clicked"] / delivered, 4) if delivered else 0.0
    counts["bounce_rate"] = round(counts["bounced"] / sent, 4) if sent else 0.0
    return counts


def campaign_stats(*, campaign: Campaign) -> dict[str, Any]:
    """Live figures from message statuses (unique per message). `unsubscribed` counts recipients who
    are unsubscribed now; the daily rollups of the analytics app refine this with events."""
    messages = Message.objects.filter(campaign=campaign)
    timeline = (
        messages.filter(sent_at__isnull=False)
        .annotate(date=TruncDate("sent_at"))
        .values("date")
        .annotate(
            sent=Count("id"),
            opened=Count("id", filter=REACHED["opened"]),
            clicked=Count("id", filter=REACHED["clicked"]),
        )
        .order_by("date")
    )
    variants = [
        {"variant": variant.name, "kpis": _kpis(messages.filter(variant=variant))}
        for variant in campaign.variants.all()
    ]
    return {"kpis": _kpis(messages), "timeline": list(timeline), "variants": variants}
