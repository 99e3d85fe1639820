"""The callback queue in the admin: ordered by priority then SLA, overdue ones highlighted,
bulk assignment to an agent. Writes go through callbacks.services, like the API."""

from __future__ import annotations

from datetime import UTC

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html

from accounts.models import Membership, Role, User
from accounts.tenancy import Area, TenantModelAdmin
from callbacks import selectors, services
from callbacks.models import (
    CallbackActivity,
    CallbackPriority,
    CallbackRequest,
    CallbackSettings,
    overdue_q,
)

PRIORITY_COLOURS = {
    CallbackPriority.URGENT: "#b42318",
    CallbackPriority.HIGH: "#c4320a",
    CallbackPriority.NORMAL: "#1a5fb4",
    CallbackPriority.LOW: "#57606a",
}


def local_time_text(value) -> str:
    """A stored time in the current time zone; a value the zone cannot hold (a row written before
    input was bounded) is shown as stored, in UTC, instead of failing the whole page."""
    if value is None:
        return "-"
    try:
        local = timezone.localtime(value, timezone.get_current_timezone())
    except (OverflowError, ValueError):
        utc = value.astimezone(UTC)
        return f"{utc.year:04d}-{utc:%m-%d %H:%M} UTC"
    return f"{local.year:04d}-{local:%m-%d %H:%M}"


def _time_field(name: str, description: str):
    @admin.display(description=description, ordering=name)
    def shown(self, obj):
        return local_time_text(getattr(obj, name))

    return shown


TIME_FIELDS = {
    "preferred_start": "Preferred start",
    "preferred_end": "Preferred end",
    "sla_due_at": "SLA due at",
    "assigned_at": "Assigned at",
    "first_contact_at": "First contact at",
    "closed_at": "Closed at",
    "created_at": "Created at",
    "updated_at": "Updated at",
}


