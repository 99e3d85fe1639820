"""Callback writes: creation with score and SLA, the status machine, assignment, the sweep.

Status machine (every change writes a CallbackActivity in the same transaction;
anything not listed is a ConflictError, HTTP 409):

    new          -> assigned (assign), in_progress, no_answer, cancelled
    assigned     -> assigned (re-assign), in_progress, no_answer, cancelled
    in_progress  -> completed (with a resolution), no_answer, cancelled
    no_answer    -> assigned (re-assign), in_progress (call again), no_answer (another
                    unanswered call), cancelled
    completed, cancelled: final

- Every move to no_answer counts one attempt. A request that went unanswered stays in
  the queue (it is re-scored, so it climbs while it waits) and can be called again or
  handed to another agent.
- in_progress and no_answer need an assigned agent. An agent who starts or logs a call
  on an unassigned request claims it (it is assigned to them first, and logged).
- The first in_progress or no_answer is the first contact (time and agent are kept for
  the per-agent metrics). The SLA covers the time to that first contact: a request still
  new or assigned at `sla_due_at` is overdue (the sweep marks it); one first contacted,
  or cancelled, after its due time is marked overdue at that moment.

Who may act: owners, admins and managers (and superusers in the admin) on every request
of their organization. An agent on requests assigned to them, and on unassigned ones only
to claim them (assigning to themselves, or starting or logging a call); never on a
colleague's requests, never assigning to someone else. Viewers never write.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max, OuterRef, Subquery
from django.utils import timezone

from accounts.models import Membership, Organization, Role, User
from callbacks import scoring
from callbacks.models import (
    AWAITING_FIRST_CONTACT,
    WAITING,
    ActivityAction,
    CallbackActivity,
    CallbackRequest,
    CallbackSettings,
    CallbackSource,
    CallbackStatus,
    CallbackUrgency,
)
from callbacks.sla import MAX_DAYS as MAX_SLA_DAYS
from callbacks.sla import BusinessCalendar, DeadlineOutOfReach, add_business_hours
from campaigns.models import Campaign
from config.errors import ConflictError
from config.validation import check_date
from contacts.models import Contact, ContactEvent
from contacts.normalize import InvalidValue, normalize_phone

logger = logging.getLogger(__name__)

S = CallbackStatus
TRANSITIONS: dict[str, frozenset[str]] = {
    S.NEW: frozenset({S.ASSIGNED, S.IN_PROGRESS, S.NO_ANSWER, S.CANCELLED}),
    S.ASSIGNED: frozenset({S.ASSIGNED, S.IN_PROGRESS, S.NO_ANSWER, S.CANCELLED}),
    S.IN_PROGRESS: frozenset({S.COMPLETED, S.NO_ANSWER, S.CANCELLED}),
    S.NO_ANSWER: frozenset({S.ASSIGNED, S.IN_PROGRESS, S.NO_ANSWER, S.CANCELLED}),
    S.COMPLETED: frozenset(),
    S.CANCELLED: frozenset(),
}
SUPERVISOR_ROLES = frozenset({Role.OWNER, Role.ADMIN, Role.MANAGER})
SWEEP_BATCH = 1000
MAX_REASON_LENGTH = 2000


# --- settings --------------------------------------------------------------------------------


def callback_settings_get(*, organization_id) -> CallbackSettings:
    """The organization's callback settings, created with the defaults on first use."""
    settings, _ = CallbackSettings.objects.get_or_create(organization_id=organization_id)
    return settings


def callback_settings_update(*, organization_id, data: dict[str, Any]) -> CallbackSettings:
    """Change callback settings; a bad value is a ValidationError naming the field. Changes
    apply to requests that come in afterwards (existing SLA deadlines stay)."""
    with transaction.atomic():
        settings = callback_settings_get(organization_id=organization_id)
        settings = CallbackSettings.objects.select_for_update().get(pk=settings.pk)
        for field, value in data.items():
            setattr(settings, field, value)
        settings.full_clean(exclude=["organization"])
        settings.save()
    return settings


