"""Drip sequences: configuration, the state machine, enrollment, advancing and stopping.

A sequence's step messages are ordinary `Message` rows of the sequence's own campaign (kind
"sequence"), `step` = `models.message_step(entry, order)`: dispatch, sending, retries, tracking and
stats are the broadcast pipeline's, unchanged.

* Enrollment is one INSERT ... SELECT per call (a trigger over an import chunk of 100k contacts is one
  statement), guarded by the partial unique index "one active enrollment per sequence and contact".
  With `max_new_per_day` new enrollments wait (`started_at` empty) and are admitted in the order they
  came, up to the cap per day in the organization's time zone.
* `enrollments_advance` (beat) takes due enrollments with SKIP LOCKED and, in the same transaction,
  writes their step's messages (INSERT ... SELECT, ON CONFLICT DO NOTHING on the (campaign, step,
  contact) rule) and moves them on: a crash between the two cannot happen, and a repeat writes nothing
  twice. Steps with a condition that does not hold are skipped (or end the enrollment, "exit").
* Stopping: a reply (sequences with stop_on_reply), an unsubscribe, a hard bounce or a complaint stop
  every active enrollment of the contact (contacts.hooks), a marketer stops one by hand, archiving
  stops them all. Pending step messages of stopped enrollments are cancelled.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, DateTimeField, ExpressionWrapper, F, OuterRef, Q, QuerySet, Subquery, Value
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import Organization, User
from campaigns.channels import unavailable_reason as channel_unavailable_reason
from campaigns.models import (
    MAX_STEPS,
    Campaign,
    CampaignKind,
    CampaignStatus,
    Channel,
    DelayUnit,
    Enrollment,
    EnrollmentStatus,
    Message,
    MessageStatus,
    SendingPolicy,
    Sequence,
    SequenceStatus,
    SequenceStep,
    StopReason,
    TriggerType,
    message_step,
)
from config.errors import ConflictError
from contacts import hooks
from contacts.audience import contacts_reachable
from contacts.models import Contact, ContactStatus
from contacts.segments import SegmentRuleError, compile_rules

logger = logging.getLogger(__name__)

M = MessageStatus
E = EnrollmentStatus
ADVANCE_BATCH = 10_000  # due enrollments one transaction takes
ENROLL_MAX_IDS = 10_000  # contact ids one enroll call accepts
# A step whose previous message is not out yet (paused, planned into the next window) waits this long.
PREVIOUS_PENDING_RETRY = timedelta(minutes=15)

DEFAULT_SETTINGS: dict[str, Any] = {
    "stop_on_reply": True,
    "respect_business_hours": False,
    "max_new_per_day": None,
    "allow_reentry": False,
}
CONDITION_TYPES = ("opened_previous", "not_opened_previous", "clicked_previous", "not_clicked_previous")
OTHERWISE = ("skip", "exit")
DELAY_SECONDS = {DelayUnit.MINUTES: 60, DelayUnit.HOURS: 3600, DelayUnit.DAYS: 86400, DelayUnit.WEEKS: 604800}
MAX_DELAY = timedelta(days=3650)
DEFAULT_WINDOW = {"days": [0, 1, 2, 3, 4], "start": "09:00", "end": "17:00"}
# Hook names from tracking and contacts that stop enrollments.
STOP_HOOKS = {
    hooks.MESSAGE_REPLIED: StopReason.REPLIED,
    hooks.UNSUBSCRIBED: StopReason.UNSUBSCRIBED,
    hooks.BOUNCED: StopReason.BOUNCED,
    hooks.COMPLAINED: StopReason.COMPLAINED,
}
# Contact statuses that end an enrollment when a step comes due.
STATUS_STOPS = {
    ContactStatus.UNSUBSCRIBED: StopReason.UNSUBSCRIBED,
    ContactStatus.BOUNCED: StopReason.BOUNCED,
    ContactStatus.COMPLAINED: StopReason.COMPLAINED,
    # The contact said no on the sequence's channel (an SMS STOP, a consent withdrawn).
    "no_consent": StopReason.UNSUBSCRIBED,
}


# --- configuration ---------------------------------------------------------------------------------------


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def settings_clean(value: Any) -> dict[str, Any]:
    """The sequence settings with defaults filled in; raises ValidationError naming `settings.<key>`."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ValidationError({"settings": ["Must be an object."]})
    unknown = sorted(set(value) - set(DEFAULT_SETTINGS))
    if unknown:
        raise ValidationError({"settings": [f"Unknown key(s): {', '.join(unknown)}."]})
    cleaned = {**DEFAULT_SETTINGS, **value}
    for key in ("stop_on_reply", "respect_business_hours", "allow_reentry"):
        if not isinstance(cleaned[key], bool):
            raise ValidationError({f"settings.{key}": ["Must be true or false."]})
    cap = cleaned["max_new_per_day"]
    if cap is not None and (not _whole(cap) or not 1 <= cap <= 10_000_000):
        raise ValidationError({"settings.max_new_per_day": ["Must be a whole number from 1 to 10000000, or null."]})
    return cleaned


def trigger_clean(value: Any) -> tuple[str, str]:
    """`{type, value}` -> (type, value); a tag or event name is required for those types."""
    if not isinstance(value, dict):
        raise ValidationError({"trigger": ["Must be an object with a type."]})
    unknown = sorted(set(value) - {"type", "value"})
    if unknown:
        raise ValidationError({"trigger": [f"Unknown key(s): {', '.join(unknown)}."]})
    kind = value.get("type")
    if kind not in TriggerType.values:
        raise ValidationError({"trigger.type": [f"Must be one of: {', '.join(TriggerType.values)}."]})
    name = value.get("value")
    if kind in (TriggerType.TAG_ADDED, TriggerType.CUSTOM_EVENT):
        if not isinstance(name, str) or not name.strip():
            what = "tag name" if kind == TriggerType.TAG_ADDED else "event name"
            raise ValidationError({"trigger.value": [f"A {what} is required for {kind}."]})
        name = name.strip()
        if len(name) > 200:
            raise ValidationError({"trigger.value": ["At most 200 characters."]})
        if kind == TriggerType.CUSTOM_EVENT and name in hooks.BUILT_IN:
            raise ValidationError({"trigger.value": [f'"{name}" is a built-in event; use its own trigger type.']})
        return kind, name
    if name not in (None, ""):
        raise ValidationError({"trigger.value": [f"A {kind} trigger takes no value."]})
    return kind, ""


