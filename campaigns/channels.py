"""SMS and WhatsApp backends: send a batch of rendered messages, one outcome per message.

Email goes through Django's mail backends (Anymail); the other channels go through this small
interface of our own, chosen by settings:

    SMS_BACKEND        twilio | file | console
    WHATSAPP_BACKEND   cloud  | file | console

A backend holds one HTTP session while it is open (`open()` / `close()`, or a `with` block), so
a send task reuses one session for its whole chunk; `send_batch` outside of that opens one for
the batch. `send_batch` never raises for a message: every provider error comes back as that
message's `SendOutcome`, classified temporary (retry later) or permanent (fail now).

A provider backend without its credentials is no backend at all (`backend_for` answers None and
`unavailable_reason` says what is missing): campaigns and sequences of that channel are refused at
launch rather than launched to fail.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone

SMS = "sms"
WHATSAPP = "whatsapp"
TWILIO_STATUS_PATH = "/webhooks/sms/twilio/"
GRAPH_API = "https://graph.facebook.com"

# Meta's error codes that mean "try again later": rate limits, throttling and service trouble.
# https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes
WHATSAPP_TEMPORARY_CODES = frozenset({1, 2, 4, 17, 341, 80007, 130429, 131000, 131016, 131048, 131056, 133004})


@dataclass(frozen=True)
class OutgoingMessage:
    """One rendered message for a phone channel."""

    message_id: int
    to: str  # E.164
    body: str = ""  # SMS
    template: str = ""  # WhatsApp: the approved template's name
    language: str = ""
    parameters: list | dict | None = None


@dataclass(frozen=True)
class SendOutcome:
    """The provider's id for a message it accepted, or why it did not (and whether to retry)."""

    provider_id: str = ""
    error: str = ""
    temporary: bool = False

    @property
    def ok(self) -> bool:
        return not self.error

    @classmethod
    def failed(cls, error: str, *, temporary: bool) -> SendOutcome:
        return cls(error=(error or "The provider refused the message.")[:2000], temporary=temporary)


class ChannelBackend:
    """A channel's sender. Subclasses implement `_send_one` and, when they hold a session, `_open`/`_close`."""

    channel = ""
    name = ""

    def __init__(self) -> None:
        self._session: Any = None

    def open(self) -> bool:
        """Open the backend's session; False when it was open already."""
        if self._session is not None:
            return False
        self._session = self._open()
        return True

    def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            self._close(session)

    def __enter__(self) -> ChannelBackend:
        self.open()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendOutcome]:
        """Send the messages in order on one session; one outcome per message, never an exception."""
        opened = self.open()
        try:
            outcomes = []
            for message in messages:
                try:
                    outcomes.append(self._send_one(self._session, message))
                except Exception as exc:  # an error we did not expect still belongs to its message
                    outcomes.append(self._unexpected(exc))
            return outcomes
        finally:
            if opened:
                self.close()

    # What subclasses provide.

    def _open(self) -> Any:
        return True

    def _close(self, session: Any) -> None:
        return None

    def _send_one(self, session: Any, message: OutgoingMessage) -> SendOutcome:
        raise NotImplementedError

    def _unexpected(self, exc: Exception) -> SendOutcome:
        return SendOutcome.failed(f"{exc.__class__.__name__}: {exc}", temporary=True)


def message_record(channel: str, message: OutgoingMessage, provider_id: str) -> dict[str, Any]:
    """What the file and console backends write for one message."""
    record: dict[str, Any] = {"channel": channel, "to": message.to}
    if channel == SMS:
        record["body"] = message.body
    else:
        record.update(template=message.template, language=message.language, parameters=message.parameters)
    record.update(
        message_id=str(message.message_id),
        provider_message_id=provider_id,
        created_at=timezone.now().isoformat(),
    )
    return record


class FileBackend(ChannelBackend):
    """One JSON object per line per message, appended to `<directory>/<YYYY-MM-DD>.jsonl`.

    Each line is a single append (O_APPEND) so several workers can write to the same file."""

    name = "file"

    def __init__(self, channel: str, directory: str) -> None:
        super().__init__()
        self.channel = channel
        self.directory = Path(directory)

    def _send_one(self, session: Any, message: OutgoingMessage) -> SendOutcome:
        provider_id = f"{self.channel}-file-{uuid.uuid4().hex}"
        line = json.dumps(message_record(self.channel, message, provider_id), ensure_ascii=False) + "\n"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / f"{timezone.now():%Y-%m-%d}.jsonl"
            descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(descriptor, line.encode("utf-8"))
            finally:
                os.close(descriptor)
        except OSError as exc:  # a full disk or a missing permission may be fixed by the next attempt
            return SendOutcome.failed(f"Could not write to {self.directory}: {exc}", temporary=True)
        return SendOutcome(provider_id=provider_id)


