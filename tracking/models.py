"""Message events (the append-only log analytics rolls up) and per-organization tracking settings.

`MessageEvent` is, with `campaigns.Message`, the largest table: a bigint identity key,
no database-level foreign keys (an event may arrive for a message we do not know, and
events outlive the rows they mention), and only the indexes that pay for themselves:

* the unique `dedupe_key`, which makes every ingestion idempotent (a provider's retry,
  or a buffer entry replayed after a worker died, inserts nothing);
* `message_id`, for a message's history and the per-message rules;
* `(organization_id, occurred_at)`, for rollups, the complaint-rate guard and the admin;
* a partial unique index on `(message_id, type)` over `is_unique` rows only (at most two
  rows per message): "the first human open / click of a message" holds even when two
  ingestions race.
"""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.timezone import now


class EventType(models.TextChoices):
    # Our own endpoints
    OPENED = "opened", "Opened"
    CLICKED = "clicked", "Clicked"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    # Provider delivery events (Anymail's normalized names, bounces split into hard and soft)
    QUEUED = "queued", "Queued by the provider"
    SENT = "sent", "Sent by the provider"
    DELIVERED = "delivered", "Delivered"
    DEFERRED = "deferred", "Deferred"
    SOFT_BOUNCED = "soft_bounced", "Soft bounce"
    BOUNCED = "bounced", "Hard bounce"
    COMPLAINED = "complained", "Spam complaint"
    REJECTED = "rejected", "Rejected by the provider"
    FAILED = "failed", "Failed at the provider"
    AUTORESPONDED = "autoresponded", "Auto-reply"
    SUBSCRIBED = "subscribed", "Subscribed"
    REPLIED = "replied", "Replied"
    UNKNOWN = "unknown", "Other provider event"


class MessageEvent(models.Model):
    """One thing that happened to a sent message. Rows are only ever inserted."""

    id = models.BigAutoField(primary_key=True)
    type = models.CharField(max_length=16, choices=EventType.choices)
    occurred_at = models.DateTimeField(help_text="When it happened (the provider's time for provider events).")
    received_at = models.DateTimeField(default=now, help_text="When we stored it.")
    organization = models.ForeignKey(
        "accounts.Organization",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    campaign = models.ForeignKey(
        "campaigns.Campaign",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    message = models.ForeignKey(
        "campaigns.Message",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
        help_text="Empty when a provider's event matched none of our messages.",
    )
    contact = models.ForeignKey(
        "contacts.Contact",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    machine = models.BooleanField(
        default=False, help_text="A privacy proxy or link scanner, not a person: left out of the rates."
    )
    is_unique = models.BooleanField(default=False, help_text="The message's first human open or click.")
    ip = models.GenericIPAddressField(null=True, blank=True, help_text="Anonymized when the organization says so.")
    user_agent = models.CharField(max_length=512, blank=True, default="")
    url = models.CharField(max_length=2048, blank=True, default="")
    link_index = models.PositiveSmallIntegerField(null=True, blank=True)
    esp = models.CharField(max_length=32, blank=True, default="", help_text="The provider, empty for our endpoints.")
    provider_message_id = models.CharField(max_length=255, blank=True, default="")
    recipient = models.CharField(max_length=254, blank=True, default="")
    detail = models.CharField(max_length=1000, blank=True, default="", help_text="Bounce reason, SMTP response, ...")
    payload = models.JSONField(null=True, blank=True, help_text="The raw provider payload.")
    # Unique through the constraint below (a unique=True field would also get a LIKE index on PostgreSQL).
    dedupe_key = models.CharField(max_length=64)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["message"], name="tracking_event_message"),
            models.Index(fields=["organization", "occurred_at"], name="tracking_event_org_time"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["dedupe_key"], name="tracking_event_dedupe_key"),
            models.UniqueConstraint(
                fields=["message", "type"], condition=Q(is_unique=True), name="tracking_event_first_per_message"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} of message {self.message_id}"


class TrackingSettings(models.Model):
    """An organization's tracking choices; created with the defaults the first time it is read."""

    organization = models.OneToOneField(
        "accounts.Organization", primary_key=True, on_delete=models.CASCADE, related_name="tracking_settings"
    )
    anonymize_ips = models.BooleanField(
        default=True, help_text="Store opens and clicks with the last IPv4 octet (IPv6: last 80 bits) zeroed."
    )
    soft_bounce_limit = models.PositiveSmallIntegerField(
        default=3,
        validators=[MinValueValidator(1)],
        help_text="Suppress an address once this many of its messages soft-bounced or were deferred "
        "(last 30 days, not delivered since).",
    )
    complaint_rate_threshold = models.DecimalField(
        max_digits=5,
        decimal_places=3,
        default=Decimal("0.300"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
        help_text="Percent of spam complaints per sending domain over 24 hours above which sending pauses "
        "(0.3 is Gmail's line). 0 turns the guard off.",
    )
    complaint_min_sent = models.PositiveIntegerField(
        default=200, help_text="The guard judges a sending domain only once it sent this many messages in 24 hours."
    )
    machine_window_seconds = models.PositiveSmallIntegerField(
        default=2,
        help_text="Clicks (and Gmail proxy opens) this soon after the message was sent are machines: link "
        "scanners and prefetching proxies, not people. 0 turns the timing rule off.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "tracking settings"
        verbose_name_plural = "tracking settings"

    def __str__(self) -> str:
        return f"Tracking settings of {self.organization}"