def _condition_clean(value: Any, path: str, *, first: bool, organization_id) -> dict[str, Any]:
    if value in (None, {}):
        return {}
    if not isinstance(value, dict):
        raise ValidationError({path: ["Must be an object."]})
    unknown = sorted(set(value) - {"type", "rules", "otherwise"})
    if unknown:
        raise ValidationError({path: [f"Unknown key(s): {', '.join(unknown)}."]})
    otherwise = value.get("otherwise", "skip")
    if otherwise not in OTHERWISE:
        raise ValidationError({f"{path}.otherwise": ['Must be "skip" or "exit".']})
    if ("type" in value) == ("rules" in value):
        raise ValidationError({path: ["Give either a type or rules."]})
    if "type" in value:
        if value["type"] not in CONDITION_TYPES:
            raise ValidationError({f"{path}.type": [f"Must be one of: {', '.join(CONDITION_TYPES)}."]})
        if first:
            raise ValidationError({f"{path}.type": ["The first step has no previous step."]})
        return {"type": value["type"], "otherwise": otherwise}
    try:
        compile_rules(value["rules"], now=timezone.now())
    except SegmentRuleError as exc:
        raise ValidationError({f"{path}.rules": [str(exc)]}) from None
    return {"rules": value["rules"], "otherwise": otherwise}


def _template_id(value: Any):
    import uuid

    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def delay_of(step: SequenceStep) -> timedelta:
    return timedelta(seconds=DELAY_SECONDS[step.delay_unit] * step.delay_value)


def steps_clean(*, organization_id, channel: str, steps: Any) -> list[dict[str, Any]]:
    """Validate the API's steps: orders 1..n without gaps, a positive delay after the first, a template
    of this organization and channel. Returns dicts ready for `SequenceStep` (template as an object)."""
    from templates_app.models import MessageTemplate

    if not isinstance(steps, list):
        raise ValidationError({"steps": ["Must be a list of steps."]})
    if len(steps) > MAX_STEPS:
        raise ValidationError({"steps": [f"At most {MAX_STEPS} steps."]})
    cleaned = []
    template_ids = {}
    for index, step in enumerate(steps):
        path = f"steps.{index}"
        if not isinstance(step, dict):
            raise ValidationError({path: ["Must be an object."]})
        unknown = sorted(set(step) - {"order", "delay", "template", "condition"})
        if unknown:
            raise ValidationError({path: [f"Unknown key(s): {', '.join(unknown)}."]})
        order = step.get("order", index + 1)
        if not _whole(order) or order != index + 1:
            raise ValidationError(
                {f"{path}.order": [f"Steps are numbered 1, 2, 3 ... without gaps: expected {index + 1}."]}
            )
        delay = step.get("delay") if step.get("delay") is not None else {"unit": "days", "value": 0}
        if not isinstance(delay, dict) or set(delay) - {"unit", "value"}:
            raise ValidationError({f"{path}.delay": ["Must be an object {unit, value}."]})
        unit = delay.get("unit", "days")
        if unit not in DelayUnit.values:
            raise ValidationError({f"{path}.delay.unit": [f"Must be one of: {', '.join(DelayUnit.values)}."]})
        amount = delay.get("value")
        if not _whole(amount) or amount < 0:
            raise ValidationError({f"{path}.delay.value": ["Must be a whole number, 0 or more."]})
        if index > 0 and amount == 0:
            raise ValidationError({f"{path}.delay.value": ["A later step needs a delay greater than 0."]})
        if DELAY_SECONDS[unit] * amount > MAX_DELAY.total_seconds():
            raise ValidationError({f"{path}.delay.value": ["At most 10 years."]})
        template = step.get("template")
        if template in (None, ""):
            raise ValidationError({f"{path}.template": ["Every step needs a template."]})
        template_ids[index] = getattr(template, "pk", template)
        cleaned.append(
            {
                "order": order,
                "delay_unit": unit,
                "delay_value": amount,
                "condition": _condition_clean(
                    step.get("condition"), f"{path}.condition", first=index == 0, organization_id=organization_id
                ),
            }
        )
    ids = {index: _template_id(value) for index, value in template_ids.items()}
    found = {
        t.pk: t
        for t in MessageTemplate.objects.filter(organization_id=organization_id, pk__in=[i for i in ids.values() if i])
    }
    for index, pk in ids.items():
        template = found.get(pk)
        if template is None:
            raise ValidationError({f"steps.{index}.template": ["Unknown template."]})
        if template.channel != channel:
            raise ValidationError(
                {f"steps.{index}.template": [f"The template is for {template.channel}; the sequence sends {channel}."]}
            )
        cleaned[index]["template"] = template
    return cleaned


def _reached(sequence: Sequence) -> int:
    """The furthest step an active enrollment has reached (0 when none has)."""
    found = (
        Enrollment.objects.filter(sequence=sequence, status=E.ACTIVE)
        .order_by("-current_step")
        .values_list("current_step", flat=True)
        .first()
    )
    return found or 0


