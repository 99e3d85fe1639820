"""The callback queue in the admin: ordered by priority then SLA, overdue ones highlighted,
bulk assignment to an agent, and each request worked from its page (assign, start the call, no
answer, complete with a resolution, cancel, add a note) or added by hand. Writes go through
callbacks.services, like the API: the same roles, the same state machine, the same activity log."""

from __future__ import annotations

from datetime import UTC

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.contrib.admin.widgets import AdminSplitDateTime
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from accounts.admin import OrganizationPreselectedMixin, SafeWidgetsAdminMixin, add_service_errors
from accounts.models import Membership, Role, User
from accounts.tenancy import Area, TenantModelAdmin
from callbacks import selectors, services
from callbacks.models import (
    CallbackActivity,
    CallbackPriority,
    CallbackRequest,
    CallbackSettings,
    CallbackSource,
    CallbackStatus,
    CallbackUrgency,
    overdue_q,
)
from config.errors import DomainError

AGENT_HELP = (
    "Only members of the request's organization with the agent role (and an active account) can be "
    "assigned. Owners, admins and managers assign anyone of them; an agent can only take a request themselves."
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


class AgentChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return f"{obj.full_name} <{obj.email}>" if obj.full_name else obj.email


def assignable_agents(organization_id):
    """The members a request of this organization may be assigned to (what callback_assign accepts)."""
    return User.objects.filter(
        memberships__organization_id=organization_id, memberships__role=Role.AGENT, is_active=True
    ).order_by("email")


class BulkAssignForm(forms.Form):
    agent = AgentChoiceField(queryset=User.objects.none(), label="Agent", help_text=AGENT_HELP)

    def __init__(self, *args, agents, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["agent"].queryset = agents


class CallbackAddForm(forms.ModelForm):
    """A request taken by hand (on the phone, at the desk): saved by callbacks.services.callback_create."""

    preferred_start = forms.SplitDateTimeField(
        required=False,
        widget=AdminSplitDateTime,
        help_text="In the contact's time zone (the organization's when the contact has none).",
    )
    preferred_end = forms.SplitDateTimeField(required=False, widget=AdminSplitDateTime)
    urgency = forms.ChoiceField(choices=CallbackUrgency.choices, initial=CallbackUrgency.ANYTIME)

    class Meta:
        model = CallbackRequest
        fields = ["organization", "contact", "phone", "reason", "urgency", "preferred_start", "preferred_end"]
        help_texts = {"phone": "Empty: the contact's phone number.", "contact": "Type a name or an email address."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["phone"].required = False

    # The errors callback_create gave for this data, set per request by the admin (see add_view).
    service_errors: ValidationError | None = None

    def clean(self):
        cleaned = super().clean()
        organization, contact = cleaned.get("organization"), cleaned.get("contact")
        if organization and contact and contact.organization_id != organization.pk:
            self.add_error("contact", "This contact belongs to another organization.")
        if self.service_errors is not None:
            add_service_errors(self, self.service_errors, aliases={"preferred_time": "preferred_start"})
        return cleaned


class _Refused(Exception):
    """callback_create refused the data of the add form; the admin shows the form again with it."""

    def __init__(self, error: ValidationError):
        super().__init__(error)
        self.error = error


class AssignForm(forms.Form):
    use_required_attribute = False  # one form, several buttons: each step checks its own fields
    agent = AgentChoiceField(queryset=User.objects.none(), label="Agent", help_text=AGENT_HELP)
    note = forms.CharField(required=False, max_length=1000)

    def __init__(self, *args, agents, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["agent"].queryset = agents


class CompleteForm(forms.Form):
    use_required_attribute = False
    resolution = forms.CharField(widget=forms.Textarea(attrs={"rows": 2, "cols": 60}), max_length=2000)


class NoteForm(forms.Form):
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 2, "cols": 60}), max_length=2000, required=False)


@admin.register(CallbackRequest)
class CallbackRequestAdmin(OrganizationPreselectedMixin, SafeWidgetsAdminMixin, TenantModelAdmin):
    permission_area = Area.CALLBACKS
    change_form_template = "admin/callbacks/callbackrequest/change_form.html"
    add_form_template = "admin/change_form.html"
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

    # Adding by hand --------------------------------------------------------------------------

    def _supervised_org_ids(self, request) -> list:
        return list(
            Membership.objects.filter(user=request.user, role__in=services.SUPERVISOR_ROLES).values_list(
                "organization_id", flat=True
            )
        )

    def has_add_permission(self, request, *args):
        # Owners, admins and managers take requests by hand (the contact is picked from the audience,
        # which they may read); agents work the requests that come in.
        if not super().has_add_permission(request, *args):
            return False
        return request.user.is_superuser or bool(self._supervised_org_ids(request))

    def get_fields(self, request, obj=None):
        return CallbackAddForm._meta.fields if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def get_autocomplete_fields(self, request):
        return ["contact"]

    def get_inline_instances(self, request, obj=None):
        return super().get_inline_instances(request, obj) if obj is not None else []

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "organization" and not request.user.is_superuser and field is not None:
            field.queryset = field.queryset.filter(pk__in=self._supervised_org_ids(request))
        return field

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is not None:
            return super().get_form(request, obj, change=change, **kwargs)
        kwargs["form"] = CallbackAddForm
        form = super().get_form(request, obj, change=change, **kwargs)
        refused = getattr(request, "_callback_refused", None)
        return type(form.__name__, (form,), {"service_errors": refused}) if refused is not None else form

    def add_view(self, request, form_url="", extra_context=None):
        try:
            return super().add_view(request, form_url, extra_context)
        except _Refused as refused:
            request._callback_refused = refused.error
            return super().add_view(request, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        if change:
            raise PermissionDenied
        data = form.cleaned_data
        try:
            saved = services.callback_create(
                organization=data["organization"],
                contact=data["contact"],
                phone=data.get("phone"),
                reason=data.get("reason") or "",
                urgency=data.get("urgency") or CallbackUrgency.ANYTIME,
                preferred_start=data.get("preferred_start"),
                preferred_end=data.get("preferred_end"),
                source=CallbackSource.MANUAL,
                by=request.user,
            )
        except ValidationError as exc:
            raise _Refused(exc) from None  # rolls the admin's transaction back
        obj.pk = saved.pk
        obj._state.adding = False

    def save_related(self, request, form, formsets, change):
        pass  # the service wrote the request and its activity

    def response_add(self, request, obj, post_url_continue=None):
        self.message_user(request, "The callback request was added to the queue.", messages.SUCCESS)
        return redirect(reverse("admin:callbacks_callbackrequest_change", args=[obj.pk]))

    def has_change_permission(self, request, obj=None):
        # A request's page is a read-only record; changes go through the state machine (work_view).
        return obj is None and super().has_change_permission(request, obj)

    # Working a request -------------------------------------------------------------------------

    def _may_work(self, request, callback) -> bool:
        return TenantModelAdmin.has_change_permission(self, request, callback)

    def _assign_choices(self, request, callback):
        role = services.actor_role(organization_id=callback.organization_id, user=request.user)
        agents = assignable_agents(callback.organization_id)
        return agents if services.can_supervise(role) else agents.filter(pk=request.user.pk)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        callback = self.get_object(request, unquote(object_id))
        extra = dict(extra_context or {})
        if callback is not None and self._may_work(request, callback):
            allowed = services.TRANSITIONS.get(callback.status, frozenset())
            extra["work"] = {
                "url": reverse("admin:callbacks_callbackrequest_work", args=[callback.pk]),
                "assign": AssignForm(agents=self._assign_choices(request, callback), prefix="assign")
                if CallbackStatus.ASSIGNED in allowed
                else None,
                "start": CallbackStatus.IN_PROGRESS in allowed,
                "no_answer": CallbackStatus.NO_ANSWER in allowed,
                "complete": CompleteForm(prefix="complete") if CallbackStatus.COMPLETED in allowed else None,
                "cancel": CallbackStatus.CANCELLED in allowed,
                "note": NoteForm(prefix="note"),
            }
        return super().change_view(request, object_id, form_url, extra)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/work/",
                self.admin_site.admin_view(self.work_view),
                name="callbacks_callbackrequest_work",
            ),
            *super().get_urls(),
        ]

    def work_view(self, request, object_id):
        """One step of working a request (assign, start, no answer, complete, cancel, note), by the
        same services as the API; what they refuse is shown as a message on the request's page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        callback = self.get_object(request, unquote(object_id))
        if callback is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self._may_work(request, callback):
            raise PermissionDenied
        page = redirect(reverse("admin:callbacks_callbackrequest_change", args=[callback.pk]))
        step = request.POST.get("step", "")
        note = (request.POST.get("note-note") or "").strip()
        try:
            done = self._work(request, callback, step, note)
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
        except (DomainError, PermissionDenied) as exc:
            self.message_user(request, str(exc) or "Your role does not allow this.", messages.ERROR)
        else:
            if done:
                self.message_user(request, done, messages.SUCCESS)
        return page

    def _work(self, request, callback, step: str, note: str) -> str:
        if step == "assign":
            form = AssignForm(request.POST, agents=self._assign_choices(request, callback), prefix="assign")
            if not form.is_valid():
                raise ValidationError([f"{name}: {' '.join(errors)}" for name, errors in form.errors.items()])
            agent = form.cleaned_data["agent"]
            services.callback_assign(callback=callback, agent_id=agent.pk, by=request.user, note=note)
            return f"Assigned to {agent.email}."
        if step == "complete":
            form = CompleteForm(request.POST, prefix="complete")
            resolution = form.cleaned_data["resolution"] if form.is_valid() else ""
            services.callback_complete(callback=callback, resolution=resolution, by=request.user, note=note)
            return "Completed."
        transitions = {
            "start": (CallbackStatus.IN_PROGRESS, "Call started."),
            "no_answer": (CallbackStatus.NO_ANSWER, "No answer: the request stays in the queue."),
            "cancel": (CallbackStatus.CANCELLED, "Cancelled."),
        }
        if step in transitions:
            to_status, done = transitions[step]
            services.callback_transition(callback=callback, to_status=to_status, by=request.user, note=note)
            return done
        if step == "note":
            services.callback_add_note(callback=callback, note=note, by=request.user)
            return "Note added."
        raise ValidationError("Choose what to do with the request.")

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
        agents = assignable_agents(organization_id)
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