def business_calendar(*, settings: CallbackSettings, organization: Organization) -> BusinessCalendar:
    return BusinessCalendar.build(
        timezone=organization.timezone,
        working_days=settings.working_days,
        opens_at=settings.opens_at,
        closes_at=settings.closes_at,
        holidays=settings.holidays,
    )


def sla_due(*, settings: CallbackSettings, organization: Organization, priority: str, start: datetime) -> datetime:
    """When a request of this priority that came in at `start` must have had its first contact.
    A calendar that cannot hold the SLA within sla.MAX_DAYS (holidays all year) gives that
    horizon instead, with a warning in the log: the request is still recorded."""
    calendar = business_calendar(settings=settings, organization=organization)
    try:
        return add_business_hours(start, settings.sla_hours(priority), calendar)
    except DeadlineOutOfReach as exc:
        logger.warning("callback SLA out of reach", extra={"organization_id": str(organization.pk), "reason": str(exc)})
        return start + timedelta(days=MAX_SLA_DAYS)


# --- creation ----------------------------------------------------------------------------------


def _last_engagement_at(*, contact_id: int, event_names: list[str]) -> datetime | None:
    if not event_names:
        return None
    return ContactEvent.objects.filter(contact_id=contact_id, name__in=event_names).aggregate(last=Max("occurred_at"))[
        "last"
    ]


def _clean_phone(phone: str | None, contact: Contact) -> str:
    raw = (phone or "").strip() or (contact.phone or "")
    if not raw:
        raise ValidationError({"phone": ["A phone number is required: the contact has none on file."]})
    try:
        return normalize_phone(raw)
    except InvalidValue as exc:
        raise ValidationError({"phone": [str(exc)]}) from None


def _check_campaign(*, organization: Organization, campaign_id) -> None:
    if not Campaign.objects.filter(organization=organization, pk=campaign_id).exists():
        raise ValidationError({"campaign": ["Unknown campaign."]})


def _localize(value: datetime | None, tz: ZoneInfo) -> datetime | None:
    if value is None or timezone.is_aware(value):
        return value
    return value.replace(tzinfo=tz)


def callback_create(
    *,
    organization: Organization,
    contact: Contact,
    phone: str | None = None,
    reason: str = "",
    urgency: str = CallbackUrgency.ANYTIME,
    preferred_start: datetime | None = None,
    preferred_end: datetime | None = None,
    campaign_id=None,
    source: str = CallbackSource.API,
    by: User | None = None,
    verify_campaign: bool = True,
) -> CallbackRequest:
    """Record a callback request with its priority score, category and SLA due time.

    A naive preferred time is read in the contact's time zone (the organization's when the
    contact has none); one outside DATE_MIN_YEAR..DATE_MAX_YEAR is a ValidationError on
    `preferred_time`. A missing phone falls back to the contact's; an invalid one is a
    ValidationError on `phone`. `campaign_id` must name one of the organization's campaigns,
    unless `verify_campaign` is off for an id we signed ourselves (a form link in a campaign
    email outlives the campaign).
    """
    if contact.organization_id != organization.pk or contact.erased_at is not None:
        raise ValidationError({"contact": ["Unknown contact."]})
    phone = _clean_phone(phone, contact)
    reason = (reason or "").strip()
    if len(reason) > MAX_REASON_LENGTH:
        raise ValidationError({"reason": [f"At most {MAX_REASON_LENGTH} characters."]})
    if urgency not in CallbackUrgency.values:
        raise ValidationError({"urgency": [f"One of {', '.join(CallbackUrgency.values)}."]})
    if source not in CallbackSource.values:
        raise ValidationError({"source": [f"One of {', '.join(CallbackSource.values)}."]})
    tz_name = contact.timezone or organization.timezone
    tz = ZoneInfo(tz_name)
    preferred_start, preferred_end = _localize(preferred_start, tz), _localize(preferred_end, tz)
    try:
        check_date(preferred_start)
        check_date(preferred_end)
    except ValidationError as exc:
        raise ValidationError({"preferred_time": exc.messages}) from None
    if preferred_start and preferred_end and preferred_end <= preferred_start:
        raise ValidationError({"preferred_time": ["The end must be after the start."]})
    if campaign_id is not None and verify_campaign:
        _check_campaign(organization=organization, campaign_id=campaign_id)

    settings = callback_settings_get(organization_id=organization.pk)
    created_at = timezone.now()
    score = scoring.compute_score(
        value=(contact.attributes or {}).get(settings.value_attribute),
        value_scale=settings.value_scale,
        last_engagement_at=_last_engagement_at(contact_id=contact.pk, event_names=settings.engagement_events),
        waiting=timedelta(0),
        urgency=urgency,
        now=created_at,
    )
    callback = CallbackRequest(
        organization=organization,
        contact=contact,
        campaign_id=campaign_id,
        source=source,
        phone=phone,
        reason=reason,
        urgency=urgency,
        preferred_start=preferred_start,
        preferred_end=preferred_end,
        timezone=tz_name,
        priority_score=score.score,
        priority=score.priority,
        sla_due_at=sla_due(settings=settings, organization=organization, priority=score.priority, start=created_at),
        created_by=by,
        created_at=created_at,
    )
    with transaction.atomic():
        callback.save(force_insert=True)
        _log(
            callback,
            action=ActivityAction.CREATED,
            actor=by,
            to_status=callback.status,
            data={
                "source": source,
                "score": score.score,
                "priority": score.priority,
                "parts": {
                    "value": round(score.value, 1),
                    "engagement": score.engagement,
                    "waiting": score.waiting,
                    "urgency": score.urgency,
                },
            },
            at=created_at,
        )
    logger.info(
        "callback created",
        extra={"callback_id": str(callback.pk), "priority": callback.priority, "source": source},
    )
    return callback


