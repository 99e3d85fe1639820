"""Anymail's webhook views as we mount them at /anymail/.

Only the configured provider answers: ANYMAIL_ESP_NAME, or the Anymail backend named in
EMAIL_BACKEND (Brevo and its old name SendinBlue are one provider). Every other provider's
URLs are a 404, so nobody can feed events through a provider the installation does not use.

A post is verified before its body is looked at (basic auth first, then the provider's own
signature), and a verified post whose body is not the provider's format (not JSON, not an
object or a batch, an event without its type or message id) is a 400 naming what is wrong.
Anymail's views raise on such bodies (TypeError, KeyError, ...), which would be a 500 and a
provider retrying for days; here they are refused, logged, and nothing is stored (the events
of a post reach the buffer only when the whole post succeeded, see `buffer.collecting`).
Errors after parsing (our receivers, the database, the buffer) stay 500s so the provider
retries them.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
from collections.abc import Callable
from typing import Any

from anymail.exceptions import AnymailAPIError, AnymailConfigurationError, AnymailWebhookValidationFailure
from anymail.webhooks.base import AnymailBasicAuthMixin
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseNotFound

from config.validation import BODY_EXTRA_DEPTH, json_problem

logger = logging.getLogger(__name__)

ALIASES = {"brevo": "sendinblue", "sendinblue": "brevo"}
# What Anymail's parsers raise on a body of the wrong shape.
SHAPE_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError)
REASON_MAX_CHARS = 200
SES_VALIDATION_TEXT = "Successfully validated SNS topic for Amazon SES event publishing."


class MalformedWebhook(Exception):
    """A verified post whose body is not the provider's format."""


def configured_esps() -> frozenset[str]:
    """The providers whose webhooks are mounted: the one the installation sends through."""
    names = {getattr(settings, "ANYMAIL_ESP_NAME", "") or ""}
    backend = re.match(r"anymail\.backends\.(\w+)\.", getattr(settings, "EMAIL_BACKEND", "") or "")
    if backend:
        names.add(backend.group(1))
    names |= {ALIASES[name] for name in names if name in ALIASES}
    names.discard("")
    return frozenset(name.lower() for name in names)


def route_esp(route: str) -> str:
    """The provider of one of Anymail's routes: "amazon_ses/tracking/" -> "amazon_ses"."""
    return route.lstrip("^").split("/", 1)[0]


def mounted(view: Callable, *, esp: str) -> Callable:
    """`view` for the configured provider; a 404, as if not mounted, for any other."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if esp not in configured_esps():
            return HttpResponseNotFound("Not found.", content_type="text/plain")
        return view(request, *args, **kwargs)

    return wrapped


def checked_view(view_class: type, *, esp: str, initkwargs: dict[str, Any] | None = None) -> Callable:
    """Anymail's view class with its verification first and its parsing answering 400 on a bad body."""
    shape = SHAPES.get((esp, "inbound" if view_class.__name__.endswith("InboundWebhookView") else "tracking"))

    class Checked(view_class):
        def post(self, request, *args, **kwargs):
            try:
                return super().post(request, *args, **kwargs)
            except MalformedWebhook as exc:
                logger.warning("webhook refused: %s", exc, extra={"path": request.path, "esp": esp})
                return HttpResponseBadRequest(f"Malformed {self.esp_name} webhook: {exc}", content_type="text/plain")

        def run_validators(self, request):
            # Basic auth first: a body is read only once the post proved who sent it.
            ordered = sorted(self.validators, key=lambda check: check is not AnymailBasicAuthMixin.validate_request)
            for validator in ordered:
                try:
                    validator(self, request)
                except AnymailWebhookValidationFailure:
                    raise
                except (*SHAPE_ERRORS, AnymailAPIError) as exc:  # Amazon SES reads the body to verify it
                    raise MalformedWebhook(_reason(exc)) from exc

        def parse_events(self, request):
            if shape is not None:
                problem = shape(request)
                if problem:
                    raise MalformedWebhook(problem)
            try:
                return super().parse_events(request)
            except (*SHAPE_ERRORS, AnymailConfigurationError) as exc:
                raise MalformedWebhook(_reason(exc)) from exc

    Checked.__name__ = Checked.__qualname__ = f"Checked{view_class.__name__}"
    return Checked.as_view(**(initkwargs or {}))


