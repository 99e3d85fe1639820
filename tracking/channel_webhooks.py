"""SMS and WhatsApp provider webhooks (public, no JWT, CSRF-exempt).

`POST /webhooks/sms/twilio/`   Twilio's status callbacks and inbound messages. Verified with the
                               `twilio` package's RequestValidator: X-Twilio-Signature is the
                               HMAC-SHA1, keyed with TWILIO_AUTH_TOKEN, of the URL Twilio called
                               (PUBLIC_BASE_URL + the path and query) followed by the sorted form
                               parameters.
`GET  /webhooks/whatsapp/`     Meta's subscription check: hub.challenge when hub.mode is "subscribe"
                               and hub.verify_token is WHATSAPP_VERIFY_TOKEN, else 403.
`POST /webhooks/whatsapp/`     Meta's WhatsApp Cloud API notifications. Verified by
                               X-Hub-Signature-256: "sha256=" + HMAC-SHA256 of the raw body keyed with
                               WHATSAPP_APP_SECRET.

A post that is unsigned or wrongly signed, or that arrives while the secret is not configured, is a
403 and nothing is stored. A verified post that is not the provider's format is a 400 naming what is
wrong. Delivery statuses become events through the same buffer and ingestion as email's (matched by
the provider's message id, status forward-only); inbound messages go to
`tracking.services.phone_inbound_receive` (STOP / START / replies).

Status mapping: Twilio queued, sent, delivered, undelivered (-> failed), failed (and read, for
WhatsApp through Twilio); Meta sent, delivered, read (-> opened), failed. Other statuses (accepted,
sending, scheduled, ...) say nothing new and are acknowledged without storing anything.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseForbidden,
    HttpResponseNotAllowed,
)
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from campaigns.channels import SMS, WHATSAPP
from tracking import buffer, services
from tracking.models import EventType
from tracking.providers import jsonable
from tracking.records import EventRecord, digest_key

logger = logging.getLogger(__name__)
security_logger = logging.getLogger("django.security.tracking")

TWILIO = "twilio"
WHATSAPP_ESP = "whatsapp"
TWILIO_STATUSES = {
    "queued": EventType.QUEUED,
    "sent": EventType.SENT,
    "delivered": EventType.DELIVERED,
    "undelivered": EventType.FAILED,
    "failed": EventType.FAILED,
    "read": EventType.OPENED,
}
WHATSAPP_STATUSES = {
    "sent": EventType.SENT,
    "delivered": EventType.DELIVERED,
    "read": EventType.OPENED,
    "failed": EventType.FAILED,
}
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


class MalformedWebhook(ValueError):
    """A verified post whose body is not the provider's format."""


def _refused(request: HttpRequest, reason: str) -> HttpResponse:
    security_logger.warning("webhook refused: %s", reason, extra={"path": request.path})
    return HttpResponseForbidden("Webhook verification failed.", content_type="text/plain")


def _malformed(request: HttpRequest, provider: str, exc: Exception) -> HttpResponse:
    logger.warning("webhook refused: %s", exc, extra={"path": request.path})
    return HttpResponseBadRequest(f"Malformed {provider} webhook: {exc}", content_type="text/plain")


# --- Twilio ---------------------------------------------------------------------------------------------


def twilio_signature_valid(request: HttpRequest) -> bool:
    """Whether X-Twilio-Signature signs this request's public URL and form parameters."""
    from twilio.request_validator import RequestValidator

    token = settings.TWILIO_AUTH_TOKEN
    signature = request.headers.get("X-Twilio-Signature", "")
    if not token or not signature:
        return False
    url = settings.PUBLIC_BASE_URL + request.get_full_path()
    return RequestValidator(token).validate(url, request.POST, signature)


@csrf_exempt
def twilio_webhook(request: HttpRequest) -> HttpResponse:
    """Twilio's status callbacks and inbound messages."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not settings.TWILIO_AUTH_TOKEN:
        return _refused(request, "TWILIO_AUTH_TOKEN is not set; Twilio's signature cannot be checked")
    if not twilio_signature_valid(request):
        return _refused(request, "missing or wrong X-Twilio-Signature")
    params = request.POST
    sid = (params.get("MessageSid") or params.get("SmsSid") or "").strip()
    if not sid:
        return _malformed(request, "Twilio", MalformedWebhook("the field 'MessageSid' is missing"))
    status = (params.get("MessageStatus") or params.get("SmsStatus") or "").strip().lower()
    payload = jsonable(params)
    if status == "received" or ("MessageStatus" not in params and "Body" in params):
        sender = (params.get("From") or "").strip()
        if not sender:
            return _malformed(request, "Twilio", MalformedWebhook("the field 'From' is missing"))
        channel = SMS
        if sender.lower().startswith("whatsapp:"):
            channel, sender = WHATSAPP, sender.split(":", 1)[1]
        services.phone_inbound_receive(
            channel=channel,
            esp=TWILIO,
            phone=sender,
            text=params.get("Body") or "",
            provider_message_id=sid,
            occurred_at=timezone.now(),
            payload=payload,
        )
        # Empty TwiML: no automatic answer from us (Twilio's own opt-out replies still apply).
        return HttpResponse(EMPTY_TWIML, content_type="text/xml")
    event_type = TWILIO_STATUSES.get(status)
    if event_type is not None:
        error = " ".join(part for part in (params.get("ErrorCode", ""), params.get("ErrorMessage", "")) if part)
        buffer.push(
            [
                EventRecord(
                    type=event_type,
                    occurred_at=timezone.now(),
                    dedupe_key=digest_key(TWILIO, sid, status),
                    provider_message_id=sid,
                    esp=TWILIO,
                    recipient=(params.get("To") or "").removeprefix("whatsapp:"),
                    detail=f"Twilio error {error}" if error else "",
                    payload=payload,
                )
            ]
        )
    return HttpResponse(status=204)


# --- WhatsApp Cloud API ---------------------------------------------------------------------------------


def whatsapp_signature_valid(request: HttpRequest) -> bool:
    """Whether X-Hub-Signature-256 is the HMAC-SHA256 of the raw body keyed with the app secret."""
    secret = settings.WHATSAPP_APP_SECRET
    header = request.headers.get("X-Hub-Signature-256", "")
    if not secret or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(header.strip().lower().encode(), expected.encode())


def _timestamp(value: Any) -> datetime:
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return timezone.now()


def _object(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise MalformedWebhook(f"{what} must be an object")
    return value


def _list(value: Any, what: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedWebhook(f"{what} must be a list")
    return value


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str | int) or not str(value).strip():
        raise MalformedWebhook(f"the field {what!r} is missing or not text")
    return str(value).strip()


def _inbound_text(message: dict) -> str:
    """What the contact wrote: a text's body, or the label of the button or list item they chose."""
    kind = message.get("type")
    if kind == "text":
        return str((message.get("text") or {}).get("body") or "")
    if kind == "button":
        return str((message.get("button") or {}).get("text") or "")
    if kind == "interactive":
        interactive = message.get("interactive") or {}
        choice = interactive.get("button_reply") or interactive.get("list_reply") or {}
        return str(choice.get("title") or "")
    return ""