# --- who may act ---------------------------------------------------------------------------------


def actor_role(*, organization_id, user: User | None) -> str | None:
    """The user's role in the organization; superusers without a membership act as admins."""
    if user is None:
        return None
    role = Membership.objects.filter(organization_id=organization_id, user=user).values_list("role", flat=True).first()
    if role is None and user.is_superuser:
        return Role.ADMIN
    return role


def can_supervise(role: str | None) -> bool:
    return role in SUPERVISOR_ROLES


def _check_may_act(callback: CallbackRequest, *, by: User | None, role: str | None, claims: bool = False) -> None:
    """Supervisors act on anything; an agent on their own requests, and on unassigned ones only
    by claiming them (`claims`: taking it, or starting or logging a call)."""
    if by is None or can_supervise(role):
        return
    if role != Role.AGENT:
        raise PermissionDenied("Your role in this organization does not allow this.")
    if callback.assigned_to_id == by.pk:
        return
    if callback.assigned_to_id is None:
        if claims:
            return
        raise PermissionDenied("Take the callback first.")
    raise PermissionDenied("This callback is assigned to another agent.")


def _agent_membership(*, organization_id, agent_id) -> Membership:
    membership = (
        Membership.objects.select_related("user")
        .filter(organization_id=organization_id, user_id=agent_id, role=Role.AGENT, user__is_active=True)
        .first()
    )
    if membership is None:
        raise ValidationError({"agent": ["Not an agent of this organization."]})
    return membership


# --- state machine ---------------------------------------------------------------------------------


def _check_transition(callback: CallbackRequest, to_status: str) -> None:
    if to_status not in TRANSITIONS.get(callback.status, frozenset()):
        raise ConflictError(f"A {callback.status} callback cannot move to {to_status}.")


def _log(
    callback: CallbackRequest,
    *,
    action: str,
    actor: User | None,
    at: datetime,
    from_status: str = "",
    to_status: str = "",
    agent: User | None = None,
    note: str = "",
    data: dict | None = None,
) -> CallbackActivity:
    return CallbackActivity.objects.create(
        organization_id=callback.organization_id,
        callback=callback,
        actor=actor,
        action=action,
        from_status=from_status,
        to_status=to_status,
        agent=agent,
        note=note,
        data=data or {},
        created_at=at,
    )


def _locked(callback: CallbackRequest) -> CallbackRequest:
    return (
        CallbackRequest.objects.select_for_update(of=("self",))
        .select_related("contact", "assigned_to")
        .get(pk=callback.pk)
    )


