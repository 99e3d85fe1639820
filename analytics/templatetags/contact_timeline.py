"""`{% contact_timeline contact %}`: one contact's engagement, newest first, for the contact's admin
page (contacts sit below campaigns, tracking, callbacks and analytics, so the page loads this tag
instead of importing them): messages with their status, opens, clicks, replies and other delivery
events, conversions, sequence enrollments and callback requests. Paged by `?timeline=<page>`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django import template
from django.db.models import Subquery
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from analytics.models import Conversion
from callbacks.models import CallbackRequest, CallbackStatus
from campaigns.models import Enrollment, Message
from tracking.models import EventType, MessageEvent

register = template.Library()

PAGE_SIZE = 25
SHOWN_EVENTS = (
    EventType.OPENED,
    EventType.CLICKED,
    EventType.REPLIED,
    EventType.BOUNCED,
    EventType.SOFT_BOUNCED,
    EventType.COMPLAINED,
    EventType.UNSUBSCRIBED,
    EventType.FAILED,
    EventType.REJECTED,
    EventType.AUTORESPONDED,
)


@dataclass(frozen=True)
class Entry:
    at: datetime
    kind: str
    text: str
    link: str = ""


def _campaign_link(campaign_id) -> str:
    return reverse("admin:campaigns_campaign_change", args=[campaign_id]) if campaign_id else ""


def timeline_entries(*, contact, limit: int) -> list[Entry]:
    """The contact's `limit` newest entries over every source (each source read newest first,
    `limit` rows at most, by indexed columns of the contact or its messages)."""
    scope = {"organization_id": contact.organization_id, "contact_id": contact.pk}
    entries: list[Entry] = []

    messages = Message.objects.filter(**scope).select_related("campaign").order_by("-created_at")[:limit]
    for message in messages:
        at = message.sent_at or message.scheduled_at or message.created_at
        entries.append(
            Entry(
                at,
                "message",
                f"{message.campaign.channel.upper()} message of {message.campaign.name}: "
                f"{message.get_status_display()}",
                _campaign_link(message.campaign_id),
            )
        )

    message_ids = Message.objects.filter(**scope).values("pk")
    events = (
        MessageEvent.objects.filter(message_id__in=Subquery(message_ids), type__in=SHOWN_EVENTS)
        .select_related("campaign")
        .order_by("-occurred_at")[:limit]
    )
    for event in events:
        about = event.campaign.name if event.campaign_id and event.campaign else "a message"
        text = f"{event.get_type_display()}: {about}"
        if event.type == EventType.CLICKED and event.url:
            text += f" ({event.url[:120]})"
        if event.detail and event.type != EventType.CLICKED:
            text += f" ({event.detail[:120]})"
        if event.machine:
            text += " (by a machine)"
        entries.append(Entry(event.occurred_at, event.type, text, _campaign_link(event.campaign_id)))

    conversions = Conversion.objects.filter(**scope).select_related("campaign").order_by("-occurred_at")[:limit]
    for conversion in conversions:
        text = f"Conversion {conversion.name or ''}: {conversion.value} {conversion.currency}".replace("  ", " ")
        if conversion.campaign_id:
            text += f" (from {conversion.campaign.name})"
        entries.append(Entry(conversion.occurred_at, "conversion", text, _campaign_link(conversion.campaign_id)))

    enrollments = Enrollment.objects.filter(**scope).select_related("sequence").order_by("-entered_at")[:limit]
    for enrollment in enrollments:
        entries.append(Entry(enrollment.entered_at, "enrollment", f"Enrolled in the sequence {enrollment.sequence}"))
        if enrollment.exited_at:
            reason = enrollment.get_stop_reason_display() if enrollment.stop_reason else enrollment.get_status_display()
            entries.append(
                Entry(enrollment.exited_at, "enrollment", f"Left the sequence {enrollment.sequence} ({reason})")
            )

    callbacks = CallbackRequest.objects.filter(**scope).order_by("-created_at")[:limit]
    for callback in callbacks:
        link = reverse("admin:callbacks_callbackrequest_change", args=[callback.pk])
        text = f"Callback requested ({callback.get_priority_display()}, now {callback.get_status_display()})"
        if callback.reason:
            text += f": {callback.reason[:120]}"
        entries.append(Entry(callback.created_at, "callback", text, link))
        if callback.closed_at:
            closed = "Callback completed" if callback.status == CallbackStatus.COMPLETED else "Callback cancelled"
            resolution = f": {callback.resolution[:120]}" if callback.resolution else ""
            entries.append(Entry(callback.closed_at, "callback", closed + resolution, link))

    entries.sort(key=lambda entry: entry.at, reverse=True)
    return entries


def _page(request) -> int:
    try:
        return max(1, min(int(request.GET.get("timeline", "1")), 200))
    except (AttributeError, TypeError, ValueError):
        return 1


@register.simple_tag(takes_context=True)
def contact_timeline(context, contact) -> str:
    """The engagement timeline as an admin module."""
    page = _page(context.get("request"))
    entries = timeline_entries(contact=contact, limit=page * PAGE_SIZE + 1)
    shown = entries[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    rows = format_html_join(
        "",
        '<tr class="timeline-{}"><td style="white-space:nowrap">{}</td><td>{}</td><td>{}</td></tr>',
        (
            (
                entry.kind,
                timezone.localtime(entry.at).strftime("%Y-%m-%d %H:%M"),
                entry.kind.replace("_", " "),
                format_html('<a href="{}">{}</a>', entry.link, entry.text) if entry.link else entry.text,
            )
            for entry in shown
        ),
    )
    pager = []
    if page > 1:
        pager.append(format_html('<a href="?timeline={}#timeline">Newer</a>', page - 1))
    if len(entries) > page * PAGE_SIZE:
        pager.append(format_html('<a href="?timeline={}#timeline">Older</a>', page + 1))
    body = (
        format_html(
            '<table style="width:100%"><thead><tr><th>When</th><th>What</th><th></th></tr></thead>'
            "<tbody>{}</tbody></table>",
            rows,
        )
        if shown
        else format_html("<p>{}</p>", "Nothing yet: no messages, events, conversions, enrollments or callbacks.")
    )
    return format_html(
        '<fieldset class="module" id="timeline"><h2>Engagement timeline</h2>{}<p>{}</p></fieldset>',
        body,
        format_html_join(" · ", "{}", ((link,) for link in pager)),
    )
