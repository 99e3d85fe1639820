"""Outgoing webhooks: the endpoints an organization registers and the deliveries made to them.

`Delivery` grows with every subscribed event, so it gets a bigint key, a unique (event_id,
endpoint) constraint that makes fan-out idempotent (a source row read twice inserts nothing) and
answers "was this event fanned out already" by event id alone, a partial index holding only the
pending rows for the due scan, and (endpoint, id) for an endpoint's delivery log.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.timezone import now

from accounts.models import TenantModel
from config.ids import uuid7


class Endpoint(TenantModel):
    """A URL that receives the organization's events of the subscribed types, signed with `secret`."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    # Indexed through (organization, enabled) below.
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    url = models.URLField(max_length=2000)
    events = models.JSONField(default=list, help_text='Subscribed event types, e.g. ["message.opened"].')
    description = models.CharField(max_length=500, blank=True, default="")
    # Standard Webhooks secret ("whsec_" + base64). Kept readable: every delivery is signed with it.
    secret = models.CharField(max_length=100, editable=False)
    enabled = models.BooleanField(default=True)
    # Failed attempts in a row since the last success, and when the first of them failed.
    failure_streak = models.PositiveIntegerField(default=0)
    failing_since = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True, default="")
    created_by = models.ForeignKey("accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["organization", "enabled"], name="webhooks_endpoint_org_enabled")]

    def __str__(self) -> str:
        return self.url

    def subscribes_to(self, event_type: str) -> bool:
        return event_type in (self.events or [])


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class Delivery(models.Model):
    """One event for one endpoint: its signed body's payload and how the attempts went."""

    id = models.BigAutoField(primary_key=True)
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries", db_index=False)
    event_id = models.CharField(max_length=64, help_text="The `webhook-id`: the same on every attempt.")
    type = models.CharField(max_length=64)
    payload = models.JSONField(help_text="{id, type, timestamp, organization, data}, sent as is.")
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_response_body = models.CharField(max_length=1024, blank=True, default="")
    last_error = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(default=now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=["event_id", "endpoint"], name="webhooks_delivery_once_per_endpoint"),
        ]
        indexes = [
            # The delivery tick: due pending rows, oldest first; nothing else is in it.
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status=DeliveryStatus.PENDING),
                name="webhooks_delivery_due",
            ),
            models.Index(fields=["endpoint", "id"], name="webhooks_delivery_endpoint"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id} to {self.endpoint_id}"


class FanoutState(models.Model):
    """Where fan-out stopped reading one source: an id for append-only logs, a time for rows that
    change. One row per source."""

    source = models.CharField(max_length=32, primary_key=True)
    last_id = models.BigIntegerField(default=0)
    last_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=now)

    def __str__(self) -> str:
        return f"{self.source} at {self.last_id or self.last_at}"
