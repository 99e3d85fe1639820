"""Emails to agents about their callbacks (not marketing mail). Sent by Celery tasks only."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import EmailMessage

from accounts.models import User
from callbacks.models import OPEN, CallbackRequest

logger = logging.getLogger(__name__)


def admin_link(callback: CallbackRequest) -> str:
    return f"{settings.PUBLIC_BASE_URL}/admin/callbacks/callbackrequest/{callback.pk}/change/"


def _describe(callback: CallbackRequest) -> list[str]:
    org_tz = ZoneInfo(callback.organization.timezone)
    contact = callback.contact
    name = contact.full_name or contact.email or "Unknown contact"
    lines = [
        f"{callback.get_priority_display()} (score {callback.priority_score}): {name}, {callback.phone}",
        f"  Call before: {callback.sla_due_at.astimezone(org_tz):%a %d %b %Y %H:%M} ({org_tz.key})",
    ]
    if callback.preferred_start or callback.preferred_end:
        contact_tz = ZoneInfo(callback.timezone)
        start = f"{callback.preferred_start.astimezone(contact_tz):%a %d %b %H:%M}" if callback.preferred_start else ""
        end = f"{callback.preferred_end.astimezone(contact_tz):%a %d %b %H:%M}" if callback.preferred_end else ""
        lines.append(f"  Preferred time: {start} - {end} ({contact_tz.key}, the contact's time)")
    if callback.reason:
        lines.append(f"  Reason: {callback.reason}")
    lines += [f"  {admin_link(callback)}", ""]
    return lines


def _agent_callbacks(*, agent_id: str, callback_ids: Iterable[str]):
    return list(
        CallbackRequest.objects.select_related("contact", "organization")
        .filter(pk__in=list(callback_ids), assigned_to_id=agent_id, status__in=OPEN)
        .order_by("sla_due_at")
    )


def assignment_send(*, agent_id: str, callback_ids: Iterable[str]) -> bool:
    """Tell an agent which callbacks they were given; skips those re-assigned or closed since."""
    agent = User.objects.filter(pk=agent_id, is_active=True).first()
    callbacks = _agent_callbacks(agent_id=agent_id, callback_ids=callback_ids) if agent else []
    if not callbacks:
        logger.info("assignment email skipped: nothing left to tell", extra={"agent_id": agent_id})
        return False
    if len(callbacks) == 1:
        subject = f"Callback assigned to you: {callbacks[0].contact.full_name or callbacks[0].phone}"
    else:
        subject = f"{len(callbacks)} callbacks assigned to you"
    lines = ["These callback requests are now yours:", ""]
    for callback in callbacks:
        lines += _describe(callback)
    EmailMessage(
        subject=subject, body="\n".join(lines), from_email=settings.DEFAULT_FROM_EMAIL, to=[agent.email]
    ).send()
    logger.info("assignment email sent", extra={"agent_id": agent_id, "callbacks": len(callbacks)})
    return True


def breach_send(*, agent_id: str, callback_ids: Iterable[str]) -> bool:
    """Warn an agent that callbacks assigned to them passed their SLA without a first contact."""
    agent = User.objects.filter(pk=agent_id, is_active=True).first()
    callbacks = [c for c in _agent_callbacks(agent_id=agent_id, callback_ids=callback_ids) if c.overdue]
    if agent is None or not callbacks:
        logger.info("breach email skipped: nothing left to tell", extra={"agent_id": agent_id})
        return False
    if len(callbacks) == 1:
        subject = f"Callback overdue: {callbacks[0].contact.full_name or callbacks[0].phone}"
    else:
        subject = f"{len(callbacks)} callbacks overdue"
    lines = ["These callback requests passed their SLA and still wait for your call:", ""]
    for callback in callbacks:
        lines += _describe(callback)
    EmailMessage(
        subject=subject, body="\n".join(lines), from_email=settings.DEFAULT_FROM_EMAIL, to=[agent.email]
    ).send()
    logger.info("breach email sent", extra={"agent_id": agent_id, "callbacks": len(callbacks)})
    return True
