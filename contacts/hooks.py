"""The one internal hook for things that happen to contacts.

Drip sequences (and anything else) subscribe with `contact_event.connect(receiver)`.
A receiver gets keyword arguments:

    organization_id   the organization's id
    name              one of the names below or a custom event name
    contacts          a Contact queryset (set-based: an import of a million contacts
                      is one emission, not a million)
    properties        dict: event properties; for tag_added {"tag": name, "tag_id": id}
    occurred_at       aware datetime

Emissions happen after the writing transaction commits, so a receiver never sees
rows that were rolled back.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

logger = logging.getLogger(__name__)

CONTACT_CREATED = "contact_created"
TAG_ADDED = "tag_added"
# The contact opted out (or was erased), bounced hard, complained, or replied to a message.
UNSUBSCRIBED = "unsubscribed"
BOUNCED = "bounced"
COMPLAINED = "complained"
MESSAGE_REPLIED = "message_replied"
BUILT_IN = frozenset({CONTACT_CREATED, TAG_ADDED, UNSUBSCRIBED, BOUNCED, COMPLAINED, MESSAGE_REPLIED})

contact_event = Signal()


def emit(*, organization_id, name: str, contacts, properties: dict | None = None, occurred_at: datetime | None = None):
    """Send `name` for `contacts` to every receiver once the current transaction commits."""
    occurred_at = occurred_at or timezone.now()

    def send() -> None:
        for receiver, result in contact_event.send_robust(
            sender=None,
            organization_id=organization_id,
            name=name,
            contacts=contacts,
            properties=properties or {},
            occurred_at=occurred_at,
        ):
            if isinstance(result, Exception):
                logger.error(
                    "contact event receiver failed",
                    exc_info=(type(result), result, result.__traceback__),
                    extra={"receiver": repr(receiver), "event": name},
                )

    transaction.on_commit(send)
