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


class Campaign(TenantModel):
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    name = models.CharField(max_length=200)
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
    variables = models.JSONField(default=dict, blank=True, help_text="Values for the template's variables.")
    status = models.CharField(max_length=16, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT)
    status_reason = models.CharField(max_length=300, blank=True, default="")
    excluded = models.JSONField(default=dict, blank=True, help_text="Contacts left out at expansion, by reason.")
    recipients = models.PositiveIntegerField(default=0)
    starts_at = models.DateTimeField(null=True, blank=True, help_text="When sending may begin (set at launch).")
    expanded_at = models.DateTimeField(null=True, blank=True)
    planned_at = models.DateTimeField(null=True, blank=True)
    launched_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "status"], name="campaigns_campaign_org_status")]

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
PENDING_STATUSES = (MessageStatus.PLANNED, MessageStatus.QUEUED, MessageStatus.CLAIMED, MessageStatus.SENDING)


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
