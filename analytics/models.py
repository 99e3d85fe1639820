"""Daily rollups of what happened to messages, conversions, and agents' callback work.

Rollup rows are derived data: `analytics.rollup` deletes and rewrites whole (organization, day)
slices from the raw rows (messages, message events, conversions, callbacks), so running it twice
gives the same numbers and a late event for an old day rewrites that day. Days are dates in the
organization's time zone.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils.timezone import now

from accounts.models import TenantModel

# The counters of one rollup row, in the order the API and the CSV export list them.
COUNTERS = (
    "sent",
    "delivered",
    "opened",
    "clicked",
    "bounced",
    "complained",
    "unsubscribed",
    "failed",
    "replied",
    "conversions",
    "revenue",
)
# Kept beside them: total human opens and clicks, and the machine ones (privacy proxies, scanners).
TOTALS = ("opens", "clicks", "machine_opens", "machine_clicks")


class DailyStat(TenantModel):
    """One day of one campaign (or sequence: its backing campaign), step, variant, channel and
    sending domain. `campaign` is null only for conversions attributed to no campaign."""

    id = models.BigAutoField(primary_key=True)
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    date = models.DateField(help_text="The day in the organization's time zone.")
    campaign = models.ForeignKey(
        "campaigns.Campaign", null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    step = models.PositiveSmallIntegerField(default=0)
    variant = models.ForeignKey(
        "campaigns.CampaignVariant",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    channel = models.CharField(max_length=16, blank=True, default="")
    sending_domain = models.CharField(max_length=253, blank=True, default="")
    sent = models.PositiveIntegerField(default=0)
    delivered = models.PositiveIntegerField(default=0)
    opened = models.PositiveIntegerField(default=0, help_text="Messages opened for the first time (by a person).")
    clicked = models.PositiveIntegerField(default=0, help_text="Messages clicked for the first time (by a person).")
    opens = models.PositiveIntegerField(default=0)
    clicks = models.PositiveIntegerField(default=0)
    machine_opens = models.PositiveIntegerField(default=0)
    machine_clicks = models.PositiveIntegerField(default=0)
    bounced = models.PositiveIntegerField(default=0)
    complained = models.PositiveIntegerField(default=0)
    unsubscribed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    replied = models.PositiveIntegerField(default=0)
    conversions = models.PositiveIntegerField(default=0)
    revenue = models.DecimalField(max_digits=16, decimal_places=2, default=0)

    class Meta:
        indexes = [
            models.Index(fields=["organization", "date"], name="analytics_daily_org_date"),
            models.Index(fields=["campaign", "date"], name="analytics_daily_campaign_date"),
        ]

    def __str__(self) -> str:
        return f"{self.date} campaign {self.campaign_id} step {self.step}"


class LinkDailyStat(TenantModel):
    """Clicks on one original URL of one campaign on one day (human clicks only)."""

    id = models.BigAutoField(primary_key=True)
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    date = models.DateField()
    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    url = models.CharField(max_length=2048)
    clicks = models.PositiveIntegerField(default=0)
    unique_clicks = models.PositiveIntegerField(default=0, help_text="Messages whose first click on this URL it was.")

    class Meta:
        indexes = [
            models.Index(fields=["organization", "date"], name="analytics_link_org_date"),
            models.Index(fields=["campaign", "date"], name="analytics_link_campaign_date"),
        ]


class AgentDailyStat(TenantModel):
    """One agent's callback work on one day: handled (closed), first contacts, resolutions, breaches."""

    id = models.BigAutoField(primary_key=True)
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    date = models.DateField()
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    handled = models.PositiveIntegerField(default=0, help_text="Callbacks the agent completed that day.")
    first_contacts = models.PositiveIntegerField(default=0)
    first_contact_seconds = models.BigIntegerField(default=0, help_text="Sum, request to first contact.")
    resolutions = models.PositiveIntegerField(default=0)
    resolution_seconds = models.BigIntegerField(default=0, help_text="Sum, request to completion.")
    sla_breaches = models.PositiveIntegerField(default=0, help_text="Closed that day after their SLA was due.")

    class Meta:
        indexes = [models.Index(fields=["organization", "date"], name="analytics_agent_org_date")]


class RollupState(models.Model):
    """Where the incremental rollup stopped: one row per source (`events`, `conversions`,
    `messages`, `callbacks`). Ids for insert-only tables, a time for rows that change."""

    source = models.CharField(max_length=32, primary_key=True)
    last_id = models.BigIntegerField(default=0)
    last_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=now)

    def __str__(self) -> str:
        return f"{self.source} at {self.last_id or self.last_at}"


class Attribution(models.TextChoices):
    GIVEN = "given", "Given by the caller"
    CLICK = "click", "Last clicked message"
    OPEN = "open", "Last opened message"
    NONE = "none", "Unattributed"


class Conversion(TenantModel):
    """A purchase, sign-up or other goal a contact reached, with its value."""

    id = models.BigAutoField(primary_key=True)
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    contact = models.ForeignKey(
        "contacts.Contact", on_delete=models.CASCADE, related_name="conversions", db_index=False
    )
    campaign = models.ForeignKey(
        "campaigns.Campaign", null=True, blank=True, on_delete=models.SET_NULL, related_name="conversions"
    )
    message = models.ForeignKey(
        "campaigns.Message",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    attribution = models.CharField(max_length=8, choices=Attribution.choices, default=Attribution.NONE)
    name = models.CharField(max_length=100, blank=True, default="")
    value = models.DecimalField(max_digits=14, decimal_places=2, validators=[MinValueValidator(0)])
    currency = models.CharField(max_length=3, help_text="ISO 4217, e.g. EUR.")
    occurred_at = models.DateTimeField(default=now)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "occurred_at"], name="analytics_conversion_org_time"),
            models.Index(fields=["contact", "occurred_at"], name="analytics_conversion_contact"),
        ]

    def __str__(self) -> str:
        return f"{self.name or 'conversion'} {self.value} {self.currency}"
