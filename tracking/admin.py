"""Tracking in the admin: the event log (read only) and each organization's tracking settings."""

from __future__ import annotations

from django.contrib import admin

from accounts.tenancy import Area, ReadOnlyAdminMixin, TenantModelAdmin
from tracking.models import MessageEvent, TrackingSettings


@admin.register(MessageEvent)
class MessageEventAdmin(ReadOnlyAdminMixin, TenantModelAdmin):
    permission_area = Area.CAMPAIGNS
    list_display = ["occurred_at", "type", "message_id", "campaign_id", "recipient", "esp", "machine", "is_unique"]
    # No filter on free-text columns: their choices would be a DISTINCT over the whole table.
    list_filter = ["type", "machine", "is_unique"]
    search_fields = ["=provider_message_id", "=recipient"]
    list_select_related = False
    # The table is large: no full count, no joins in the list.
    show_full_result_count = False
    fields = [
        "type",
        "occurred_at",
        "received_at",
        "organization",
        "campaign",
        "message",
        "contact",
        "machine",
        "is_unique",
        "ip",
        "user_agent",
        "url",
        "link_index",
        "esp",
        "provider_message_id",
        "recipient",
        "detail",
        "payload",
        "dedupe_key",
    ]
    readonly_fields = fields


@admin.register(TrackingSettings)
class TrackingSettingsAdmin(TenantModelAdmin):
    permission_area = Area.ORGANIZATION
    list_display = [
        "organization",
        "anonymize_ips",
        "complaint_rate_threshold",
        "complaint_min_sent",
        "soft_bounce_limit",
        "machine_window_seconds",
        "updated_at",
    ]
    readonly_fields = ["updated_at"]
