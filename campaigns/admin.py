"""Campaigns in the admin: status and counts, and the same actions as the API."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count

from accounts.tenancy import Area, TenantModelAdmin
from campaigns import services
from campaigns.models import Campaign, CampaignStatus, CampaignVariant, Message, MessageStatus
from config.errors import DomainError


class VariantInline(admin.TabularInline):
    model = CampaignVariant
    extra = 0
    fields = ["name", "template", "weight"]


@admin.register(Campaign)
class CampaignAdmin(TenantModelAdmin):
    permission_area = Area.CAMPAIGNS
    list_display = ["name", "organization", "channel", "status", "recipients", "launched_at", "created_at"]
    list_filter = ["status", "channel", "organization"]
    search_fields = ["name"]
    inlines = [VariantInline]
    readonly_fields = [
        "status",
        "status_reason",
        "template_version",
        "recipients",
        "excluded",
        "message_counts",
        "launched_at",
        "completed_at",
    ]
    actions = ["dry_run", "launch", "pause", "resume", "cancel"]
    fieldsets = [
        (None, {"fields": ["organization", "name", "channel", "template", "variables"]}),
        ("Audience", {"fields": ["audience"]}),
        ("Schedule and throttling", {"fields": ["schedule", "throttle", "sending_domains", "followup", "ab_test"]}),
        (
            "State",
            {
                "fields": [
                    "status",
                    "status_reason",
                    "template_version",
                    "recipients",
                    "excluded",
                    "message_counts",
                    "launched_at",
                    "completed_at",
                ]
            },
        ),
    ]

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.status != CampaignStatus.DRAFT:
            return False  # the page still shows; only drafts can be edited
        return super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        services.campaign_save(campaign=obj)

    @admin.display(description="Messages by status")
    def message_counts(self, obj):
        if not obj.pk:
            return "-"
        rows = Message.objects.filter(campaign=obj).values("status").annotate(n=Count("id")).order_by("status")
        return ", ".join(f"{MessageStatus(r['status']).label}: {r['n']}" for r in rows) or "no messages yet"

    def _each(self, request, queryset, service, done: str):
        for campaign in queryset:
            try:
                service(campaign=campaign)
            except (ValidationError, DomainError) as exc:
                message = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
                self.message_user(request, f"{campaign.name}: {message}", messages.ERROR)
            else:
                self.message_user(request, f"{campaign.name}: {done}.")

    @admin.action(description="Dry run: recipients and schedule, nothing written")
    def dry_run(self, request, queryset):
        for campaign in queryset:
            try:
                result = services.campaign_dry_run(campaign=campaign)
            except ValidationError as exc:
                self.message_user(request, f"{campaign.name}: {'; '.join(exc.messages)}", messages.ERROR)
                continue
            self.message_user(
                request,
                f"{campaign.name}: {result['recipients']} recipients, first send {result['first_send_at']}, "
                f"last send {result['last_send_at']}, excluded {result['excluded']}, "
                f"per sending domain {result['per_domain']}, per day {result['per_day']}",
            )

    @admin.action(description="Launch")
    def launch(self, request, queryset):
        self._each(request, queryset, services.campaign_launch, "launched")

    @admin.action(description="Pause")
    def pause(self, request, queryset):
        self._each(request, queryset, services.campaign_pause, "paused")

    @admin.action(description="Resume")
    def resume(self, request, queryset):
        self._each(request, queryset, services.campaign_resume, "resumed")

    @admin.action(description="Cancel")
    def cancel(self, request, queryset):
        self._each(request, queryset, services.campaign_cancel, "cancelled")
