"""Tracking reads: the messages behind public links and replies, event history, complaint rates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Count, Q, QuerySet

from campaigns.models import Campaign, CampaignStatus, Message, MessageStatus
from tracking import tokens
from tracking.models import EventType, MessageEvent, TrackingSettings

M = MessageStatus
# A message that reached a provider: only these have a page to view or a list to leave.
SENT_STATUSES = (M.UNKNOWN, M.SENT, M.DELIVERED, M.OPENED, M.CLICKED, M.BOUNCED, M.COMPLAINED)


def provider_id_variants(value: str) -> set[str]:
    """Providers quote message ids with or without <>; we store them as the backend gave them."""
    bare = value.strip().strip("<>")
    return {value, bare, f"<{bare}>"} if bare else set()


def message_for_link(*, message_id: int) -> Message | None:
    """The message behind an unsubscribe or view-in-browser link, with what its pages show."""
    return (
        Message.objects.select_related(
            "campaign__organization",
            "campaign__template_version",
            "campaign__followup_template_version",
            "contact",
            "variant__template_version",
        )
        .filter(pk=message_id, status__in=SENT_STATUSES)
        .first()
    )


def message_for_reply(*, addresses: list[str], references: list[str]) -> tuple[int, str] | None:
    """(message id, how it matched) for an inbound reply: a reply address carrying a message's token,
    else the In-Reply-To / References Message-IDs against the ids the messages were sent with."""
    for address in addresses:
        message_id = tokens.reply_token_of(address)
        if message_id is not None and Message.objects.filter(pk=message_id).exists():
            return message_id, "reply address"
    for reference in references:
        found = (
            Message.objects.filter(provider_message_id__in=provider_id_variants(reference))
            .values_list("pk", flat=True)
            .first()
        )
        if found is not None:
            return found, "In-Reply-To/References"
    return None


def unsubscribe_events() -> QuerySet[MessageEvent]:
    """Every unsubscribe event (narrow it with `message_id=OuterRef(...)` for a per-message Exists)."""
    return MessageEvent.objects.filter(type=EventType.UNSUBSCRIBED)


def replied_message_ids(*, campaign_id) -> QuerySet:
    """The ids of a campaign's messages that got a reply (a subquery: `id__in=` it)."""
    return MessageEvent.objects.filter(type=EventType.REPLIED, message__campaign_id=campaign_id).values("message_id")


def message_events(*, organization_id, message_id: int) -> QuerySet[MessageEvent]:
    """A message's events, newest first."""
    return MessageEvent.objects.filter(organization_id=organization_id, message_id=message_id).order_by(
        "-occurred_at", "-id"
    )


@dataclass(frozen=True)
class ComplaintLimits:
    threshold: Decimal  # percent; 0 turns the guard off
    min_sent: int  # fewer messages than this in the window are too few to judge


def complaint_limits(*, organization_id) -> ComplaintLimits:
    """The organization's complaint-rate threshold and minimum volume (the defaults when it has no
    tracking settings yet)."""
    found = TrackingSettings.objects.filter(organization_id=organization_id).first() or TrackingSettings()
    return ComplaintLimits(threshold=Decimal(found.complaint_rate_threshold), min_sent=found.complaint_min_sent)


@dataclass(frozen=True)
class DomainComplaintRate:
    domain: str
    sent: int
    complaints: int

    @property
    def percent(self) -> Decimal:
        if not self.sent:
            return Decimal(0)
        return (Decimal(self.complaints) * 100 / Decimal(self.sent)).quantize(Decimal("0.001"))


def complaint_rates(*, organization_id, since: datetime, default_domain: str = "") -> list[DomainComplaintRate]:
    """Messages sent and spam complaints received since `since`, per sending domain.

    The volume is the messages the organization sent in the window; the complaints are those
    that arrived in it (a complaint usually follows its message within hours), as mailbox
    providers compute their own daily spam rates."""
    campaigns = Campaign.objects.filter(organization_id=organization_id).exclude(
        status__in=[CampaignStatus.DRAFT, CampaignStatus.SCHEDULED]
    )
    campaigns = campaigns.filter(Q(completed_at__isnull=True) | Q(completed_at__gte=since))
    sent = dict(
        Message.objects.filter(campaign__in=campaigns, sent_at__gte=since)
        .values_list("sending_domain")
        .annotate(n=Count("id"))
        .values_list("sending_domain", "n")
    )
    complaints = dict(
        MessageEvent.objects.filter(organization_id=organization_id, type=EventType.COMPLAINED, occurred_at__gte=since)
        .values_list("message__sending_domain")
        .annotate(n=Count("message_id", distinct=True))
        .values_list("message__sending_domain", "n")
    )
    rates = []
    for domain in sorted(set(sent) | set(complaints), key=lambda d: d or ""):
        rates.append(
            DomainComplaintRate(
                domain=domain or default_domain, sent=sent.get(domain, 0), complaints=complaints.get(domain, 0)
            )
        )
    return rates