def sequence_save(
    *,
    sequence: Sequence,
    trigger: dict | None = None,
    settings: dict | None = None,
    steps: list | None = None,
    by: User | None = None,
) -> Sequence:
    """Create or change a sequence (and its steps when `steps` is given); validates everything first.

    An archived sequence cannot change. Once enrollments are under way, steps they have reached can
    be edited (delay, template, condition) but not removed; steps can always be added after them."""
    if sequence.status == SequenceStatus.ARCHIVED:
        raise ConflictError("An archived sequence cannot be changed.")
    if not (sequence.name or "").strip():
        raise ValidationError({"name": ["A name is required."]})
    if sequence.channel not in Channel.values:
        raise ValidationError({"channel": [f"Must be one of: {', '.join(Channel.values)}."]})
    if trigger is not None:
        sequence.trigger_type, sequence.trigger_value = trigger_clean(trigger)
    sequence.settings = settings_clean(settings if settings is not None else sequence.settings)
    creating = sequence._state.adding
    if not creating and steps is None and sequence.steps.exclude(template__channel=sequence.channel).exists():
        raise ValidationError({"channel": ["The steps' templates are for another channel."]})
    cleaned = None
    if steps is not None:
        cleaned = steps_clean(organization_id=sequence.organization_id, channel=sequence.channel, steps=steps)
        if not creating:
            reached = _reached(sequence)
            if len(cleaned) < reached:
                raise ValidationError(
                    {
                        "steps": [
                            f"Active enrollments have reached step {reached}: steps 1 to {reached} cannot be removed "
                            "(add steps after them, or archive the sequence)."
                        ]
                    }
                )
    with transaction.atomic():
        if creating:
            sequence.campaign = Campaign.objects.create(
                organization_id=sequence.organization_id,
                name=sequence.name[:200],
                kind=CampaignKind.SEQUENCE,
                channel=sequence.channel,
                created_by=by,
            )
            sequence.created_by = by
        else:
            Campaign.objects.filter(pk=sequence.campaign_id).update(name=sequence.name[:200], channel=sequence.channel)
        sequence.save()
        if cleaned is not None:
            _replace_steps(sequence, cleaned)
    return sequence


def _replace_steps(sequence: Sequence, cleaned: list[dict[str, Any]]) -> None:
    from templates_app.services import template_snapshot

    live = sequence.status in (SequenceStatus.ACTIVE, SequenceStatus.PAUSED)
    SequenceStep.objects.filter(sequence=sequence).delete()
    SequenceStep.objects.bulk_create(
        [
            SequenceStep(
                sequence=sequence,
                # A live sequence sends the edited template from its next step on.
                template_version=template_snapshot(template=step["template"]) if live else None,
                **step,
            )
            for step in cleaned
        ]
    )


def sequence_delete(*, sequence: Sequence) -> None:
    if sequence.status != SequenceStatus.DRAFT:
        raise ConflictError(f"Only a draft sequence can be deleted; this one is {sequence.status}. Archive it instead.")
    with transaction.atomic():
        campaign_id = sequence.campaign_id
        sequence.delete()
        Campaign.objects.filter(pk=campaign_id, kind=CampaignKind.SEQUENCE).delete()


def _locked(sequence: Sequence) -> Sequence:
    return Sequence.objects.select_for_update().get(pk=sequence.pk)


CAMPAIGN_STATUS = {
    SequenceStatus.DRAFT: CampaignStatus.DRAFT,
    SequenceStatus.ACTIVE: CampaignStatus.RUNNING,
    SequenceStatus.PAUSED: CampaignStatus.PAUSED,
    SequenceStatus.ARCHIVED: CampaignStatus.CANCELLED,
}


def _set_status(sequence: Sequence, to: str, *, by: User | None, action: str, **after: Any) -> None:
    before = sequence.status
    sequence.status = to
    fields = ["status", "updated_at"]
    if to == SequenceStatus.ACTIVE and not sequence.activated_at:
        sequence.activated_at = timezone.now()
        fields.append("activated_at")
    sequence.save(update_fields=fields)
    # The sequence's campaign follows: dispatch sends only for a running campaign.
    values: dict[str, Any] = {"status": CAMPAIGN_STATUS[to], "status_reason": ""}
    if to == SequenceStatus.ACTIVE:
        values["launched_at"] = sequence.activated_at
    Campaign.objects.filter(pk=sequence.campaign_id).update(**values)
    audit_record(
        organization=sequence.organization_id,
        by=by,
        action=action,
        obj=sequence,
        changes={"before": {"status": before}, "after": {"status": to, **after}},
    )


def sequence_activate(*, sequence: Sequence, by: User | None = None) -> Sequence:
    """draft or paused -> active: keeps each step's template version and starts advancing."""
    from templates_app.services import template_snapshot

    with transaction.atomic():
        sequence = _locked(sequence)
        if sequence.status not in (SequenceStatus.DRAFT, SequenceStatus.PAUSED):
            raise ConflictError(f"Only a draft or paused sequence can be activated; this one is {sequence.status}.")
        unavailable = channel_unavailable_reason(sequence.channel)
        if unavailable:
            raise ConflictError(unavailable)
        steps = list(sequence.steps.select_related("template"))
        if not steps:
            raise ValidationError({"steps": ["A sequence needs at least one step to be activated."]})
        for step in steps:
            if step.template.channel != sequence.channel:
                raise ValidationError({f"steps.{step.order - 1}.template": ["The template is for another channel."]})
            try:
                step.template_version = template_snapshot(template=step.template)
            except ValidationError as exc:
                raise ValidationError({f"steps.{step.order - 1}.template": exc.messages}) from None
        SequenceStep.objects.bulk_update(steps, ["template_version"])
        _set_status(sequence, SequenceStatus.ACTIVE, by=by, action="sequence.activated")
    return sequence


def sequence_pause(*, sequence: Sequence, by: User | None = None) -> Sequence:
    """active -> paused: no step is written or sent until it is activated again (queued ones wait)."""
    with transaction.atomic():
        sequence = _locked(sequence)
        if sequence.status != SequenceStatus.ACTIVE:
            raise ConflictError(f"Only an active sequence can be paused; this one is {sequence.status}.")
        _set_status(sequence, SequenceStatus.PAUSED, by=by, action="sequence.paused")
    return sequence


def sequence_archive(*, sequence: Sequence, by: User | None = None) -> Sequence:
    """Any -> archived: every active enrollment stops ("archived"), step messages not yet sent are cancelled."""
    with transaction.atomic():
        sequence = _locked(sequence)
        if sequence.status == SequenceStatus.ARCHIVED:
            raise ConflictError("The sequence is already archived.")
        stopped = _stop(Enrollment.objects.filter(sequence=sequence, status=E.ACTIVE), reason=StopReason.ARCHIVED)
        _set_status(sequence, SequenceStatus.ARCHIVED, by=by, action="sequence.archived", enrollments_stopped=stopped)
    return sequence