def _assign_locked(callback: CallbackRequest, *, agent: User, by: User | None, note: str, at: datetime) -> None:
    """Assign a locked row (the caller checked the transition)."""
    previous = callback.status
    callback.assigned_to = agent
    callback.assigned_at = at
    callback.status = CallbackStatus.ASSIGNED
    callback.save(update_fields=["assigned_to", "assigned_at", "status", "updated_at"])
    _log(
        callback,
        action=ActivityAction.ASSIGNED,
        actor=by,
        from_status=previous,
        to_status=callback.status,
        agent=agent,
        note=note,
        data={"agent_email": agent.email},
        at=at,
    )
    if by is None or by.pk != agent.pk:
        _notify_assignment_on_commit(callback_id=callback.pk, agent_id=agent.pk)


def _notify_assignment_on_commit(*, callback_id, agent_id) -> None:
    from callbacks.tasks import notify_assignment_task

    transaction.on_commit(lambda: notify_assignment_task.delay(agent_id=str(agent_id), callback_ids=[str(callback_id)]))


def callback_assign(*, callback: CallbackRequest, agent_id, by: User | None, note: str = "") -> CallbackRequest:
    """Assign a request to an agent of its organization (which emails the agent, unless they took it
    themselves). Not an agent: ValidationError on `agent`; closed or in progress: ConflictError."""
    role = actor_role(organization_id=callback.organization_id, user=by)
    membership = _agent_membership(organization_id=callback.organization_id, agent_id=agent_id)
    agent = membership.user
    with transaction.atomic():
        callback = _locked(callback)
        _check_may_act(callback, by=by, role=role, claims=True)
        if by is not None and not can_supervise(role) and agent.pk != by.pk:
            raise PermissionDenied("Agents can only assign callbacks to themselves.")
        _check_transition(callback, CallbackStatus.ASSIGNED)
        _assign_locked(callback, agent=agent, by=by, note=note, at=timezone.now())
    return callback


@dataclass(frozen=True)
class BulkAssignResult:
    assigned: int
    skipped: int


def callbacks_assign_bulk(*, callback_ids: Iterable, organization_id, agent_id, by: User | None) -> BulkAssignResult:
    """Assign several requests of one organization to one agent (the admin's bulk action).
    Requests that cannot be assigned in their status are skipped and counted; the agent gets
    one email listing the requests they received."""
    role = actor_role(organization_id=organization_id, user=by)
    if by is not None and not can_supervise(role):
        raise PermissionDenied("Only owners, admins and managers assign in bulk.")
    agent = _agent_membership(organization_id=organization_id, agent_id=agent_id).user
    ids = list(callback_ids)
    at = timezone.now()
    with transaction.atomic():
        rows = list(
            CallbackRequest.objects.select_for_update()
            .filter(organization_id=organization_id, pk__in=ids)
            .order_by("pk")
        )
        movable = [row for row in rows if CallbackStatus.ASSIGNED in TRANSITIONS[row.status]]
        if movable:
            CallbackRequest.objects.filter(pk__in=[row.pk for row in movable]).update(
                assigned_to=agent, assigned_at=at, status=CallbackStatus.ASSIGNED, updated_at=at
            )
            CallbackActivity.objects.bulk_create(
                [
                    CallbackActivity(
                        organization_id=organization_id,
                        callback_id=row.pk,
                        actor=by,
                        action=ActivityAction.ASSIGNED,
                        from_status=row.status,
                        to_status=CallbackStatus.ASSIGNED,
                        agent=agent,
                        data={"agent_email": agent.email, "bulk": True},
                        created_at=at,
                    )
                    for row in movable
                ]
            )
            assigned_ids = [str(row.pk) for row in movable]
            if by is None or by.pk != agent.pk:
                from callbacks.tasks import notify_assignment_task

                transaction.on_commit(
                    lambda: notify_assignment_task.delay(agent_id=str(agent.pk), callback_ids=assigned_ids)
                )
    return BulkAssignResult(assigned=len(movable), skipped=len(ids) - len(movable))


