"""Anymail's normalized events as our event records, and the signal receivers that push them.

Anymail verifies each provider's webhook (basic auth from ANYMAIL_WEBHOOK_SECRET, plus the
provider's own signature where it has one, e.g. Mailgun's signing key) and parses it into
`AnymailTrackingEvent`s before these receivers run; a post that fails verification never
reaches them. The receivers only translate and buffer: no database work per event.

Mapping: Anymail's event types map one to one onto ours, except bounces, which Anymail
reports as `bounced` for soft ones too; the provider's own payload says which (Postmark
`SoftBounce`, SES `bounceType` other than `Permanent`, SparkPost's soft bounce classes, SendGrid
`blocked`, or a 4xx SMTP reply) and those become `soft_bounced`. Deduplication: the provider's stable event id where
it has one (Mailgun's event id, Postmark's bounce id, the SNS message id for SES), with the
event type and recipient (one SES notification can carry several recipients); otherwise a
SHA-256 of the whole payload.
"""

from __future__ import annotations

import json
import logging
import re
from email.utils import getaddresses
from typing import Any

from django.utils import timezone

from tracking import buffer
from tracking.models import EventType
from tracking.records import EventRecord, digest_key

logger = logging.getLogger(__name__)

_TYPES = {
    "queued": EventType.QUEUED,
    "sent": EventType.SENT,
    "rejected": EventType.REJECTED,
    "failed": EventType.FAILED,
    "bounced": EventType.BOUNCED,
    "deferred": EventType.DEFERRED,
    "delivered": EventType.DELIVERED,
    "autoresponded": EventType.AUTORESPONDED,
    "opened": EventType.OPENED,
    "clicked": EventType.CLICKED,
    "complained": EventType.COMPLAINED,
    "unsubscribed": EventType.UNSUBSCRIBED,
    "subscribed": EventType.SUBSCRIBED,
    "unknown": EventType.UNKNOWN,
}
# SparkPost bounce classes that are temporary: soft, DNS, mailbox full, too large, timeout, generic, transient.
SPARKPOST_SOFT_CLASSES = frozenset({"20", "21", "22", "23", "24", "40", "70"})
_TEMPORARY_SMTP = re.compile(r"^\s*(?:4\d\d\b|4\.\d{1,3}\.\d{1,3}\b)")


def esp_key(esp_name: str) -> str:
    """Anymail's display name as a short key: "Amazon SES" -> "amazon_ses"."""
    return re.sub(r"[^a-z0-9]+", "_", (esp_name or "").lower()).strip("_")


def jsonable(value: Any) -> Any:
    """The raw payload as JSON: dicts and lists as they are, form posts as dicts, anything else as text."""
    if hasattr(value, "lists"):  # a QueryDict (form-encoded webhooks)
        return {key: values[0] if len(values) == 1 else values for key, values in value.lists()}
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return json.loads(json.dumps(value, default=str))


def is_soft_bounce(esp: str, event: Any) -> bool:
    """Whether a `bounced` event is temporary, from the provider's own payload."""
    payload = event.esp_event if isinstance(event.esp_event, dict) else {}
    if esp == "postmark":
        return payload.get("Type") in {"SoftBounce", "Transient", "DnsError"}
    if esp == "amazon_ses":
        return (payload.get("bounce") or {}).get("bounceType") in {"Transient", "Undetermined"}
    if esp == "sendgrid":
        return payload.get("type") == "blocked"
    if esp == "sparkpost":
        event = next(iter((payload.get("msys") or {}).values()), None) or {}
        return str(event.get("bounce_class", "")) in SPARKPOST_SOFT_CLASSES
    response = event.mta_response or ""
    return bool(_TEMPORARY_SMTP.match(response))