class OverdueFilter(admin.SimpleListFilter):
    title = "SLA"
    parameter_name = "overdue"

    def lookups(self, request, model_admin):
        return [("yes", "Overdue"), ("no", "Within SLA")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(overdue_q(timezone.now()))
        if self.value() == "no":
            return queryset.exclude(overdue_q(timezone.now()))
        return queryset


class CallbackActivityInline(admin.TabularInline):
    model = CallbackActivity
    extra = 0
    can_delete = False
    fields = ["created_at", "action", "actor", "from_status", "to_status", "agent", "note"]
    readonly_fields = fields
    ordering = ["created_at", "id"]

    # The log is read-only and shown only on a request page the tenancy checks already allowed.
    def has_view_permission(self, request, obj=None):
        return True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor", "agent")


class BulkAssignForm(forms.Form):
    agent = forms.ModelChoiceField(queryset=User.objects.none(), label="Agent")

    def __init__(self, *args, agents, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["agent"].queryset = agents


@admin.register(CallbackRequest)
class CallbackRequestAdmin(TenantModelAdmin):
    permission_area = Area.CALLBACKS
    list_display = [
        "priority_badge",
        "priority_score",
        "contact",
        "phone",
        "status",
        "assigned_to",
        "sla_due",
        "attempts",
        "created_at_shown",
        "organization",
    ]
    list_display_links = ["priority_badge", "contact"]
    list_filter = [OverdueFilter, "status", "priority", "source", "organization"]
    search_fields = ["phone", "contact__email", "contact__last_name", "reason"]
    list_select_related = ["contact", "assigned_to", "organization"]
    actions = ["bulk_assign"]
    inlines = [CallbackActivityInline]
    # Times go through local_time_text: one unreadable stored value must not fail the page.
    readonly_fields = [
        "organization",
        "contact",
        "campaign_id",
        "source",
        "phone",
        "reason",
        "urgency",
        "preferred_start_shown",
        "preferred_end_shown",
        "timezone",
        "priority_score",
        "priority",
        "sla_due_at_shown",
        "overdue",
        "status",
        "attempts",
        "assigned_to",
        "assigned_at_shown",
        "first_contact_at_shown",
        "first_contact_by",
        "closed_at_shown",
        "resolution",
        "created_by",
        "created_at_shown",
        "updated_at_shown",
    ]
    fields = readonly_fields
    preferred_start_shown = _time_field("preferred_start", TIME_FIELDS["preferred_start"])
    preferred_end_shown = _time_field("preferred_end", TIME_FIELDS["preferred_end"])
    sla_due_at_shown = _time_field("sla_due_at", TIME_FIELDS["sla_due_at"])
    assigned_at_shown = _time_field("assigned_at", TIME_FIELDS["assigned_at"])
    first_contact_at_shown = _time_field("first_contact_at", TIME_FIELDS["first_contact_at"])
    closed_at_shown = _time_field("closed_at", TIME_FIELDS["closed_at"])
    created_at_shown = _time_field("created_at", TIME_FIELDS["created_at"])
    updated_at_shown = _time_field("updated_at", TIME_FIELDS["updated_at"])

    def get_ordering(self, request):
        return [selectors.priority_rank().asc(), "sla_due_at", "-priority_score"]

    def has_add_permission(self, request, *args):
        # Requests come from contacts (form, API); status moves through the API's actions.
        return False

    def has_change_permission(self, request, obj=None):
        # A request's page is a read-only record; changes go through the state machine.
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Priority", ordering=selectors.priority_rank())
    def priority_badge(self, obj):
        colour = PRIORITY_COLOURS.get(obj.priority, PRIORITY_COLOURS[CallbackPriority.LOW])
        return format_html('<strong style="color:{}">{}</strong>', colour, obj.get_priority_display())

    @admin.display(description="SLA due", ordering="sla_due_at")
    def sla_due(self, obj):
        shown = local_time_text(obj.sla_due_at)
        if obj.is_overdue:
            return format_html(
                '<span class="callback-overdue" style="background:#fde8e8;color:#b42318;font-weight:bold;'
                'padding:2px 6px;border-radius:3px">{} · overdue</span>',
                shown,
            )
        return shown

    def _can_supervise(self, request) -> bool:
        if request.user.is_superuser:
            return True
        return Membership.objects.filter(user=request.user, role__in=services.SUPERVISOR_ROLES).exists()

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not self._can_supervise(request):
            actions.pop("bulk_assign", None)
        return actions

    @admin.action(description="Assign selected callbacks to an agent")
    def bulk_assign(self, request, queryset):
        organization_ids = set(queryset.values_list("organization_id", flat=True))
        if len(organization_ids) != 1:
            self.message_user(request, "Select callbacks of one organization at a time.", messages.ERROR)
            return None
        [organization_id] = organization_ids
        agents = User.objects.filter(
            memberships__organization_id=organization_id, memberships__role=Role.AGENT, is_active=True
        ).order_by("email")
        form = BulkAssignForm(request.POST if "apply" in request.POST else None, agents=agents)
        if form.is_valid():
            try:
                result = services.callbacks_assign_bulk(
                    callback_ids=queryset.values_list("pk", flat=True),
                    organization_id=organization_id,
                    agent_id=form.cleaned_data["agent"].pk,
                    by=request.user,
                )
            except (ValidationError, PermissionDenied) as exc:
                self.message_user(request, " ".join(getattr(exc, "messages", [str(exc)])), messages.ERROR)
                return None
            self.message_user(
                request,
                f"Assigned {result.assigned} callback(s) to {form.cleaned_data['agent'].email}."
                + (f" Skipped {result.skipped} that are in progress or closed." if result.skipped else ""),
                messages.SUCCESS if result.assigned else messages.WARNING,
            )
            return None
        return TemplateResponse(
            request,
            "admin/callbacks/callbackrequest/bulk_assign.html",
            {
                **self.admin_site.each_context(request),
                "title": "Assign callbacks to an agent",
                "opts": self.model._meta,
                "queryset": queryset.select_related("contact"),
                "form": form,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            },
        )


@admin.register(CallbackSettings)
class CallbackSettingsAdmin(TenantModelAdmin):
    """Owners, admins and managers edit their organization's settings; agents and viewers read."""

    permission_area = Area.CALLBACKS
    list_display = ["organization", "opens_at", "closes_at", "working_days", "sla_summary", "value_attribute"]
    fieldsets = [
        (None, {"fields": ["organization"]}),
        (
            "Business hours (organization's time zone)",
            {"fields": ["working_days", "opens_at", "closes_at", "holidays"]},
        ),
        (
            "SLA in business hours",
            {"fields": ["sla_urgent_hours", "sla_high_hours", "sla_normal_hours", "sla_low_hours"]},
        ),
        ("Scoring", {"fields": ["value_attribute", "value_scale", "engagement_events"]}),
    ]

    def _org_ids(self, request, *, write: bool) -> list:
        if not write:
            return super()._org_ids(request, write=False)
        if not hasattr(request, "_callback_settings_write_orgs"):
            request._callback_settings_write_orgs = list(
                Membership.objects.filter(user=request.user, role__in=services.SUPERVISOR_ROLES).values_list(
                    "organization_id", flat=True
                )
            )
        return request._callback_settings_write_orgs

    def get_readonly_fields(self, request, obj=None):
        return ["organization"] if obj is not None else []

    @admin.display(description="SLA hours (urgent/high/normal/low)")
    def sla_summary(self, obj):
        return f"{obj.sla_urgent_hours}/{obj.sla_high_hours}/{obj.sla_normal_hours}/{obj.sla_low_hours}"