def callback_transition(
    *,
    callback: CallbackRequest,
    to_status: str,
    by: User | None,
    note: str = "",
    resolution: str = "",
) -> CallbackRequest:
    """Move a request to another status along the machine in the module docstring."""
    if to_status not in CallbackStatus.values:
        raise ValidationError({"status": [f"Unknown status {to_status!r}."]})
    if to_status == CallbackStatus.ASSIGNED:
        raise ValidationError({"status": ["Assign an agent with the assign action."]})
    resolution = (resolution or "").strip()
    if to_status == CallbackStatus.COMPLETED and not resolution:
        raise ValidationError({"resolution": ["Say how the request was resolved."]})
    role = actor_role(organization_id=callback.organization_id, user=by)
    at = timezone.now()
    with transaction.atomic():
        callback = _locked(callback)
        calling = to_status in (CallbackStatus.IN_PROGRESS, CallbackStatus.NO_ANSWER)
        _check_transition(callback, to_status)
        _check_may_act(callback, by=by, role=role, claims=calling)
        if calling and callback.assigned_to_id is None:
            if by is None or role != Role.AGENT:
                raise ConflictError("Assign the callback to an agent before calling.")
            _assign_locked(callback, agent=by, by=by, note="", at=at)  # an agent claims it by calling

        previous = callback.status
        fields = ["status", "updated_at"]
        if previous in AWAITING_FIRST_CONTACT and callback.sla_due_at < at and not callback.overdue:
            callback.overdue = True
            fields.append("overdue")
        if calling and callback.first_contact_at is None:
            callback.first_contact_at = at
            callback.first_contact_by_id = callback.assigned_to_id
            fields += ["first_contact_at", "first_contact_by"]
        if to_status == CallbackStatus.NO_ANSWER:
            callback.attempts += 1
            fields.append("attempts")
        if to_status in (CallbackStatus.COMPLETED, CallbackStatus.CANCELLED):
            callback.closed_at = at
            fields.append("closed_at")
        if to_status == CallbackStatus.COMPLETED:
            callback.resolution = resolution
            fields.append("resolution")
        callback.status = to_status
        callback.save(update_fields=fields)
        data: dict[str, Any] = {}
        if to_status == CallbackStatus.NO_ANSWER:
            data["attempts"] = callback.attempts
        if to_status == CallbackStatus.COMPLETED:
            data["resolution"] = resolution
        _log(
            callback,
            action=ActivityAction.STATUS_CHANGED,
            actor=by,
            from_status=previous,
            to_status=to_status,
            note=(note or "").strip(),
            data=data,
            at=at,
        )
    return callback


def callback_complete(
    *, callback: CallbackRequest, resolution: str, by: User | None, note: str = ""
) -> CallbackRequest:
    """Close a request that is in progress with how it was resolved."""
    return callback_transition(
        callback=callback, to_status=CallbackStatus.COMPLETED, by=by, note=note, resolution=resolution
    )


def callback_add_note(*, callback: CallbackRequest, note: str, by: User | None) -> CallbackActivity:
    """Add a note to a request's activity log (no status change)."""
    note = (note or "").strip()
    if not note:
        raise ValidationError({"note": ["This field may not be blank."]})
    role = actor_role(organization_id=callback.organization_id, user=by)
    _check_may_act(callback, by=by, role=role)
    with transaction.atomic():
        return _log(callback, action=ActivityAction.NOTE, actor=by, note=note, at=timezone.now())


# --- the sweep --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepResult:
    marked_overdue: int
    rescored: int
    reprioritized: int


def callbacks_sweep(*, now: datetime | None = None, batch_size: int = SWEEP_BATCH) -> SweepResult:
    """Mark requests whose SLA passed without a first contact overdue (emailing their agents),
    and re-score requests waiting in the queue. Set-based and safe to run concurrently."""
    now = now or timezone.now()
    marked = callbacks_mark_overdue(now=now, batch_size=batch_size)
    rescored, reprioritized = callbacks_rescore(now=now, batch_size=batch_size)
    if marked or reprioritized:
        logger.info(
            "callbacks swept",
            extra={"marked_overdue": marked, "rescored": rescored, "reprioritized": reprioritized},
        )
    return SweepResult(marked_overdue=marked, rescored=rescored, reprioritized=reprioritized)