def _event_id(esp: str, event: Any) -> str | None:
    payload = event.esp_event if isinstance(event.esp_event, dict) else {}
    if esp == "mailgun":
        # The signature token changes when Mailgun re-signs a retry; the event id does not.
        found = (payload.get("event-data") or {}).get("id")
        if found:
            return str(found)
    if esp == "sendgrid" and payload.get("sg_event_id"):
        return str(payload["sg_event_id"])
    return str(event.event_id) if event.event_id else None


def record_from_tracking_event(event: Any, esp_name: str) -> EventRecord | None:
    """Our record for one Anymail tracking event (None for inbound events sent to a tracking URL)."""
    esp = esp_key(esp_name)
    event_type = _TYPES.get(event.event_type)
    if event_type is None:
        return None
    if event_type == EventType.BOUNCED and is_soft_bounce(esp, event):
        event_type = EventType.SOFT_BOUNCED
    payload = jsonable(event.esp_event)
    recipient = (event.recipient or "").strip()
    event_id = _event_id(esp, event)
    if event_id:
        dedupe = digest_key(esp, event_id, event_type, recipient.lower())
    else:
        dedupe = digest_key(esp, event_type, recipient.lower(), payload)
    detail = " | ".join(part for part in (event.description, event.mta_response) if part)
    return EventRecord(
        type=event_type,
        occurred_at=event.timestamp or timezone.now(),
        dedupe_key=dedupe,
        provider_message_id=str(event.message_id or ""),
        esp=esp,
        recipient=recipient,
        user_agent=event.user_agent or "",
        url=event.click_url or "",
        detail=detail,
        payload=payload,
    )


def tracking_received(sender: Any = None, event: Any = None, esp_name: str = "", **kwargs: Any) -> None:
    """Receiver for `anymail.signals.tracking`."""
    record = record_from_tracking_event(event, esp_name)
    if record is not None:
        buffer.push([record])


# --- replies -------------------------------------------------------------------------------------


def _message_ids(header: str | None) -> list[str]:
    return re.findall(r"<[^<>\s]+>", header or "")


def reply_candidates(message: Any) -> tuple[list[str], list[str]]:
    """(recipient addresses, referenced Message-IDs, most relevant first) of an inbound message."""
    addresses = [
        address
        for _name, address in getaddresses(
            [message.get(header, "") for header in ("To", "Cc", "Delivered-To", "X-Original-To")]
        )
        if address
    ]
    references = _message_ids(message.get("In-Reply-To")) + list(reversed(_message_ids(message.get("References"))))
    return addresses, references


def inbound_received(sender: Any = None, event: Any = None, esp_name: str = "", **kwargs: Any) -> None:
    """Receiver for `anymail.signals.inbound`: a reply to one of our messages becomes its `replied` event."""
    from tracking.selectors import message_for_reply

    message = event.message
    if message is None:
        return
    addresses, references = reply_candidates(message)
    envelope = getattr(message, "envelope_recipient", None)
    if envelope:
        addresses.insert(0, envelope)
    match = message_for_reply(addresses=addresses, references=references)
    if match is None:
        logger.info("inbound message is not a reply to a campaign message", extra={"esp": esp_name})
        return
    message_id, matched_by = match
    esp = esp_key(esp_name)
    own_id = (message.get("Message-ID") or "").strip()
    sender_address = getattr(message.from_email, "addr_spec", "") if message.from_email else ""
    dedupe = digest_key("inbound", esp, own_id or event.event_id or message.as_string()[:65536])
    buffer.push(
        [
            EventRecord(
                type=EventType.REPLIED,
                occurred_at=event.timestamp or timezone.now(),
                dedupe_key=dedupe,
                message_id=message_id,
                esp=esp,
                recipient=sender_address,
                detail=(message.get("Subject") or "")[:1000],
                # A summary, not the raw message: replies can carry large attachments.
                payload={
                    "from": message.get("From", ""),
                    "subject": message.get("Subject", ""),
                    "message_id": own_id,
                    "in_reply_to": message.get("In-Reply-To", ""),
                    "matched_by": matched_by,
                },
            )
        ]
    )
