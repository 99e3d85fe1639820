"""The event record: what the endpoints and webhook receivers hand to the buffer.

A record is a small JSON-able dict, built without touching the database, so the open
pixel and the click redirect only serialize it and append it to the buffer. Everything
that needs the database (the message's organization and contact, machine flags against
the send time, IP anonymization by organization setting, the status rule) happens when
a batch of records is ingested (`services.event_ingest_batch`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import uuid
from dataclasses import dataclass, fields
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime


@dataclass
class EventRecord:
    type: str
    occurred_at: datetime
    dedupe_key: str
    message_id: int | None = None
    provider_message_id: str = ""
    esp: str = ""
    recipient: str = ""
    ip: str | None = None
    user_agent: str = ""
    method: str = ""
    url: str = ""
    link_index: int | None = None
    detail: str = ""
    payload: Any = None

    def to_json(self) -> str:
        # Field by field rather than dataclasses.asdict, which deep-copies: this runs once per hit.
        data = {name: getattr(self, name) for name in _FIELDS}
        data = {key: value for key, value in data.items() if value is not None and value != ""}
        data["occurred_at"] = self.occurred_at.isoformat()
        return json.dumps(data, separators=(",", ":"), default=str)

    @classmethod
    def from_json(cls, text: str | bytes) -> EventRecord:
        # Keys this version does not know (written by a newer one during a rolling deploy) are ignored.
        data = {key: value for key, value in json.loads(text).items() if key in _FIELDS}
        occurred_at = parse_datetime(data.pop("occurred_at"))
        if occurred_at is None:
            raise ValueError("occurred_at")
        if timezone.is_naive(occurred_at):
            occurred_at = timezone.make_aware(occurred_at, timezone.utc)
        return cls(occurred_at=occurred_at, **data)


_FIELDS = tuple(item.name for item in fields(EventRecord))


def hit_key() -> str:
    """A fresh key for one request to our endpoints: every hit is its own event."""
    return f"hit:{uuid.uuid4().hex}"


def digest_key(*parts: Any) -> str:
    """A stable key from the parts (a provider's event id, or its whole payload)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def clean_ip(value: str | None) -> str | None:
    """A valid IP address or None (the address comes from the request and is checked, not trusted)."""
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


@lru_cache(maxsize=65536)
def anonymize_ip(value: str | None) -> str | None:
    """Zero the host part: the last octet of an IPv4 address, the last 80 bits of an IPv6 one."""
    if not value:
        return None
    address = ipaddress.ip_address(value)
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)
