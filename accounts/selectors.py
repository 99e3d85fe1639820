"""Account reads."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db.models import QuerySet


def _start_of(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=tz)


def audit_events_filter(
    events: QuerySet,
    *,
    timezone: str,
    action: str = "",
    object_type: str = "",
    object_id: str = "",
    actor: uuid.UUID | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
) -> QuerySet:
    """An organization's audit events (already scoped to it) narrowed by the list's filters, newest
    first. Dates are days in `timezone` (the organization's), both ends included."""
    events = events.order_by("-created_at", "-id")
    if action:
        events = events.filter(action=action)
    if object_type:
        events = events.filter(object_type=object_type)
    if object_id:
        events = events.filter(object_id=object_id)
    if actor is not None:
        events = events.filter(actor_id=actor)
    tz = ZoneInfo(timezone)
    if date_from is not None:
        events = events.filter(created_at__gte=_start_of(date_from, tz))
    if date_to is not None:
        events = events.filter(created_at__lt=_start_of(date_to + timedelta(days=1), tz))
    return events