def _reason(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"the field {exc} is missing"[:REASON_MAX_CHARS]
    if isinstance(exc, AnymailConfigurationError | AnymailAPIError):
        # Anymail's messages may quote the whole body: the first line, shortened, says enough.
        return (str(exc).splitlines() or [""])[0][:REASON_MAX_CHARS]
    return f"the body is not in the provider's format ({type(exc).__name__})"


# --- shapes -------------------------------------------------------------------------------------------


def _json(raw: bytes | str, what: str = "the body") -> Any:
    """Strict JSON that can be stored: ValueError says why not. Batches may hold many keys."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{what} is not UTF-8 text") from None
    if "\x00" in raw:
        raise ValueError(f"{what} contains NUL characters")
    try:
        value = json.loads(raw)
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply") from None
    except ValueError:
        raise ValueError(f"{what} is not JSON") from None
    problem = json_problem(value, max_depth=settings.JSON_MAX_DEPTH + BODY_EXTRA_DEPTH, max_keys=sys.maxsize)
    if problem:
        raise ValueError(f"{what} {problem}")
    return value


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _json_body(request: HttpRequest, check: Callable[[Any], str | None]) -> str | None:
    try:
        body = _json(request.body)
    except ValueError as exc:
        return str(exc)
    return check(body)


def _postmark_tracking(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    for field in ("RecordType", "MessageID"):
        if not _text(body.get(field)):
            return f"the field {field!r} is missing or not text"
    return None


def _postmark_inbound(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    if not _text(body.get("MessageID")):
        return "the field 'MessageID' is missing or not text"
    if not isinstance(body.get("FromFull"), dict) and not _text(body.get("RawEmail")):
        return "the field 'FromFull' (or 'RawEmail') is missing"
    if not isinstance(body.get("Headers", []), list):
        return "the field 'Headers' must be a list"
    return None


def _mailgun_tracking(request: HttpRequest) -> str | None:
    if request.content_type != "application/json":
        return None if request.POST.get("event") else "the field 'event' is missing"

    def check(body: Any) -> str | None:
        if not isinstance(body, dict):
            return "the body must be a JSON object"
        data = body.get("event-data")
        if not isinstance(data, dict):
            return "the field 'event-data' is missing or not an object"
        if not _text(data.get("event")):
            return "the field 'event-data.event' is missing or not text"
        return None

    return _json_body(request, check)


def _mailgun_inbound(request: HttpRequest) -> str | None:
    if request.content_type == "application/json":
        return "inbound messages are posted as a form, not JSON"
    if "body-mime" not in request.POST and "message-headers" not in request.POST:
        return "the field 'body-mime' (or 'message-headers') is missing"
    return None


def _ses(kind: str) -> Callable[[HttpRequest], str | None]:
    def check(body: Any) -> str | None:
        if not isinstance(body, dict):
            return "the body must be a JSON object"
        if body.get("Type") != "Notification":
            return None  # subscription (un)confirmations: Anymail handles them
        message = body.get("Message")
        if not isinstance(message, str):
            return "the field 'Message' is missing or not text"
        if message == SES_VALIDATION_TEXT:
            return None
        try:
            event = _json(message, "the field 'Message'")
        except ValueError as exc:
            return str(exc)
        if not isinstance(event, dict):
            return "the field 'Message' must hold a JSON object"
        if not isinstance(event.get("mail"), dict):
            return "the field 'Message.mail' is missing or not an object"
        if kind == "inbound":
            if not isinstance(event.get("receipt"), dict):
                return "the field 'Message.receipt' is missing or not an object"
        elif not (_text(event.get("eventType")) or _text(event.get("notificationType"))):
            return "the field 'Message.eventType' is missing or not text"
        return None

    return lambda request: _json_body(request, check)


def _sparkpost(kind: str) -> Callable[[Any], str | None]:
    def check(body: Any) -> str | None:
        if not isinstance(body, list) or not body:
            return "the body must be a non-empty JSON array of events"
        for number, item in enumerate(body):
            msys = item.get("msys") if isinstance(item, dict) else None
            if not isinstance(msys, dict) or len(msys) > 1:
                return f"event {number} must be an object with one 'msys' object"
            for event_class, event in msys.items():  # an empty msys is SparkPost's ping
                if not isinstance(event, dict):
                    return f"event {number}: 'msys.{event_class}' must be an object"
                if kind == "tracking" and not _text(event.get("type")):
                    return f"event {number}: the field 'type' is missing or not text"
                if kind == "inbound" and not isinstance(event.get("content"), dict):
                    return f"event {number}: the field 'content' is missing or not an object"
        return None

    return check


SHAPES: dict[tuple[str, str], Callable[[HttpRequest], str | None]] = {
    ("postmark", "tracking"): lambda request: _json_body(request, _postmark_tracking),
    ("postmark", "inbound"): lambda request: _json_body(request, _postmark_inbound),
    ("mailgun", "tracking"): _mailgun_tracking,
    ("mailgun", "inbound"): _mailgun_inbound,
    ("amazon_ses", "tracking"): _ses("tracking"),
    ("amazon_ses", "inbound"): _ses("inbound"),
    ("sparkpost", "tracking"): lambda request: _json_body(request, _sparkpost("tracking")),
    ("sparkpost", "inbound"): lambda request: _json_body(request, _sparkpost("inbound")),
}