class ConsoleBackend(ChannelBackend):
    """One JSON line per message on standard output (development)."""

    name = "console"

    def __init__(self, channel: str, stream=None) -> None:
        super().__init__()
        self.channel = channel
        self.stream = stream

    def _send_one(self, session: Any, message: OutgoingMessage) -> SendOutcome:
        provider_id = f"{self.channel}-console-{uuid.uuid4().hex}"
        stream = self.stream or sys.stdout
        stream.write(json.dumps(message_record(self.channel, message, provider_id), ensure_ascii=False) + "\n")
        stream.flush()
        return SendOutcome(provider_id=provider_id)


# --- Twilio ------------------------------------------------------------------------------------------


def public_status_callback() -> str:
    """Where Twilio reports delivery, or "" when PUBLIC_BASE_URL is not reachable from the internet
    (Twilio refuses such callback URLs; the Messaging Service's own callback setting applies then)."""
    base = settings.PUBLIC_BASE_URL
    host = (urlsplit(base).hostname or "").lower()
    if not host or host == "localhost" or host.endswith(".localhost") or host.startswith("127.") or host == "::1":
        return ""
    return base + TWILIO_STATUS_PATH


class TwilioBackend(ChannelBackend):
    """Twilio's Programmable Messaging through the official `twilio` package: one requests session
    (TwilioHttpClient) per open backend, a Messaging Service SID or a From number."""

    channel = SMS
    name = "twilio"

    def __init__(self, *, account_sid: str, auth_token: str, from_number: str = "", messaging_service_sid: str = ""):
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.status_callback = public_status_callback()

    def _open(self) -> Any:
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        http = TwilioHttpClient(timeout=settings.CHANNEL_HTTP_TIMEOUT)
        return Client(self.account_sid, self.auth_token, http_client=http)

    def _close(self, session: Any) -> None:
        http = session.http_client
        if getattr(http, "session", None) is not None:
            http.session.close()

    def _send_one(self, session: Any, message: OutgoingMessage) -> SendOutcome:
        from requests import RequestException
        from twilio.base.exceptions import TwilioRestException

        options: dict[str, Any] = {"to": message.to, "body": message.body}
        if self.messaging_service_sid:
            options["messaging_service_sid"] = self.messaging_service_sid
        else:
            options["from_"] = self.from_number
        if self.status_callback:
            options["status_callback"] = self.status_callback
        try:
            created = session.messages.create(**options)
        except TwilioRestException as exc:
            return twilio_outcome(status=exc.status, code=exc.code, text=exc.msg)
        except RequestException as exc:  # no answer: connection refused, timeout, TLS
            return SendOutcome.failed(f"Twilio could not be reached: {exc}", temporary=True)
        return SendOutcome(provider_id=created.sid)


def twilio_outcome(*, status: int, code: int | None, text: str) -> SendOutcome:
    """Twilio's error answer as a failed outcome: throttling (429) and server errors are temporary,
    every other 4xx (21211 invalid number, 21610 opted out, 21614 not a mobile, ...) is permanent."""
    temporary = status == 429 or status >= 500 or code == 20429
    label = f"Twilio error {code}" if code else "Twilio error"
    return SendOutcome.failed(f"{label} (HTTP {status}): {text}", temporary=temporary)


# --- WhatsApp Cloud API --------------------------------------------------------------------------------


def whatsapp_components(parameters: list | dict | None) -> list[dict[str, Any]]:
    """A template's rendered parameters as Cloud API components. A list fills the body; an object
    may hold `header` and `body` (lists or single values) and `buttons` (one text parameter per URL
    button, by position). Raises ValueError for any other key."""
    if not parameters:
        return []
    groups = {"body": parameters} if isinstance(parameters, list) else dict(parameters)
    components: list[dict[str, Any]] = []
    for key in ("header", "body"):
        values = groups.pop(key, None)
        if values in (None, [], ""):
            continue
        values = values if isinstance(values, list) else [values]
        components.append({"type": key, "parameters": [{"type": "text", "text": str(v)} for v in values]})
    buttons = groups.pop("buttons", None)
    for index, value in enumerate(buttons if isinstance(buttons, list) else [buttons] if buttons else []):
        components.append(
            {
                "type": "button",
                "sub_type": "url",
                "index": str(index),
                "parameters": [{"type": "text", "text": str(value)}],
            }
        )
    if groups:
        raise ValueError(
            f"Unsupported WhatsApp parameter group(s): {', '.join(sorted(groups))} (use header, body, buttons)."
        )
    return components