def whatsapp_parse(body: Any) -> tuple[list[EventRecord], list[dict]]:
    """Meta's notification as status records and inbound messages; raises MalformedWebhook."""
    body = _object(body, "the body")
    records: list[EventRecord] = []
    inbound: list[dict] = []
    for e, entry in enumerate(_list(body.get("entry"), "entry")):
        entry = _object(entry, f"entry[{e}]")
        for c, change in enumerate(_list(entry.get("changes"), f"entry[{e}].changes")):
            change = _object(change, f"entry[{e}].changes[{c}]")
            where = f"entry[{e}].changes[{c}].value"
            value = _object(change.get("value"), where)
            for s, status in enumerate(_list(value.get("statuses"), f"{where}.statuses")):
                status = _object(status, f"{where}.statuses[{s}]")
                wamid = _text(status.get("id"), f"{where}.statuses[{s}].id")
                name = _text(status.get("status"), f"{where}.statuses[{s}].status").lower()
                event_type = WHATSAPP_STATUSES.get(name)
                if event_type is None:
                    continue
                errors = [error for error in _list(status.get("errors"), "errors") if isinstance(error, dict)]
                detail = "; ".join(
                    f"WhatsApp error {error.get('code')}: {error.get('title') or error.get('message') or ''}".strip()
                    for error in errors
                )
                recipient = str(status.get("recipient_id") or "")
                records.append(
                    EventRecord(
                        type=event_type,
                        occurred_at=_timestamp(status.get("timestamp")),
                        dedupe_key=digest_key(WHATSAPP_ESP, wamid, name),
                        provider_message_id=wamid,
                        esp=WHATSAPP_ESP,
                        recipient=f"+{recipient}" if recipient.isdigit() else recipient,
                        detail=detail,
                        payload=status,
                    )
                )
            for m, message in enumerate(_list(value.get("messages"), f"{where}.messages")):
                message = _object(message, f"{where}.messages[{m}]")
                sender = _text(message.get("from"), f"{where}.messages[{m}].from")
                inbound.append(
                    {
                        "phone": sender if sender.startswith("+") else f"+{sender}",
                        "text": _inbound_text(message),
                        "provider_message_id": _text(message.get("id"), f"{where}.messages[{m}].id"),
                        "occurred_at": _timestamp(message.get("timestamp")),
                        "payload": message,
                    }
                )
    return records, inbound


@csrf_exempt
def whatsapp_webhook(request: HttpRequest) -> HttpResponse:
    """Meta's subscription check (GET) and its signed notifications (POST)."""
    if request.method == "GET":
        token = settings.WHATSAPP_VERIFY_TOKEN
        given = request.GET.get("hub.verify_token", "")
        if token and request.GET.get("hub.mode") == "subscribe" and hmac.compare_digest(given.encode(), token.encode()):
            return HttpResponse(request.GET.get("hub.challenge", ""), content_type="text/plain")
        return _refused(request, "wrong hub.verify_token or hub.mode")
    if request.method != "POST":
        return HttpResponseNotAllowed(["GET", "POST"])
    if not settings.WHATSAPP_APP_SECRET:
        return _refused(request, "WHATSAPP_APP_SECRET is not set; Meta's signature cannot be checked")
    if not whatsapp_signature_valid(request):
        return _refused(request, "missing or wrong X-Hub-Signature-256")
    try:
        try:
            body = json.loads(request.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise MalformedWebhook("the body is not JSON") from None
        records, inbound = whatsapp_parse(body)
    except MalformedWebhook as exc:
        return _malformed(request, "WhatsApp", exc)
    buffer.push(records)
    for message in inbound:
        services.phone_inbound_receive(channel=WHATSAPP, esp=WHATSAPP_ESP, **message)
    return HttpResponse(status=200)
