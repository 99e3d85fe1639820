"""Campaigns and the messages they expand into.

`Message` is the largest table: one row per recipient per campaign step. Its key
and constraints are chosen for expansion speed: a bigint identity key, the
(campaign, step, contact) unique constraint that makes expansion idempotent and
pays for itself, a partial index for dispatch, and no database-level foreign keys
to contacts or organizations (contacts are never deleted, only erased, and the
campaign's own foreign key covers the cascade). Statuses are small integers whose
order is the lifecycle's, so "only move forward" is a plain comparison.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.timezone import now

from accounts.models import TenantModel
from config.ids import uuid7


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    WHATSAPP = "whatsapp", "WhatsApp"


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SCHEDULED = "scheduled", "Scheduled"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"


class CampaignKind(models.TextChoices):
    BROADCAST = "broadcast", "Broadcast"
    # The campaign that carries a drip sequence's messages (one per sequence, made with it): the
    # send pipeline, tracking and stats work on it unchanged. Not listed among broadcasts.
    SEQUENCE = "sequence", "Sequence"


class Campaign(TenantModel):
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=CampaignKind.choices, default=CampaignKind.BROADCAST)
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.EMAIL)
    template = models.ForeignKey(
        "templates_app.MessageTemplate", null=True, blank=True, on_delete=models.PROTECT, related_name="campaigns"
    )
    template_version = models.ForeignKey(
        "templates_app.TemplateVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The exact version launched; later template edits do not change it.",
    )
    audience = models.JSONField(default=dict, blank=True)
    schedule = models.JSONField(default=dict, blank=True)
    throttle = models.JSONField(default=dict, blank=True)
    sending_domains = models.JSONField(default=list, blank=True)
    followup = models.JSONField(
        default=dict, blank=True, help_text='{"enabled", "days", "template", "criterion": "not_opened|not_clicked"}'
    )
    followup_template_version = models.ForeignKey(
        "templates_app.TemplateVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    followup_expanded_at = models.DateTimeField(null=True, blank=True)
    ab_test = models.JSONField(default=dict, blank=True)
    ab_result = models.JSONField(
        default=dict, blank=True, help_text="The A/B decision: winner, p-value, z, per variant (empty until decided)."
    )
    variables = models.JSONField(default=dict, blank=True, help_text="Values for the template's variables.")
    budget = models.DecimalField(
        max_digits=14,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="What the campaign cost; with revenue from conversions it gives the ROI.",
    )
    status = models.CharField(max_length=16, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT)
    status_reason = models.CharField(max_length=300, blank=True, default="")
    excluded = models.JSONField(default=dict, blank=True, help_text="Contacts left out at expansion, by reason.")
    recipients = models.PositiveIntegerField(default=0)
    starts_at = models.DateTimeField(null=True, blank=True, help_text="When sending may begin (set at launch).")
    expanded_at = models.DateTimeField(null=True, blank=True)
    planned_at = models.DateTimeField(null=True, blank=True)
    launched_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # Recurring broadcasts: a campaign with a recurrence (an RFC 5545 RRULE in the organization's time
    # zone) is a series; each occurrence launches a fresh run, a copy linked here through `series`.
    recurrence = models.CharField(max_length=500, blank=True, default="")
    series = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs", db_index=False
    )
    next_run_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["organization", "status"], name="campaigns_campaign_org_status"),
            models.Index(fields=["series", "created_at"], name="campaigns_campaign_series"),
        ]

    def __str__(self) -> str:
        return self.name


class CampaignVariant(models.Model):
    """An A/B variant: its own template, and a weight in the split."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="variants")
    name = models.CharField(max_length=100)
    template = models.ForeignKey("templates_app.MessageTemplate", on_delete=models.PROTECT, related_name="+")
    template_version = models.ForeignKey(
        "templates_app.TemplateVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    weight = models.PositiveSmallIntegerField(default=1)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["campaign", "name"], name="campaigns_variant_name_unique")]

    def __str__(self) -> str:
        return f"{self.campaign}: {self.name}"


class MessageStatus(models.IntegerChoices):
    # Gaps leave room; the order is the lifecycle's so status only moves forward.
    PLANNED = 0, "planned"
    HELD = 5, "held"  # the rest of an A/B test, waiting for the winner: never planned or dispatched
    QUEUED = 10, "queued"
    CLAIMED = 20, "claimed"
    SENDING = 30, "sending"
    UNKNOWN = 35, "unknown"
    FAILED = 38, "failed"
    SENT = 40, "sent"
    DELIVERED = 50, "delivered"
    OPENED = 60, "opened"
    CLICKED = 70, "clicked"
    BOUNCED = 80, "bounced"
    COMPLAINED = 90, "complained"
    CANCELLED = 100, "cancelled"
    SKIPPED = 110, "skipped"


# Messages in these states may still be sent: a campaign is not complete while any exist.
PENDING_STATUSES = (
    MessageStatus.PLANNED,
    MessageStatus.HELD,
    MessageStatus.QUEUED,
    MessageStatus.CLAIMED,
    MessageStatus.SENDING,
)


class Message(models.Model):
    id = models.BigAutoField(primary_key=True)
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="messages", db_index=False)
    step = models.PositiveSmallIntegerField(default=0)
    variant = models.ForeignKey(
        CampaignVariant, null=True, blank=True, on_delete=models.SET_NULL, db_constraint=False, related_name="+"
    )
    contact = models.ForeignKey(
        "contacts.Contact", on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    to_address = models.CharField(max_length=254)
    status = models.SmallIntegerField(choices=MessageStatus.choices, default=MessageStatus.PLANNED)
    scheduled_at = models.DateTimeField(null=True, blank=True)
    sending_domain = models.CharField(max_length=253, blank=True, default="")
    lease_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    provider_message_id = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001 - NULL stays out of the index
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "step", "contact"], name="campaigns_message_once_per_step"),
        ]
        indexes = [
            # Dispatch: due queued messages, oldest first; only queued rows are in the index.
            models.Index(
                fields=["scheduled_at"], condition=Q(status=MessageStatus.QUEUED), name="campaigns_message_due"
            ),
            models.Index(
                fields=["provider_message_id"],
                condition=Q(provider_message_id__isnull=False),
                name="campaigns_message_provider_id",
            ),
            models.Index(fields=["contact", "campaign"], name="campaigns_message_contact"),
            # Analytics rolls up days by send time, and failures by the time they were due.
            models.Index(fields=["sent_at"], condition=Q(sent_at__isnull=False), name="campaigns_message_sent"),
            models.Index(
                fields=["scheduled_at"], condition=Q(status=MessageStatus.FAILED), name="campaigns_message_failed"
            ),
            # Dispatch settles expired leases every few seconds: only claimed and sending rows are in
            # the index, so the check reads a handful of entries, not the whole table.
            models.Index(
                fields=["lease_until"],
                condition=Q(status__in=[MessageStatus.CLAIMED, MessageStatus.SENDING]),
                name="campaigns_message_leased",
            ),
        ]

    def __str__(self) -> str:
        return f"message {self.pk} to {self.to_address}"


class SendingDomainStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    VERIFIED = "verified", "Verified"


class VerificationMethod(models.TextChoices):
    DNS = "dns", "DNS TXT record"
    ADMIN = "admin", "Confirmed by the operator"


def verification_token() -> str:
    import secrets

    return secrets.token_urlsafe(24)


class SendingDomain(TenantModel):
    """A domain the organization may send from, once verified.

    Verification proves control of the domain: a DNS TXT record
    `campaign-central-verification=<token>` at the domain or at `_campaign-central.<domain>`,
    or the platform operator's confirmation. Campaigns may only send from verified domains.
    """

    TXT_PREFIX = "campaign-central-verification="
    TXT_LABEL = "_campaign-central"

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    domain = models.CharField(max_length=253, help_text="Lower-case ASCII (IDNA) form, e.g. mail.example.com.")
    status = models.CharField(max_length=16, choices=SendingDomainStatus.choices, default=SendingDomainStatus.PENDING)
    verification_token = models.CharField(max_length=64, default=verification_token, editable=False)
    method = models.CharField(max_length=16, choices=VerificationMethod.choices, blank=True, default="")
    verified_at = models.DateTimeField(null=True, blank=True)
    verified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_check_error = models.CharField(max_length=500, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["domain"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "domain"], name="campaigns_sendingdomain_once_per_org"),
        ]

    def __str__(self) -> str:
        return self.domain

    @property
    def txt_value(self) -> str:
        return f"{self.TXT_PREFIX}{self.verification_token}"

    @property
    def txt_names(self) -> list[str]:
        return [self.domain, f"{self.TXT_LABEL}.{self.domain}"]