class CloudBackend(ChannelBackend):
    """Meta's WhatsApp Cloud API: approved templates, one requests session per open backend."""

    channel = WHATSAPP
    name = "cloud"

    def __init__(self, *, token: str, phone_number_id: str, api_version: str):
        super().__init__()
        self.token = token
        self.url = f"{GRAPH_API}/{api_version}/{phone_number_id}/messages"

    def _open(self) -> Any:
        import requests

        session = requests.Session()
        session.headers.update({"Authorization": f"Bearer {self.token}"})
        return session

    def _close(self, session: Any) -> None:
        session.close()

    def _send_one(self, session: Any, message: OutgoingMessage) -> SendOutcome:
        from requests import RequestException

        try:
            components = whatsapp_components(message.parameters)
        except ValueError as exc:
            return SendOutcome.failed(str(exc), temporary=False)
        template: dict[str, Any] = {"name": message.template, "language": {"code": message.language}}
        if components:
            template["components"] = components
        payload = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": message.to,
            "type": "template",
            "template": template,
        }
        try:
            response = session.post(self.url, json=payload, timeout=settings.CHANNEL_HTTP_TIMEOUT)
        except RequestException as exc:
            return SendOutcome.failed(f"The WhatsApp Cloud API could not be reached: {exc}", temporary=True)
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code < 300 and isinstance(body, dict):
            found = body.get("messages")
            if isinstance(found, list) and found and isinstance(found[0], dict) and found[0].get("id"):
                return SendOutcome(provider_id=str(found[0]["id"]))
        return cloud_outcome(status=response.status_code, body=body)


def cloud_outcome(*, status: int, body: Any) -> SendOutcome:
    """Meta's error answer as a failed outcome: rate limits and service errors are temporary,
    everything else (131026 undeliverable, 132001 no such template, 100 bad parameter, ...) permanent."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return SendOutcome.failed(
            f"The WhatsApp Cloud API answered HTTP {status} without a message id.",
            temporary=status >= 500 or status == 429,
        )
    code = error.get("code")
    details = (error.get("error_data") or {}).get("details") if isinstance(error.get("error_data"), dict) else ""
    text = " ".join(part for part in (str(error.get("message") or ""), str(details or "")) if part)
    temporary = status == 429 or status >= 500 or code in WHATSAPP_TEMPORARY_CODES or bool(error.get("is_transient"))
    return SendOutcome.failed(f"WhatsApp error {code} (HTTP {status}): {text}", temporary=temporary)


# --- choosing a backend --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Choice:
    backend: ChannelBackend | None
    reason: str = ""


def _choose(channel: str) -> _Choice:
    if channel == SMS:
        name = settings.SMS_BACKEND
        if name == "file":
            return _Choice(FileBackend(SMS, settings.SMS_FILE_PATH))
        if name == "console":
            return _Choice(ConsoleBackend(SMS))
        missing = [key for key in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN") if not getattr(settings, key, "")]
        if not (settings.TWILIO_MESSAGING_SERVICE_SID or settings.TWILIO_FROM):
            missing.append("TWILIO_MESSAGING_SERVICE_SID or TWILIO_FROM")
        if missing:
            return _Choice(None, f"SMS_BACKEND=twilio needs {', '.join(missing)}; no SMS can be sent.")
        return _Choice(
            TwilioBackend(
                account_sid=settings.TWILIO_ACCOUNT_SID,
                auth_token=settings.TWILIO_AUTH_TOKEN,
                from_number=settings.TWILIO_FROM,
                messaging_service_sid=settings.TWILIO_MESSAGING_SERVICE_SID,
            )
        )
    if channel == WHATSAPP:
        name = settings.WHATSAPP_BACKEND
        if name == "file":
            return _Choice(FileBackend(WHATSAPP, settings.WHATSAPP_FILE_PATH))
        if name == "console":
            return _Choice(ConsoleBackend(WHATSAPP))
        missing = [key for key in ("WHATSAPP_TOKEN", "WHATSAPP_PHONE_NUMBER_ID") if not getattr(settings, key, "")]
        if missing:
            return _Choice(None, f"WHATSAPP_BACKEND=cloud needs {', '.join(missing)}; no WhatsApp message can be sent.")
        return _Choice(
            CloudBackend(
                token=settings.WHATSAPP_TOKEN,
                phone_number_id=settings.WHATSAPP_PHONE_NUMBER_ID,
                api_version=settings.WHATSAPP_API_VERSION,
            )
        )
    return _Choice(None, f"There is no {channel!r} channel backend.")


def backend_for(channel: str) -> ChannelBackend | None:
    """A fresh backend for an SMS or WhatsApp send, or None when the channel has none configured."""
    return _choose(channel).backend


def unavailable_reason(channel: str) -> str | None:
    """Why messages of `channel` cannot be sent (None when they can); email always can."""
    if channel == "email":
        return None
    return _choose(channel).reason or None