# --- sending policy: business hours and the frequency cap -------------------------------------------------


def sending_policy(organization_id) -> SendingPolicy:
    """The organization's policy (an unsaved default when it has none)."""
    return SendingPolicy.objects.filter(organization_id=organization_id).first() or SendingPolicy(
        organization_id=organization_id
    )


def sending_policy_clean(*, window: Any, holidays: Any, frequency_cap: Any, timezone_name: str) -> dict[str, Any]:
    """Validate a policy through the planner's own parsing; raises ValidationError naming the field."""
    from campaigns import planner

    if window is not None and not isinstance(window, dict):
        raise ValidationError({"window": ["Must be an object {days, start, end}, or null for the default hours."]})
    if holidays is not None and not isinstance(holidays, list):
        raise ValidationError({"holidays": ['Must be a list of dates like "2026-12-25".']})
    try:
        settings = planner.PlanSettings.from_api(
            schedule={"window": window or None, "holidays": holidays or []},
            throttle=None,
            sending_domains=["localhost"],
            default_timezone=timezone_name,
            now=timezone.now(),
        )
    except planner.PlanSettingsError as exc:
        field_name = exc.field.replace("schedule.", "")
        raise ValidationError({field_name: [exc.message]}) from None
    cap = frequency_cap or {}
    if not isinstance(cap, dict):
        raise ValidationError({"frequency_cap": ["Must be an object {per_day, per_week}."]})
    unknown = sorted(set(cap) - {"per_day", "per_week"})
    if unknown:
        raise ValidationError({"frequency_cap": [f"Unknown key(s): {', '.join(unknown)}."]})
    for key in ("per_day", "per_week"):
        value = cap.get(key)
        if value is not None and (not _whole(value) or not 1 <= value <= 1000):
            raise ValidationError({f"frequency_cap.{key}": ["Must be a whole number from 1 to 1000, or null."]})
    days = sorted(day.isoformat() for day in settings.holidays)  # stored as the planner read them
    return {"window": window or {}, "holidays": days, "frequency_cap": cap}


def sending_policy_save(*, organization: Organization, by: User | None = None, **values: Any) -> SendingPolicy:
    policy = sending_policy(organization.pk)
    merged = {
        "window": values.get("window", policy.window),
        "holidays": values.get("holidays", policy.holidays),
        "frequency_cap": values.get("frequency_cap", policy.frequency_cap),
    }
    cleaned = sending_policy_clean(timezone_name=organization.timezone, **merged)
    before = {key: getattr(policy, key) for key in cleaned}
    for key, value in cleaned.items():
        setattr(policy, key, value)
    with transaction.atomic():
        policy.save()
        audit_record(
            organization=organization.pk,
            by=by,
            action="sending_policy.changed",
            obj=policy,
            changes={"before": before, "after": cleaned},
        )
    return policy


def frequency_release(times: Iterable[datetime], planned: datetime, *, per_day: int | None, per_week: int | None):
    """The earliest moment at or after `planned` when one more message keeps the contact within the cap:
    fewer than `per_day` messages in the 24 hours before it and fewer than `per_week` in the 7 days
    before it (`times`: the contact's other messages, sent or scheduled). `planned` when not capped."""
    ordered = sorted(times)
    limits = [(limit, span) for limit, span in ((per_day, timedelta(days=1)), (per_week, timedelta(days=7))) if limit]
    candidate = planned
    while True:
        moved = False
        for limit, span in limits:
            inside = [t for t in ordered if candidate - span < t <= candidate]
            if len(inside) >= limit:
                # Wait until enough of the oldest ones leave the window.
                candidate = inside[len(inside) - limit] + span
                moved = True
        if not moved:
            return candidate


# --- enrollment --------------------------------------------------------------------------------------------


@dataclass
class EnrollResult:
    enrolled: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


def _sql_value(value):
    if connection.vendor == "sqlite":
        if hasattr(value, "hex") and not isinstance(value, bytes | str | int):
            return value.hex
        if isinstance(value, datetime):
            return connection.ops.adapt_datetimefield_value(value)
    return value