# --- sending policy -------------------------------------------------------------------------------------


class SendingPolicy(TenantModel):
    """An organization's rules for every marketing message: business hours (the window and holidays a
    sequence that respects business hours is planned into) and the frequency cap."""

    organization = models.OneToOneField(
        "accounts.Organization", on_delete=models.CASCADE, related_name="sending_policy"
    )
    window = models.JSONField(
        default=dict, blank=True, help_text='{"days": [0..6], "start": "09:00", "end": "17:00"}; empty = default hours'
    )
    holidays = models.JSONField(default=list, blank=True, help_text='Dates like "2026-12-25".')
    frequency_cap = models.JSONField(
        default=dict,
        blank=True,
        help_text='{"per_day": N, "per_week": N}: at most N marketing messages per contact per rolling 24 hours / '
        "7 days (absent or null = no cap).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "sending policies"

    def __str__(self) -> str:
        return f"sending policy of {self.organization_id}"


# --- drip sequences ---------------------------------------------------------------------------------------


class SequenceStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    ARCHIVED = "archived", "Archived"


class TriggerType(models.TextChoices):
    MANUAL = "manual", "Manual"
    CONTACT_CREATED = "contact_created", "Contact created"
    TAG_ADDED = "tag_added", "Tag added"
    CUSTOM_EVENT = "custom_event", "Custom event"
    API = "api", "API"


class Sequence(TenantModel):
    """A drip sequence: ordered steps sent to each enrolled contact with a delay between them.

    Its messages are ordinary `Message` rows of its own campaign (`campaign`, kind "sequence"), so
    dispatch, sending, retries, tracking and stats are the broadcast pipeline's."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    name = models.CharField(max_length=200)
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.EMAIL)
    trigger_type = models.CharField(max_length=32, choices=TriggerType.choices, default=TriggerType.MANUAL)
    trigger_value = models.CharField(max_length=200, blank=True, default="")
    # (declared before `settings`, which shadows django.conf.settings in this class body)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    settings = models.JSONField(
        default=dict,
        blank=True,
        help_text='{"stop_on_reply": true, "respect_business_hours": false, "max_new_per_day": null, '
        '"allow_reentry": false}',
    )
    status = models.CharField(max_length=16, choices=SequenceStatus.choices, default=SequenceStatus.DRAFT)
    campaign = models.OneToOneField(Campaign, on_delete=models.PROTECT, related_name="sequence")
    activated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["organization", "trigger_type", "trigger_value"],
                condition=Q(status="active"),
                name="campaigns_sequence_trigger",
            )
        ]

    def __str__(self) -> str:
        return self.name


class DelayUnit(models.TextChoices):
    MINUTES = "minutes", "minutes"
    HOURS = "hours", "hours"
    DAYS = "days", "days"
    WEEKS = "weeks", "weeks"


class SequenceStep(models.Model):
    """One step: sent `delay` after the previous step was sent (the first: after enrollment)."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    sequence = models.ForeignKey(Sequence, on_delete=models.CASCADE, related_name="steps")
    order = models.PositiveSmallIntegerField()
    delay_unit = models.CharField(max_length=16, choices=DelayUnit.choices, default=DelayUnit.DAYS)
    delay_value = models.PositiveIntegerField(default=0)
    template = models.ForeignKey("templates_app.MessageTemplate", on_delete=models.PROTECT, related_name="+")
    template_version = models.ForeignKey(
        "templates_app.TemplateVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The version sent, kept when the sequence is activated.",
    )
    condition = models.JSONField(
        default=dict,
        blank=True,
        help_text='{"type": "opened_previous|not_opened_previous|clicked_previous|not_clicked_previous"} or '
        '{"rules": <segment rules>}; "otherwise": "skip" (default) or "exit".',
    )

    class Meta:
        ordering = ["sequence", "order"]
        constraints = [models.UniqueConstraint(fields=["sequence", "order"], name="campaigns_step_order_unique")]

    def __str__(self) -> str:
        return f"{self.sequence}: step {self.order}"


# A contact who enters a sequence again (allow_reentry) gets new messages: a message's `step` is
# (entry - 1) * STEP_SPAN + order, so the (campaign, step, contact) rule still holds per entry.
STEP_SPAN = 100
MAX_STEPS = STEP_SPAN - 1


def message_step(entry: int, order: int) -> int:
    """The `Message.step` of a sequence step's message for a contact's `entry`-th enrollment."""
    return (entry - 1) * STEP_SPAN + order


def step_order(step: int) -> int:
    """The sequence step order a message's `step` stands for (see `message_step`)."""
    return step % STEP_SPAN


class EnrollmentStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    STOPPED = "stopped", "Stopped"


class StopReason(models.TextChoices):
    REPLIED = "replied", "Replied"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    BOUNCED = "bounced", "Bounced"
    COMPLAINED = "complained", "Complained"
    MANUAL = "manual", "Stopped by hand"
    CONDITION = "condition", "A step's condition ended it"
    ARCHIVED = "archived", "Sequence archived"


class Enrollment(models.Model):
    """A contact's way through a sequence. Active and waiting for admission (the daily cap) while
    `started_at` is empty; then `current_step` is the last step reached (0 = none yet) and
    `next_message_at` when the next one is due. Like `Message`, a large table: a bigint key and no
    database-level foreign keys to contacts or organizations."""

    id = models.BigAutoField(primary_key=True)
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    sequence = models.ForeignKey(Sequence, on_delete=models.CASCADE, related_name="enrollments", db_index=False)
    contact = models.ForeignKey(
        "contacts.Contact", on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    status = models.CharField(max_length=16, choices=EnrollmentStatus.choices, default=EnrollmentStatus.ACTIVE)
    stop_reason = models.CharField(max_length=16, choices=StopReason.choices, blank=True, default="")
    entry = models.PositiveSmallIntegerField(default=1, help_text="1 for a first enrollment, 2 for a re-entry, ...")
    current_step = models.PositiveSmallIntegerField(default=0)
    next_message_at = models.DateTimeField(null=True, blank=True)
    entered_at = models.DateTimeField(default=now)
    started_at = models.DateTimeField(null=True, blank=True)
    exited_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["sequence", "contact"],
                condition=Q(status="active"),
                name="campaigns_enrollment_once_active",
            ),
        ]
        indexes = [
            # The advance tick: active enrollments whose next step is due; nothing else is in it.
            models.Index(
                fields=["next_message_at"],
                condition=Q(status="active", next_message_at__isnull=False),
                name="campaigns_enrollment_due",
            ),
            # Admission under max_new_per_day: waiting enrollments in the order they came.
            models.Index(
                fields=["sequence", "entered_at"],
                condition=Q(status="active", started_at__isnull=True),
                name="campaigns_enrollment_waiting",
            ),
            # Re-entry checks and the enrollment list of a sequence; stopping by contact.
            models.Index(fields=["sequence", "contact"], name="campaigns_enrollment_seq"),
            models.Index(fields=["contact"], condition=Q(status="active"), name="campaigns_enrollment_contact"),
        ]

    def __str__(self) -> str:
        return f"enrollment {self.pk}"
