"""Callback requests from contacts, their activity log and each organization's callback settings.

A request belongs to one organization and one contact. `campaign_id` is the id of
the campaign whose email the contact answered; it is a plain UUID and not a
foreign key because campaigns are kept in their own app and a request must
outlive the campaign it came from (deleting a campaign leaves the id behind).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.timezone import now

from accounts.models import TenantModel
from callbacks import scoring
from config.ids import uuid7
from config.validation import check_date, check_json

# An SLA longer than a year is no promise; the limit also bounds the business-hours walk.
SLA_MAX_HOURS = 24 * 366
VALUE_SCALE_MAX = 1_000_000_000
MAX_HOLIDAYS = 1000
# What the database may hold in a preferred time: one day inside the years Python can represent,
# so every stored value can be read back and shown in any time zone. Input is held to the far
# narrower DATE_MIN_YEAR..DATE_MAX_YEAR (settings allow years 2..9998 at most).
STORABLE_MIN = datetime(1, 1, 2, tzinfo=UTC)
STORABLE_MAX = datetime(9999, 12, 30, tzinfo=UTC)


class CallbackSource(models.TextChoices):
    CAMPAIGN_EMAIL = "campaign_email", "Campaign email"
    PUBLIC_FORM = "public_form", "Public form"
    API = "api", "API"
    MANUAL = "manual", "Entered by hand"


class CallbackPriority(models.TextChoices):
    URGENT = scoring.URGENT, "Urgent"
    HIGH = scoring.HIGH, "High"
    NORMAL = scoring.NORMAL, "Normal"
    LOW = scoring.LOW, "Low"


PRIORITY_RANK = {
    CallbackPriority.URGENT: 0,
    CallbackPriority.HIGH: 1,
    CallbackPriority.NORMAL: 2,
    CallbackPriority.LOW: 3,
}


class CallbackUrgency(models.TextChoices):
    """How soon the contact said they want the call."""

    ASAP = "asap", "As soon as possible"
    TODAY = "today", "Today"
    THIS_WEEK = "this_week", "This week"
    ANYTIME = "anytime", "Any time"


class CallbackStatus(models.TextChoices):
    NEW = "new", "New"
    ASSIGNED = "assigned", "Assigned"
    IN_PROGRESS = "in_progress", "In progress"
    NO_ANSWER = "no_answer", "No answer"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"


# Not yet reached: the SLA clock runs for these.
AWAITING_FIRST_CONTACT = (CallbackStatus.NEW, CallbackStatus.ASSIGNED)
# Waiting in the queue for an agent's call: re-scored by the sweep.
WAITING = (CallbackStatus.NEW, CallbackStatus.ASSIGNED, CallbackStatus.NO_ANSWER)
OPEN = (*WAITING, CallbackStatus.IN_PROGRESS)
CLOSED = (CallbackStatus.COMPLETED, CallbackStatus.CANCELLED)


class ActivityAction(models.TextChoices):
    CREATED = "created", "Created"
    ASSIGNED = "assigned", "Assigned"
    STATUS_CHANGED = "status_changed", "Status changed"
    NOTE = "note", "Note"
    PRIORITY_CHANGED = "priority_changed", "Priority changed"
    SLA_BREACHED = "sla_breached", "SLA breached"


def default_working_days() -> list[int]:
    return [0, 1, 2, 3, 4]


def default_engagement_events() -> list[str]:
    return ["clicked", "replied"]


class CallbackSettings(TenantModel):
    """One row per organization, created with the defaults the first time it is needed."""

    organization = models.OneToOneField("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    working_days = models.JSONField(
        default=default_working_days,
        validators=[check_json],
        help_text="Days that count for the SLA, 0 = Monday ... 6 = Sunday.",
    )
    opens_at = models.TimeField(default=time(9, 0), help_text="Start of business hours, organization's time zone.")
    closes_at = models.TimeField(default=time(17, 0), help_text="End of business hours, organization's time zone.")
    holidays = models.JSONField(
        default=list,
        blank=True,
        validators=[check_json],
        help_text=f'Dates that do not count, e.g. ["2025-12-25"] (at most {MAX_HOLIDAYS}).',
    )
    sla_urgent_hours = models.PositiveIntegerField(
        default=2, validators=[MinValueValidator(1), MaxValueValidator(SLA_MAX_HOURS)]
    )
    sla_high_hours = models.PositiveIntegerField(
        default=4, validators=[MinValueValidator(1), MaxValueValidator(SLA_MAX_HOURS)]
    )
    sla_normal_hours = models.PositiveIntegerField(
        default=8, validators=[MinValueValidator(1), MaxValueValidator(SLA_MAX_HOURS)]
    )
    sla_low_hours = models.PositiveIntegerField(
        default=24, validators=[MinValueValidator(1), MaxValueValidator(SLA_MAX_HOURS)]
    )
    value_attribute = models.CharField(
        max_length=100, default="lifetime_value", help_text="Contact attribute that holds the contact's value."
    )
    value_scale = models.PositiveIntegerField(
        default=1000,
        validators=[MinValueValidator(1), MaxValueValidator(VALUE_SCALE_MAX)],
        help_text="A value at or above this earns all value points.",
    )
    engagement_events = models.JSONField(
        default=default_engagement_events,
        blank=True,
        validators=[check_json],
        help_text="Contact event names that count as recent engagement (clicks, replies).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "callback settings"
        verbose_name_plural = "callback settings"

    def __str__(self) -> str:
        return f"Callback settings of {self.organization}"

    def sla_hours(self, priority: str) -> int:
        return {
            CallbackPriority.URGENT: self.sla_urgent_hours,
            CallbackPriority.HIGH: self.sla_high_hours,
            CallbackPriority.NORMAL: self.sla_normal_hours,
            CallbackPriority.LOW: self.sla_low_hours,
        }[priority]

    def clean(self) -> None:
        super().clean()
        errors: dict[str, list[str]] = {}
        days = self.working_days
        if (
            not isinstance(days, list)
            or not days
            or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6 for d in days)
        ):
            errors["working_days"] = ["A non-empty list of day numbers, 0 (Monday) to 6 (Sunday)."]
        else:
            self.working_days = sorted(set(days))
        if self.opens_at is not None and self.closes_at is not None and self.opens_at >= self.closes_at:
            errors["closes_at"] = ["Business hours must close after they open."]
        holidays = self.holidays
        if not isinstance(holidays, list) or len(holidays) > MAX_HOLIDAYS:
            errors["holidays"] = [f'A list of at most {MAX_HOLIDAYS} dates like "2025-12-25".']
        else:
            try:
                days = {date.fromisoformat(str(d)) for d in holidays}
                for day in days:
                    check_date(day)
            except ValueError:
                errors["holidays"] = ['A list of dates like "2025-12-25".']
            except ValidationError as exc:
                errors["holidays"] = exc.messages
            else:
                self.holidays = sorted(day.isoformat() for day in days)
        events = self.engagement_events
        if not isinstance(events, list) or not all(isinstance(e, str) and e.strip() for e in events):
            errors["engagement_events"] = ["A list of event names."]
        else:
            self.engagement_events = [e.strip() for e in events]
        if "working_days" not in errors and "closes_at" not in errors:
            errors.update(self._unreachable_slas())
        if errors:
            raise ValidationError(errors)

    def _unreachable_slas(self) -> dict[str, list[str]]:
        """An SLA must fit in a year of this calendar's business hours: a deadline further out
        promises nothing, and finding it would walk the calendar for years."""
        if self.opens_at is None or self.closes_at is None:
            return {}
        day = date(2001, 1, 1)
        daily = datetime.combine(day, self.closes_at) - datetime.combine(day, self.opens_at)
        yearly_hours = int(daily * len(set(self.working_days)) * 52 / timedelta(hours=1))
        return {
            name: [f"At most {yearly_hours} hours: a year of business hours with these days and times."]
            for name in ("sla_urgent_hours", "sla_high_hours", "sla_normal_hours", "sla_low_hours")
            if isinstance(getattr(self, name), int) and getattr(self, name) > yearly_hours
        }


def overdue_q(at) -> Q:
    """Requests that breached their SLA: marked so, or past due and still not contacted."""
    return Q(overdue=True) | Q(status__in=AWAITING_FIRST_CONTACT, sla_due_at__lte=at)


class CallbackRequest(TenantModel):
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    # Indexed through (organization, status, sla_due_at) below.
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    contact = models.ForeignKey("contacts.Contact", on_delete=models.CASCADE, related_name="callback_requests")
    campaign_id = models.UUIDField(
        null=True, blank=True, help_text="The campaign the request came from (its id; campaigns are not a foreign key)."
    )
    source = models.CharField(max_length=16, choices=CallbackSource.choices, default=CallbackSource.API)
    phone = models.CharField(max_length=20, help_text="E.164, e.g. +31612345678")
    reason = models.TextField(blank=True, default="")
    urgency = models.CharField(max_length=16, choices=CallbackUrgency.choices, default=CallbackUrgency.ANYTIME)
    preferred_start = models.DateTimeField(null=True, blank=True)
    preferred_end = models.DateTimeField(null=True, blank=True)
    timezone = models.CharField(max_length=64, help_text="The contact's time zone when the request came in.")
    priority_score = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(100)])
    priority = models.CharField(max_length=8, choices=CallbackPriority.choices, default=CallbackPriority.LOW)
    sla_due_at = models.DateTimeField()
    overdue = models.BooleanField(default=False, help_text="The SLA was breached (kept after the request closes).")
    status = models.CharField(max_length=16, choices=CallbackStatus.choices, default=CallbackStatus.NEW)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Calls that went unanswered.")
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_callbacks",
    )
    assigned_at = models.DateTimeField(null=True, blank=True)
    first_contact_at = models.DateTimeField(null=True, blank=True)
    first_contact_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    closed_at = models.DateTimeField(null=True, blank=True)
    resolution = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(priority_score__lte=100), name="callbacks_request_score_max_100"),
            models.CheckConstraint(
                condition=Q(preferred_start__isnull=True)
                | Q(preferred_end__isnull=True)
                | Q(preferred_end__gt=models.F("preferred_start")),
                name="callbacks_request_preferred_window",
            ),
            # A timestamp outside Python's years cannot be read back: one such row would fail
            # every page that lists it.
            models.CheckConstraint(
                condition=Q(preferred_start__isnull=True) | Q(preferred_start__range=(STORABLE_MIN, STORABLE_MAX)),
                name="callbacks_request_preferred_start_storable",
            ),
            models.CheckConstraint(
                condition=Q(preferred_end__isnull=True) | Q(preferred_end__range=(STORABLE_MIN, STORABLE_MAX)),
                name="callbacks_request_preferred_end_storable",
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "status", "sla_due_at"], name="callbacks_req_org_status_due"),
            # The sweep's breach scan touches only requests still waiting for a first contact.
            models.Index(
                fields=["sla_due_at"],
                condition=Q(overdue=False, status__in=["new", "assigned"]),
                name="callbacks_req_sla_watch",
            ),
        ]

    def __str__(self) -> str:
        return f"Callback {self.phone} ({self.get_status_display()})"

    @property
    def is_overdue(self) -> bool:
        return self.overdue or (self.status in AWAITING_FIRST_CONTACT and self.sla_due_at <= now())


class CallbackActivity(TenantModel):
    """Append-only log: who did what to a request, when, with an optional note."""

    id = models.BigAutoField(primary_key=True)
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    callback = models.ForeignKey(CallbackRequest, on_delete=models.CASCADE, related_name="activities", db_index=False)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Empty: the system (the sweep, the public form).",
    )
    action = models.CharField(max_length=20, choices=ActivityAction.choices)
    from_status = models.CharField(max_length=16, choices=CallbackStatus.choices, blank=True, default="")
    to_status = models.CharField(max_length=16, choices=CallbackStatus.choices, blank=True, default="")
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="For assignments: the agent the request went to.",
    )
    note = models.TextField(blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "callback activities"
        indexes = [models.Index(fields=["callback", "created_at"], name="callbacks_activity_callback")]

    def __str__(self) -> str:
        return f"{self.get_action_display()} at {self.created_at:%Y-%m-%d %H:%M}"