def _enroll_sql(sequence: Sequence, contacts_sql: str, params: list, *, now: datetime, started: bool, first_at):
    """One INSERT ... SELECT of active enrollments for the contacts the inner query returns."""
    reentry = sequence.settings.get("allow_reentry")
    already = "AND p.status = 'active'" if reentry else ""
    # Only fixed SQL and the ORM's own compiled query are interpolated; every value is a parameter.
    sql = f"""
        INSERT INTO campaigns_enrollment
            (organization_id, sequence_id, contact_id, status, stop_reason, entry, current_step,
             next_message_at, entered_at, started_at, exited_at, note)
        SELECT %s, %s, c.id, 'active', '',
               (SELECT COUNT(*) FROM campaigns_enrollment p WHERE p.sequence_id = %s AND p.contact_id = c.id) + 1,
               0, %s, %s, %s, NULL, ''
        FROM ({contacts_sql}) c
        WHERE NOT EXISTS (
            SELECT 1 FROM campaigns_enrollment p WHERE p.sequence_id = %s AND p.contact_id = c.id {already}
        )
        ON CONFLICT DO NOTHING
    """  # noqa: S608
    seq = _sql_value(sequence.pk)
    values = [
        _sql_value(sequence.organization_id),
        seq,
        seq,
        _sql_value(first_at if started else None),
        _sql_value(now),
        _sql_value(now if started else None),
        *params,
        seq,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        return max(cursor.rowcount, 0)


def enroll(*, sequence: Sequence, contacts: QuerySet, now: datetime | None = None) -> int:
    """Enroll the reachable contacts of `contacts` (a Contact queryset of the sequence's organization)
    in one statement; those already in it (or, without re-entry, ever in it) are left out. Returns how
    many were enrolled. Under `max_new_per_day` they wait for admission."""
    now = now or timezone.now()
    reachable = contacts_reachable(
        organization_id=sequence.organization_id, contacts=contacts, channel=sequence.channel
    )
    sql, params = reachable.queryset.values("id").query.sql_with_params()
    first = sequence.steps.order_by("order").first()
    if first is None:
        return 0
    capped = sequence.settings.get("max_new_per_day") is not None
    enrolled = _enroll_sql(sequence, sql, list(params), now=now, started=not capped, first_at=now + delay_of(first))
    if capped and enrolled:
        admit_waiting(sequence=sequence, now=now)
    return enrolled


def sequence_enroll(*, sequence: Sequence, contact_ids: list, by: User | None = None) -> EnrollResult:
    """The API's and the admin's enroll: the given contacts (ids of this organization; others raise
    Contact.DoesNotExist), with a count of those left out by reason."""
    if sequence.status != SequenceStatus.ACTIVE:
        raise ConflictError(f"Contacts can be enrolled only in an active sequence; this one is {sequence.status}.")
    if sequence.trigger_type not in (TriggerType.MANUAL, TriggerType.API):
        raise ConflictError(f"This sequence enrolls contacts on its trigger ({sequence.trigger_type}), not by hand.")
    ids = list(dict.fromkeys(contact_ids))
    if len(ids) > ENROLL_MAX_IDS:
        raise ValidationError({"contact_ids": [f"At most {ENROLL_MAX_IDS} contacts per call."]})
    contacts = Contact.objects.active().filter(organization_id=sequence.organization_id, pk__in=ids)
    if contacts.count() != len(ids):
        raise Contact.DoesNotExist("Unknown contact.")
    reachable = contacts_reachable(
        organization_id=sequence.organization_id, contacts=contacts, channel=sequence.channel
    )
    skipped = reachable.excluded()
    previous = Enrollment.objects.filter(sequence=sequence, contact_id__in=ids)
    active = set(previous.filter(status=E.ACTIVE).values_list("contact_id", flat=True))
    done = set() if sequence.settings.get("allow_reentry") else set(previous.values_list("contact_id", flat=True))
    with transaction.atomic():
        enrolled = enroll(sequence=sequence, contacts=contacts)
    if active:
        skipped["already_enrolled"] = len(active)
    if done - active:
        skipped["enrolled_before"] = len(done - active)
    audit_record(
        organization=sequence.organization_id,
        by=by,
        action="sequence.enrolled",
        obj=sequence,
        changes={"after": {"enrolled": enrolled, "skipped": skipped}},
    )
    return EnrollResult(enrolled=enrolled, skipped=skipped)


def _local_day_start(moment: datetime, zone_name: str) -> datetime:
    zone = ZoneInfo(zone_name)
    local = moment.astimezone(zone)
    return datetime.combine(local.date(), time(0), tzinfo=zone)


def admit_waiting(*, sequence: Sequence, now: datetime | None = None) -> int:
    """Start waiting enrollments, oldest first, up to `max_new_per_day` started today (the organization's day)."""
    cap = sequence.settings.get("max_new_per_day")
    if cap is None:
        return 0
    now = now or timezone.now()
    first = sequence.steps.order_by("order").first()
    if first is None:
        return 0
    zone_name = Organization.objects.values_list("timezone", flat=True).get(pk=sequence.organization_id)
    today = _local_day_start(now, zone_name)
    with transaction.atomic():
        Sequence.objects.select_for_update().filter(pk=sequence.pk).first()  # one admitter per sequence at a time
        started = Enrollment.objects.filter(sequence=sequence, started_at__gte=today).count()
        room = cap - started
        if room <= 0:
            return 0
        waiting = (
            Enrollment.objects.filter(sequence=sequence, status=E.ACTIVE, started_at__isnull=True)
            .order_by("entered_at", "id")
            .values("id")[:room]
        )
        return Enrollment.objects.filter(id__in=list(waiting.values_list("id", flat=True))).update(
            started_at=now, next_message_at=now + delay_of(first)
        )


def on_contact_event(*, organization_id, name: str, contacts, properties: dict, occurred_at=None, **_kwargs) -> None:
    """contacts.hooks receiver: start sequences on their triggers, stop enrollments on opt-outs and replies."""
    if name in STOP_HOOKS:
        enrollments_stop_for_contacts(organization_id=organization_id, contacts=contacts, reason=STOP_HOOKS[name])
        return
    if name == hooks.CONTACT_CREATED:
        match = Q(trigger_type=TriggerType.CONTACT_CREATED)
    elif name == hooks.TAG_ADDED:
        tag = str(properties.get("tag") or "")
        match = Q(trigger_type=TriggerType.TAG_ADDED, trigger_value__iexact=tag)
    else:
        match = Q(trigger_type=TriggerType.CUSTOM_EVENT, trigger_value=name)
    for sequence in Sequence.objects.filter(match, organization_id=organization_id, status=SequenceStatus.ACTIVE):
        enroll(sequence=sequence, contacts=contacts, now=occurred_at if occurred_at else None)


# --- stopping ---------------------------------------------------------------------------------------------------


def _stop(enrollments: QuerySet, *, reason: str, now: datetime | None = None) -> int:
    """Stop the given active enrollments and cancel their step messages not yet handed to a provider."""
    now = now or timezone.now()
    rows = list(enrollments.filter(status=E.ACTIVE).values_list("id", "contact_id", "sequence__campaign_id"))
    if not rows:
        return 0
    stopped = Enrollment.objects.filter(id__in=[row[0] for row in rows], status=E.ACTIVE).update(
        status=E.STOPPED, stop_reason=reason, exited_at=now, next_message_at=None
    )
    by_campaign: dict[Any, list[int]] = defaultdict(list)
    for _, contact_id, campaign_id in rows:
        by_campaign[campaign_id].append(contact_id)
    for campaign_id, contact_ids in by_campaign.items():
        Message.objects.filter(
            campaign_id=campaign_id, contact_id__in=contact_ids, status__in=[M.PLANNED, M.QUEUED]
        ).update(status=M.CANCELLED, lease_until=None, last_error=f"Enrollment stopped: {reason}.")
    return stopped


def enrollments_stop_for_contacts(*, organization_id, contacts, reason: str) -> int:
    """Stop the contacts' active enrollments: every one for an opt-out, a bounce or a complaint; for a
    reply only in sequences that stop on reply."""
    enrollments = Enrollment.objects.filter(
        organization_id=organization_id, contact_id__in=contacts.values("pk"), status=E.ACTIVE
    )
    if reason == StopReason.REPLIED:
        enrollments = enrollments.exclude(sequence__settings__stop_on_reply=False)
    return _stop(enrollments, reason=reason)


def enrollment_stop(*, enrollment: Enrollment, by: User | None = None) -> Enrollment:
    """A marketer stops one enrollment (409 when it is not active)."""
    with transaction.atomic():
        if not _stop(Enrollment.objects.filter(pk=enrollment.pk), reason=StopReason.MANUAL):
            raise ConflictError(f"Only an active enrollment can be stopped; this one is {enrollment.status}.")
        audit_record(
            organization=enrollment.organization_id,
            by=by,
            action="enrollment.stopped",
            obj=enrollment,
            changes={"after": {"status": E.STOPPED, "stop_reason": StopReason.MANUAL}},
        )
    enrollment.refresh_from_db()
    return enrollment


# --- advancing ------------------------------------------------------------------------------------------------


@dataclass
class AdvanceResult:
    due: int = 0
    written: int = 0
    skipped: int = 0
    completed: int = 0
    stopped: int = 0
    waiting: int = 0  # previous step not out yet: looked at again later
    admitted: int = 0


@dataclass
class _Due:
    id: int
    contact_id: int
    entry: int
    current_step: int


def enrollments_advance(*, now: datetime | None = None, limit: int = ADVANCE_BATCH) -> AdvanceResult:
    """Write the due step of up to `limit` enrollments and move them on (beat runs this every few
    seconds). Safe to run in several workers at once (SKIP LOCKED) and to run again after a crash (one
    transaction; the (campaign, step, contact) rule)."""
    now = now or timezone.now()
    result = AdvanceResult()
    for sequence in Sequence.objects.filter(status=SequenceStatus.ACTIVE, settings__max_new_per_day__isnull=False):
        result.admitted += admit_waiting(sequence=sequence, now=now)
    active = list(Sequence.objects.filter(status=SequenceStatus.ACTIVE).values_list("pk", flat=True))
    if not active:
        return result
    with transaction.atomic():
        rows = list(
            Enrollment.objects.select_for_update(skip_locked=True)
            .filter(status=E.ACTIVE, next_message_at__lte=now, sequence_id__in=active)
            .order_by("next_message_at")
            .values_list("id", "sequence_id", "contact_id", "entry", "current_step")[:limit]
        )
        result.due = len(rows)
        groups: dict[tuple, list[_Due]] = defaultdict(list)
        for pk, sequence_id, contact_id, entry, current in rows:
            groups[(sequence_id, current + 1)].append(_Due(pk, contact_id, entry, current))
        sequences = Sequence.objects.select_related("campaign", "organization").in_bulk({key[0] for key in groups})
        steps: dict[Any, dict[int, SequenceStep]] = defaultdict(dict)
        for step in SequenceStep.objects.filter(sequence_id__in=list(sequences)):
            steps[step.sequence_id][step.order] = step
        for (sequence_id, order), due in groups.items():
            _advance_group(sequences[sequence_id], steps[sequence_id], order, due, now, result)
    return result


def _advance_group(sequence: Sequence, steps: dict[int, SequenceStep], order: int, due: list[_Due], now, result):
    step = steps.get(order)
    if step is None:  # steps were removed after these enrollments' last one: they are done
        result.completed += _finish(due, now)
        return
    # 1. The condition on the previous step (or an attribute rule).
    passing, failing, waiting = _condition(sequence, step, due)
    if waiting:
        result.waiting += Enrollment.objects.filter(id__in=[d.id for d in waiting]).update(
            next_message_at=now + PREVIOUS_PENDING_RETRY
        )
    if failing:
        if step.condition.get("otherwise") == "exit":
            result.stopped += _stop(
                Enrollment.objects.filter(id__in=[d.id for d in failing]), reason=StopReason.CONDITION
            )
        else:
            result.skipped += len(failing)
            _move_on(sequence, steps, order, failing, base=None, now=now, result=result)
    if not passing:
        return
    # 2. Contacts who may no longer be messaged: an opt-out ends the enrollment; no address or a
    # suppression skips the step.
    by_contact = {d.contact_id: d for d in passing}
    reachable = contacts_reachable(
        organization_id=sequence.organization_id,
        contacts=list(by_contact),
        channel=sequence.channel,
    )
    # Every candidate with why it may not be messaged (None: it may), in one query.
    candidates = dict(reachable.candidates.annotate(exclusion=reachable.reason).values_list("pk", "exclusion"))
    excluded = {pk: reason for pk, reason in candidates.items() if reason is not None}
    stops: dict[str, list[int]] = defaultdict(list)
    unsendable = []
    for contact_id, reason in excluded.items():
        if reason in STATUS_STOPS:
            stops[STATUS_STOPS[reason]].append(by_contact[contact_id].id)
        else:
            unsendable.append(by_contact[contact_id])
    # An erased contact is no candidate at all: erasure is the strongest opt-out.
    stops[StopReason.UNSUBSCRIBED] += [d.id for contact_id, d in by_contact.items() if contact_id not in candidates]
    for reason, ids in stops.items():
        result.stopped += _stop(Enrollment.objects.filter(id__in=ids), reason=reason)
    gone = {i for ids in stops.values() for i in ids}
    if unsendable:
        result.skipped += len(unsendable)
        _move_on(sequence, steps, order, unsendable, base=None, now=now, result=result)
    skip = {d.id for d in unsendable} | gone
    sendable = [d for d in passing if d.id not in skip]
    if not sendable:
        return
    # 3. The messages, then the enrollments' next step from the messages' planned times.
    result.written += _write_messages(sequence, order, sendable, now)
    _move_on(sequence, steps, order, sendable, base="message", now=now, result=result)


def _condition(sequence: Sequence, step: SequenceStep, due: list[_Due]):
    """Split `due` into (passing, failing, waiting for the previous step's message to go out)."""
    condition = step.condition or {}
    if not condition:
        return due, [], []
    if "rules" in condition:
        try:
            rule = compile_rules(condition["rules"], now=timezone.now())
        except SegmentRuleError:
            return [], due, []  # rules that no longer compile (a deleted attribute type): the step does not apply
        matching = set(
            Contact.objects.filter(organization_id=sequence.organization_id, pk__in=[d.contact_id for d in due])
            .filter(rule)
            .values_list("pk", flat=True)
        )
        return [d for d in due if d.contact_id in matching], [d for d in due if d.contact_id not in matching], []
    # The previous step's message of this entry (none when that step was skipped: "not opened").
    previous = {}
    by_step: dict[int, list[_Due]] = defaultdict(list)
    for d in due:
        by_step[message_step(d.entry, step.order - 1)].append(d)
    for number, members in by_step.items():
        previous.update(
            {
                (number, contact_id): status
                for contact_id, status in Message.objects.filter(
                    campaign_id=sequence.campaign_id, step=number, contact_id__in=[d.contact_id for d in members]
                ).values_list("contact_id", "status")
            }
        )
    wanted = {"opened_previous": True, "clicked_previous": True}.get(condition["type"], False)
    statuses = (M.OPENED, M.CLICKED) if "opened" in condition["type"] else (M.CLICKED,)
    passing, failing, waiting = [], [], []
    for d in due:
        status = previous.get((message_step(d.entry, step.order - 1), d.contact_id))
        if status is not None and status < M.SENT and status not in (M.FAILED, M.UNKNOWN):
            waiting.append(d)
            continue
        happened = status in statuses
        (passing if happened == wanted else failing).append(d)
    return passing, failing, waiting


def _move_on(sequence, steps: dict[int, SequenceStep], order: int, due: list[_Due], *, base, now, result) -> None:
    """Record step `order` as reached; the next one is due its delay after this step's message went out
    (`base="message"`: the message's planned time) or after now (a skipped step). The last step completes."""
    ids = [d.id for d in due]
    following = steps.get(order + 1)
    if following is None:
        Enrollment.objects.filter(id__in=ids).update(
            current_step=order, status=E.COMPLETED, exited_at=now, next_message_at=None
        )
        result.completed += len(ids)
        return
    delay = delay_of(following)
    if base == "message":
        by_entry: dict[int, list[int]] = defaultdict(list)
        for d in due:
            by_entry[d.entry].append(d.id)
        for entry, entry_ids in by_entry.items():
            if connection.vendor == "postgresql":
                # One array parameter and a correlated lookup on the (campaign, step, contact) index.
                with connection.cursor() as cursor:
                    cursor.execute(
                        """
                        UPDATE campaigns_enrollment e SET current_step = %s,
                            next_message_at = (
                                SELECT m.scheduled_at FROM campaigns_message m
                                WHERE m.campaign_id = %s AND m.step = %s AND m.contact_id = e.contact_id
                            ) + %s
                        WHERE e.id = ANY(%s)
                        """,
                        [order, sequence.campaign_id, message_step(entry, order), delay, entry_ids],
                    )
                continue
            planned = Message.objects.filter(
                campaign_id=sequence.campaign_id, step=message_step(entry, order), contact_id=OuterRef("contact_id")
            ).values("scheduled_at")[:1]
            Enrollment.objects.filter(id__in=entry_ids).update(
                current_step=order,
                next_message_at=ExpressionWrapper(
                    Subquery(planned, output_field=DateTimeField()) + Value(delay), output_field=DateTimeField()
                ),
            )
    else:
        Enrollment.objects.filter(id__in=ids).update(current_step=order, next_message_at=now + delay)


def _finish(due: list[_Due], now) -> int:
    return Enrollment.objects.filter(id__in=[d.id for d in due]).update(
        status=E.COMPLETED, exited_at=now, next_message_at=None
    )


def _id_match(column: str, ids: list[int]) -> str:
    """`column` among `ids`: one array parameter on PostgreSQL (10,000 placeholders cost more to bind
    than the statement takes to run), an IN list elsewhere."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)"
    return f"{column} IN ({', '.join(['%s'] * len(ids))})"


def _id_params(ids: list[int]) -> list:
    return [list(ids)] if connection.vendor == "postgresql" else list(ids)


def _write_messages(sequence: Sequence, order: int, due: list[_Due], now: datetime) -> int:
    """INSERT ... SELECT the step's messages (queued at once, or planned into business hours), with the
    frequency cap applied. Returns how many rows were written (a repeat writes none)."""
    policy = sending_policy(sequence.organization_id)
    business = bool(sequence.settings.get("respect_business_hours"))
    address = "email" if sequence.channel == Channel.EMAIL else "phone"
    written = 0
    by_entry: dict[int, list[int]] = defaultdict(list)
    for d in due:
        by_entry[d.entry].append(d.contact_id)
    for entry, contact_ids in by_entry.items():
        # `address` is a column name chosen above; every value is a parameter.
        sql = f"""
            INSERT INTO campaigns_message
                (organization_id, campaign_id, step, contact_id, to_address, status, scheduled_at,
                 sending_domain, attempts, last_error, created_at)
            SELECT c.organization_id, %s, %s, c.id, c.{address}, %s, %s, '', 0, '', %s
            FROM contacts_contact c
            WHERE c.organization_id = %s AND {_id_match("c.id", contact_ids)}
            ON CONFLICT DO NOTHING
        """  # noqa: S608
        status = M.PLANNED if business else M.QUEUED
        params = [
            _sql_value(sequence.campaign_id),
            message_step(entry, order),
            status,
            _sql_value(None if business else now),
            _sql_value(now),
            _sql_value(sequence.organization_id),
            *_id_params(contact_ids),
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            written += max(cursor.rowcount, 0)
        step_messages = Message.objects.filter(
            campaign_id=sequence.campaign_id, step=message_step(entry, order), contact_id__in=contact_ids
        )
        if business:
            _plan_business_hours(sequence, policy, step_messages, now)
        _apply_frequency_cap(sequence, policy, step_messages, now)
    return written


def _plan_business_hours(sequence: Sequence, policy: SendingPolicy, messages: QuerySet, now: datetime) -> None:
    """Plan the step's new messages into the organization's business hours through the broadcast planner."""
    from campaigns import planner, services

    settings = planner.PlanSettings.from_api(
        schedule={"window": policy.window or DEFAULT_WINDOW, "holidays": policy.holidays or []},
        throttle=None,
        sending_domains=["-"],
        default_timezone=sequence.organization.timezone,
        now=now,
    )
    recipients = (
        planner.Recipient(key=pk, domain="", timezone="")
        for pk in messages.filter(status=M.PLANNED).order_by("id").values_list("pk", flat=True)
    )
    slots = [
        planner.Slot(key=slot.key, scheduled_at=slot.scheduled_at, sending_domain="")
        for slot in planner.plan(settings, recipients)
    ]
    for start in range(0, len(slots), services.PLAN_BATCH):
        services._write_slots(slots[start : start + services.PLAN_BATCH])


def _apply_frequency_cap(sequence: Sequence, policy: SendingPolicy, messages: QuerySet, now: datetime) -> None:
    """Delay (never drop) step messages that would put their contact over the organization's cap."""
    cap = policy.frequency_cap or {}
    per_day, per_week = cap.get("per_day"), cap.get("per_week")
    if not per_day and not per_week:
        return
    mine = dict(messages.filter(status=M.QUEUED).values_list("contact_id", "id"))
    if not mine:
        return
    counted = Message.objects.filter(
        organization_id=sequence.organization_id, contact_id__in=list(mine), scheduled_at__gte=now - timedelta(days=7)
    ).exclude(status__in=[M.FAILED, M.CANCELLED, M.SKIPPED])
    lowest = min(limit for limit in (per_day, per_week) if limit)
    crowded = [
        row["contact_id"]
        for row in counted.exclude(id__in=list(mine.values())).values("contact_id").annotate(n=Count("id"))
        if row["n"] >= lowest
    ]
    if not crowded:
        return
    times: dict[int, list[datetime]] = defaultdict(list)
    planned: dict[int, datetime] = {}
    for message_id, contact_id, sent_at, scheduled_at in counted.filter(contact_id__in=crowded).values_list(
        "id", "contact_id", "sent_at", "scheduled_at"
    ):
        if message_id == mine.get(contact_id):
            planned[contact_id] = scheduled_at
        else:
            times[contact_id].append(sent_at or scheduled_at)
    for contact_id in crowded:
        start = planned.get(contact_id) or now
        release = frequency_release(times[contact_id], start, per_day=per_day, per_week=per_week)
        if release > start:
            limits = ", ".join(
                text for text, value in ((f"{per_day} a day", per_day), (f"{per_week} a week", per_week)) if value
            )
            Message.objects.filter(pk=mine[contact_id], status=M.QUEUED).update(
                scheduled_at=release,
                last_error=f"Delayed by the frequency cap ({limits}) until {release.isoformat(timespec='minutes')}.",
            )


# --- reads ------------------------------------------------------------------------------------------------------


def sequence_stats(*, sequence: Sequence) -> list[dict[str, Any]]:
    """Per step: messages sent, opened, clicked, replied, and enrollments stopped at that step."""
    from campaigns.models import STEP_SPAN
    from campaigns.selectors import REACHED
    from tracking.selectors import replied_message_ids

    orders = list(sequence.steps.order_by("order").values_list("order", flat=True))
    figures = {
        order: {"step": order, "sent": 0, "opened": 0, "clicked": 0, "replied": 0, "stopped": 0} for order in orders
    }
    messages = Message.objects.filter(campaign_id=sequence.campaign_id)
    step_of = F("step") % STEP_SPAN
    rows = (
        messages.annotate(order=step_of)
        .values("order")
        .annotate(
            sent=Count("id", filter=REACHED["sent"]),
            opened=Count("id", filter=REACHED["opened"]),
            clicked=Count("id", filter=REACHED["clicked"]),
            replied=Count("id", filter=Q(id__in=replied_message_ids(campaign_id=sequence.campaign_id))),
        )
        .order_by()
    )
    for row in rows:
        if row["order"] in figures:
            figures[row["order"]].update({key: row[key] for key in ("sent", "opened", "clicked", "replied")})
    stopped = (
        Enrollment.objects.filter(sequence=sequence, status=E.STOPPED)
        .values("current_step")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in stopped:
        # Stopped after reaching step k (or before the first: counted at step 1).
        order = max(row["current_step"], 1)
        if order in figures:
            figures[order]["stopped"] += row["n"]
    return [figures[order] for order in orders]


def enrollment_counts_by_sequence(sequence_ids: list) -> dict[Any, dict[str, int]]:
    """Enrollments per status (and those waiting for admission) for many sequences, in one query."""
    if not sequence_ids:
        return {}
    rows = (
        Enrollment.objects.filter(sequence_id__in=sequence_ids)
        .values("sequence_id")
        .annotate(
            active=Count("id", filter=Q(status=E.ACTIVE)),
            completed=Count("id", filter=Q(status=E.COMPLETED)),
            stopped=Count("id", filter=Q(status=E.STOPPED)),
            waiting=Count("id", filter=Q(status=E.ACTIVE, started_at__isnull=True)),
        )
        .order_by()
    )
    return {row.pop("sequence_id"): row for row in rows}


def enrollment_counts(*, sequence: Sequence) -> dict[str, int]:
    empty = {"active": 0, "completed": 0, "stopped": 0, "waiting": 0}
    return enrollment_counts_by_sequence([sequence.pk]).get(sequence.pk, empty)