def callbacks_mark_overdue(*, now: datetime, batch_size: int = SWEEP_BATCH) -> int:
    """Flag breached requests in batches (rows another sweep holds are skipped, not waited for)."""
    from callbacks.tasks import notify_breach_task

    total = 0
    while True:
        with transaction.atomic():
            rows = list(
                CallbackRequest.objects.select_for_update(skip_locked=True)
                .filter(overdue=False, status__in=AWAITING_FIRST_CONTACT, sla_due_at__lte=now)
                .order_by("sla_due_at", "pk")
                .values("pk", "organization_id", "assigned_to_id", "sla_due_at")[:batch_size]
            )
            if not rows:
                return total
            ids = [row["pk"] for row in rows]
            CallbackRequest.objects.filter(pk__in=ids, overdue=False).update(overdue=True, updated_at=now)
            CallbackActivity.objects.bulk_create(
                [
                    CallbackActivity(
                        organization_id=row["organization_id"],
                        callback_id=row["pk"],
                        action=ActivityAction.SLA_BREACHED,
                        data={"sla_due_at": row["sla_due_at"].isoformat()},
                        created_at=now,
                    )
                    for row in rows
                ]
            )
            by_agent: dict[str, list[str]] = defaultdict(list)
            for row in rows:
                if row["assigned_to_id"]:
                    by_agent[str(row["assigned_to_id"])].append(str(row["pk"]))
            for agent_id, callback_ids in by_agent.items():
                transaction.on_commit(
                    lambda a=agent_id, c=callback_ids: notify_breach_task.delay(agent_id=a, callback_ids=c)
                )
        total += len(rows)
        if len(rows) < batch_size:
            return total


def callbacks_rescore(*, now: datetime, batch_size: int = SWEEP_BATCH) -> tuple[int, int]:
    """Recompute the score of every waiting request (waiting time and engagement change), in
    batches per organization. Only changed rows are written; a changed category is logged.
    The SLA due time stays the one promised when the request came in."""
    org_ids = (
        CallbackRequest.objects.filter(status__in=WAITING)
        .order_by("organization_id")
        .values_list("organization_id", flat=True)
        .distinct()
    )
    rescored = reprioritized = 0
    for organization_id in list(org_ids):
        settings = callback_settings_get(organization_id=organization_id)
        last_engagement = ContactEvent.objects.filter(
            contact_id=OuterRef("contact_id"), name__in=settings.engagement_events or [""]
        ).order_by("-occurred_at")
        queryset = (
            CallbackRequest.objects.filter(organization_id=organization_id, status__in=WAITING)
            .annotate(last_engagement_at=Subquery(last_engagement.values("occurred_at")[:1]))
            .order_by("pk")
        )
        last_pk = None
        while True:
            batch = queryset if last_pk is None else queryset.filter(pk__gt=last_pk)
            rows = list(
                batch.values(
                    "pk",
                    "created_at",
                    "urgency",
                    "priority_score",
                    "priority",
                    "contact__attributes",
                    "last_engagement_at",
                )[:batch_size]
            )
            if not rows:
                break
            last_pk = rows[-1]["pk"]
            changed: list[CallbackRequest] = []
            activities: list[CallbackActivity] = []
            for row in rows:
                score = scoring.compute_score(
                    value=(row["contact__attributes"] or {}).get(settings.value_attribute),
                    value_scale=settings.value_scale,
                    last_engagement_at=row["last_engagement_at"],
                    waiting=now - row["created_at"],
                    urgency=row["urgency"],
                    now=now,
                )
                if score.score == row["priority_score"] and score.priority == row["priority"]:
                    continue
                changed.append(CallbackRequest(pk=row["pk"], priority_score=score.score, priority=score.priority))
                if score.priority != row["priority"]:
                    activities.append(
                        CallbackActivity(
                            organization_id=organization_id,
                            callback_id=row["pk"],
                            action=ActivityAction.PRIORITY_CHANGED,
                            data={"from": row["priority"], "to": score.priority, "score": score.score},
                            created_at=now,
                        )
                    )
            with transaction.atomic():
                CallbackRequest.objects.bulk_update(changed, ["priority_score", "priority"])
                CallbackActivity.objects.bulk_create(activities)
            rescored += len(changed)
            reprioritized += len(activities)
            if len(rows) < batch_size:
                break
    return rescored, reprioritized
