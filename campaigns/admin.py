"""Campaigns, drip sequences, enrollments and the sending policy in the admin: the same services as the API."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.contrib.admin.utils import unquote
from django.contrib.admin.widgets import RelatedFieldWidgetWrapper
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from accounts.admin import OrganizationPreselectedMixin
from accounts.tenancy import Area, TenantModelAdmin
from campaigns import ab, selectors, sequences, services
from campaigns.forms import (
    CONDITION_CHOICES,
    OTHERWISE_CHOICES,
    RULES,
    SETTING_FIELDS,
    STEP_PATH,
    WEEKDAYS,
    AbWinnerForm,
    CampaignForm,
    MessageFilterForm,
    Refusal,
    SendingPolicyForm,
    SequenceForm,
    StepForm,
    StepFormSet,
    TestSendForm,
    VariantForm,
    VariantFormSet,
    campaign_error_fields,
    error_paths,
    policy_refusal,
    sequence_refusal,
)
from campaigns.models import (
    PENDING_STATUSES,
    Campaign,
    CampaignKind,
    CampaignStatus,
    CampaignVariant,
    Channel,
    Enrollment,
    EnrollmentStatus,
    Message,
    MessageStatus,
    SendingDomain,
    SendingPolicy,
    Sequence,
    SequenceStatus,
    SequenceStep,
)
from config.errors import DomainError
from contacts.models import ContactList, Segment
from templates_app.models import MessageTemplate


class NotFoundAdminMixin:
    """A row outside the staff member's organizations answers 404, as in the API (not a redirect)."""

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        raise Http404(f"No {opts.verbose_name} with this id.")


class VariantInline(admin.TabularInline):
    model = CampaignVariant
    form = VariantForm
    formset = VariantFormSet
    extra = 0
    fields = ["name", "template", "weight"]
    verbose_name = "variant"
    verbose_name_plural = "variants (A/B test, or a split of the audience by weight)"

    def _campaign_admin(self):
        return self.admin_site.get_model_admin(Campaign)

    # The variants are part of the campaign: shown where it is, editable where it is (a draft).
    def has_view_permission(self, request, obj=None):
        return self._campaign_admin().has_view_permission(request, obj)

    def has_add_permission(self, request, obj=None):
        admin_ = self._campaign_admin()
        return admin_.has_add_permission(request) if obj is None else admin_.has_change_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self.has_add_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self.has_add_permission(request, obj)

    def get_queryset(self, request):
        # Read-only rows (a launched campaign) show each variant's template and campaign: one query.
        return super().get_queryset(request).select_related("template", "campaign")

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "template" and isinstance(getattr(formfield, "widget", None), RelatedFieldWidgetWrapper):
            formfield.widget.can_delete_related = False  # a template is deleted on its own page
        return formfield


CAMPAIGN_STATE_FIELDS = [
    "status",
    "status_reason",
    "template_version",
    "recipients",
    "excluded",
    "message_counts",
    "launched_at",
    "completed_at",
]
# The workspace's buttons per status: (action, label); what is allowed is the services' decision.
CAMPAIGN_BUTTONS = {
    CampaignStatus.DRAFT: [("launch", "Launch")],
    CampaignStatus.SCHEDULED: [("pause", "Pause"), ("cancel", "Cancel")],
    CampaignStatus.RUNNING: [("pause", "Pause"), ("cancel", "Cancel")],
    CampaignStatus.PAUSED: [("resume", "Resume"), ("cancel", "Cancel")],
    CampaignStatus.COMPLETED: [],
    CampaignStatus.CANCELLED: [],
}
CAMPAIGN_SERVICES = {
    "launch": (services.campaign_launch, "launched"),
    "pause": (services.campaign_pause, "paused"),
    "resume": (services.campaign_resume, "resumed"),
    "cancel": (services.campaign_cancel, "cancelled"),
}
LIVE_STATUSES = (CampaignStatus.SCHEDULED, CampaignStatus.RUNNING, CampaignStatus.PAUSED)
RESENDABLE = (MessageStatus.FAILED, MessageStatus.UNKNOWN)
CANCELLABLE = (MessageStatus.PLANNED, MessageStatus.HELD, MessageStatus.QUEUED, MessageStatus.CLAIMED)
RECIPIENTS_PER_PAGE = 100
EXCLUSION_LABELS = {
    "no_email": "no email address",
    "no_phone": "no phone number",
    "invalid_phone": "invalid phone number",
    "unsubscribed": "unsubscribed",
    "bounced": "bounced before",
    "complained": "complained before",
    "no_consent": "no consent for the channel",
    "suppressed": "on the suppression list",
    "excluded_tag": "has a tag left out",
    "recently_contacted": "messaged recently",
}


@admin.register(Campaign)
class CampaignAdmin(NotFoundAdminMixin, OrganizationPreselectedMixin, TenantModelAdmin):
    """A broadcast campaign as a marketer's workspace: the configuration as widgets (the JSON stays the
    storage), and buttons for a dry run, a test send and each status change, all through the services."""

    permission_area = Area.CAMPAIGNS
    form = CampaignForm
    change_form_template = "admin/campaigns/campaign/change_form.html"
    list_display = ["name", "organization", "channel", "status", "recipients", "launched_at", "created_at"]
    list_filter = ["status", "channel", "organization"]
    search_fields = ["name"]
    inlines = [VariantInline]
    readonly_fields = [*CAMPAIGN_STATE_FIELDS]
    actions = ["dry_run", "launch", "pause", "resume", "cancel"]

    def get_fieldsets(self, request, obj=None):
        if obj is not None and not self.has_change_permission(request, obj):
            return [
                (None, {"fields": ["organization", "name", "channel", "template", "variables_summary"]}),
                ("Audience", {"fields": ["audience_summary"]}),
                ("Cost", {"fields": ["budget"]}),
                (
                    "Schedule and sending",
                    {"fields": ["schedule_summary", "throttle_summary", "domains_summary", "followup_summary"]},
                ),
                ("A/B test", {"fields": ["ab_summary"]}),
                ("State", {"fields": CAMPAIGN_STATE_FIELDS}),
            ]
        fieldsets = [
            (None, {"fields": ["organization", "name", "channel", "template", "variables_text"]}),
            (
                "Audience",
                {
                    "fields": [
                        "audience_lists",
                        "audience_tags",
                        "audience_segment",
                        "exclude_tags",
                        "exclude_recent_days",
                    ],
                    "description": "Everyone in the lists, with the tags, or in the segment, minus those left out "
                    "(and minus unsubscribed, bounced and suppressed contacts, always).",
                },
            ),
            (
                "Schedule",
                {
                    "fields": [
                        ("start_date", "start_time"),
                        "schedule_timezone",
                        "window_days",
                        ("window_start", "window_end"),
                        "holidays",
                        "recipient_timezone",
                    ]
                },
            ),
            (
                "Throttle",
                {"fields": ["per_domain_interval_minutes", "max_per_hour", "per_recipient_domain_per_minute"]},
            ),
            ("Sending domains", {"fields": ["domains"]}),
            (
                "Follow-up",
                {"fields": ["followup_enabled", "followup_days", "followup_criterion", "followup_template"]},
            ),
            (
                "A/B test",
                {"fields": ["ab_enabled", "ab_test_percent", "ab_metric", "ab_wait_hours", "ab_on_no_winner"]},
            ),
            ("Cost", {"fields": ["budget"]}),
        ]
        if obj is not None:
            fieldsets.append(("State", {"fields": CAMPAIGN_STATE_FIELDS}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["organization", *CAMPAIGN_STATE_FIELDS]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if request.user.is_superuser:
            return form
        return type(form.__name__, (form,), {"organization_ids": self._org_ids(request, write=True)})

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        if not request.user.is_superuser:
            writable = self._org_ids(request, write=True)
            if len(writable) == 1:
                initial.setdefault("organization", writable[0])
        return initial

    def get_queryset(self, request):
        # A sequence's own campaign is reached through its sequence, not listed among broadcasts.
        return super().get_queryset(request).exclude(kind=CampaignKind.SEQUENCE)

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.status != CampaignStatus.DRAFT:
            return False  # the page still shows; only drafts can be edited
        return super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        services.campaign_save(campaign=obj, by=request.user)

    # --- what a launched campaign's page shows instead of the widgets ---

    @admin.display(description="Messages by status")
    def message_counts(self, obj):
        if not obj.pk:
            return "-"
        counts = _status_counts(obj)
        return ", ".join(f"{MessageStatus(s).label}: {n}" for s, n in sorted(counts.items())) or "no messages yet"

    @admin.display(description="Template variables")
    def variables_summary(self, obj):
        variables = obj.variables if isinstance(obj.variables, dict) else {}
        return "; ".join(f"{key} = {value}" for key, value in variables.items()) or "-"

    @admin.display(description="Audience")
    def audience_summary(self, obj):
        return _audience_text(obj)

    @admin.display(description="Schedule")
    def schedule_summary(self, obj):
        return _schedule_text(obj)

    @admin.display(description="Throttle")
    def throttle_summary(self, obj):
        throttle = obj.throttle if isinstance(obj.throttle, dict) else {}
        parts = [
            f"{throttle[key]} {unit}"
            for key, unit in (
                ("per_domain_interval_minutes", "minutes between messages from one sending domain"),
                ("max_per_hour", "messages per hour at most"),
                ("per_recipient_domain_per_minute", "messages per minute to one recipient domain at most"),
            )
            if throttle.get(key)
        ]
        return "; ".join(parts) or "no limit"

    @admin.display(description="Sending domains")
    def domains_summary(self, obj):
        return ", ".join(obj.sending_domains or []) or "the template's or the organization's sender"

    @admin.display(description="Follow-up")
    def followup_summary(self, obj):
        followup = obj.followup if isinstance(obj.followup, dict) else {}
        if not followup.get("enabled"):
            return "none"
        template = MessageTemplate.objects.filter(
            organization_id=obj.organization_id, pk=_uuid(followup.get("template"))
        ).first()
        who = "did not click" if followup.get("criterion") == "not_clicked" else "did not open"
        return f"{template or '?'} after {followup.get('days')} days, to those who {who}"

    @admin.display(description="A/B test")
    def ab_summary(self, obj):
        ab_test = obj.ab_test if isinstance(obj.ab_test, dict) else {}
        if not ab_test:
            return "none"
        fraction = ab_test.get("test_fraction") or 0
        return (
            f"{fraction:.0%} of the audience, winner by {AB_METRICS.get(ab_test.get('metric'), ab_test.get('metric'))} "
            f"after {ab_test.get('wait_hours')} hours; without a significant winner: "
            f"{'split by weight' if ab_test.get('on_no_winner') == 'split' else 'the first variant'}"
        )

    # --- list actions (the page's buttons do the same, one campaign at a time, with a confirmation) ---

    def _each(self, request, queryset, service, done: str):
        _apply_each(self, request, queryset, lambda c: service(campaign=c, by=request.user), lambda c: c.name, done)

    @admin.action(description="Dry run: recipients and schedule, nothing written")
    def dry_run(self, request, queryset):
        for campaign in queryset:
            try:
                result = services.campaign_dry_run(campaign=campaign)
            except (ValidationError, DomainError) as exc:
                self.message_user(request, f"{campaign.name}: {_describe(exc)}", messages.ERROR)
                continue
            zone = _campaign_zone(campaign)
            self.message_user(
                request,
                f"{campaign.name}: {result['recipients']} recipients; first send "
                f"{_local(result['first_send_at'], zone)}, last send {_local(result['last_send_at'], zone)}. "
                "The campaign's page has the full dry run.",
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

    # --- the workspace: pages and buttons around one campaign ---

    def get_urls(self):
        def view(function, suffix: str, route: str):
            return path(route, self.admin_site.admin_view(function), name=f"campaigns_campaign_{suffix}")

        return [
            view(self.ab_winner_view, "ab_winner", "<path:object_id>/ab-winner/"),
            view(self.budget_view, "budget", "<path:object_id>/budget/"),
            view(self.dry_run_view, "dry_run", "<path:object_id>/dry-run/"),
            view(self.test_send_view, "test_send", "<path:object_id>/test-send/"),
            view(self.figures_view, "figures", "<path:object_id>/figures/"),
            view(self.recipients_view, "recipients", "<path:object_id>/recipients/"),
            view(self.resend_view, "resend", "<path:object_id>/recipients/<int:message_id>/resend/"),
            view(self.status_view, "status", "<path:object_id>/status/<str:action>/"),
            *super().get_urls(),
        ]

    def _may_run(self, request, campaign: Campaign) -> bool:
        """Whether the staff member may act on this campaign once launched (its form is read-only then)."""
        return super().has_change_permission(request, campaign)

    def _campaign(self, request, object_id, *, act: bool = False) -> Campaign:
        """The campaign the staff member may see (404 otherwise); with `act`, one they may run (403)."""
        campaign = self.get_object(request, unquote(object_id))
        if campaign is None:
            raise Http404("No campaign with this id.")
        if act and not self._may_run(request, campaign):
            raise PermissionDenied
        return campaign

    def _page(self, request, campaign: Campaign, template: str, title: str, **context) -> TemplateResponse:
        return TemplateResponse(
            request,
            f"admin/campaigns/campaign/{template}",
            {
                **self.admin_site.each_context(request),
                "title": title,
                "opts": self.opts,
                "campaign": campaign,
                "change_url": reverse("admin:campaigns_campaign_change", args=[campaign.pk]),
                **context,
            },
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        campaign = self.get_object(request, unquote(object_id))
        extra = dict(extra_context or {})
        if campaign is not None and campaign.ab_test:
            extra["ab"] = _ab_panel(campaign, may_pick=self._may_run(request, campaign))
        if campaign is not None:
            extra["analytics"] = self._analytics_panel(request, campaign)
            extra["workspace"] = self._workspace(request, campaign)
        return super().change_view(request, object_id, form_url, extra)

    def _workspace(self, request, campaign: Campaign) -> dict[str, Any]:
        may_run = self._may_run(request, campaign)
        draft = campaign.status == CampaignStatus.DRAFT
        buttons = []
        if draft and may_run:  # as in the API, a dry run is for those who may launch
            buttons.append({"label": "Dry run", "url": reverse("admin:campaigns_campaign_dry_run", args=[campaign.pk])})
        if draft and may_run and campaign.channel == Channel.EMAIL:
            buttons.append(
                {"label": "Send a test", "url": reverse("admin:campaigns_campaign_test_send", args=[campaign.pk])}
            )
        if may_run:
            buttons += [
                {"label": label, "url": reverse("admin:campaigns_campaign_status", args=[campaign.pk, action])}
                for action, label in CAMPAIGN_BUTTONS[campaign.status]
            ]
        return {
            "buttons": buttons,
            "figures": _figures(campaign),
            "figures_url": reverse("admin:campaigns_campaign_figures", args=[campaign.pk]),
            "recipients_url": None if draft else reverse("admin:campaigns_campaign_recipients", args=[campaign.pk]),
        }

    def figures_view(self, request, object_id):
        """The figures panel alone, for the page's polling while the campaign runs."""
        campaign = self._campaign(request, object_id)
        return TemplateResponse(
            request, "admin/campaigns/campaign/figures.html", {"workspace": self._workspace(request, campaign)}
        )

    def dry_run_view(self, request, object_id):
        """What launching now would do: recipients, exclusions, per day (with a chart) and per domain."""
        campaign = self._campaign(request, object_id, act=True)
        try:
            result = services.campaign_dry_run(campaign=campaign)
        except (ValidationError, DomainError) as exc:
            return self._page(request, campaign, "dry_run.html", f"Dry run of {campaign.name}", problems=_lines(exc))
        return self._page(
            request, campaign, "dry_run.html", f"Dry run of {campaign.name}", dry_run=_dry_run_display(campaign, result)
        )

    def test_send_view(self, request, object_id):
        """GET: the addresses form; POST: queue the test through the service, its refusal on the form."""
        campaign = self._campaign(request, object_id, act=True)
        form = TestSendForm(request.POST or None)
        problems: list[str] = []
        if request.method == "POST" and form.is_valid():
            try:
                sent_to = services.campaign_test_send_queue(campaign=campaign, emails=form.addresses())
            except (ValidationError, DomainError) as exc:
                for key, texts in error_paths(exc).items():
                    if key == "emails":
                        form.add_error("emails", texts)
                    else:
                        problems += texts
            else:
                self.message_user(
                    request, f"{campaign.name}: a test is on its way to {', '.join(sent_to)}.", messages.SUCCESS
                )
                return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))
        return self._page(
            request,
            campaign,
            "test_send.html",
            f"Send a test of {campaign.name}",
            form=form,
            problems=problems,
            action_url=reverse("admin:campaigns_campaign_test_send", args=[campaign.pk]),
        )

    def status_view(self, request, object_id, action):
        """GET: what the change would do (for a launch, the dry run's recipients and send times) and a
        confirm button; POST: the change, through the service, its refusal a message on the page."""
        if action not in CAMPAIGN_SERVICES:
            raise Http404("No such action.")
        campaign = self._campaign(request, object_id, act=True)
        page = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
        service, done = CAMPAIGN_SERVICES[action]
        if request.method == "POST":
            try:
                service(campaign=campaign, by=request.user)
            except (ValidationError, DomainError) as exc:
                self.message_user(request, f"{campaign.name}: {_describe(exc)}", messages.ERROR)
            else:
                self.message_user(request, f"{campaign.name}: {done}.", messages.SUCCESS)
            return HttpResponseRedirect(page)
        context: dict[str, Any] = {"action": action, "action_label": action.capitalize(), "problems": []}
        if action == "launch":
            try:
                context["dry_run"] = _dry_run_display(campaign, services.campaign_dry_run(campaign=campaign))
                # What the launch itself checks beyond a dry run (an audience, a template, verified senders).
                services.campaign_validate(campaign=campaign, for_launch=True)
                services.campaign_check_senders(campaign=campaign)
            except (ValidationError, DomainError) as exc:
                context["problems"] = _lines(exc)
        else:
            counts = _status_counts(campaign)
            context["queued"] = counts.get(MessageStatus.QUEUED, 0)
            context["cancellable"] = sum(counts.get(status, 0) for status in CANCELLABLE)
            context["pending"] = sum(counts.get(status, 0) for status in PENDING_STATUSES)
        return self._page(
            request,
            campaign,
            "status_confirm.html",
            f"{action.capitalize()} {campaign.name}?",
            action_url=reverse("admin:campaigns_campaign_status", args=[campaign.pk, action]),
            **context,
        )

    def recipients_view(self, request, object_id):
        """The campaign's messages: filter by status, search by address, a page at a time; failed and
        unknown ones can be resent."""
        campaign = self._campaign(request, object_id)
        filters = MessageFilterForm(request.GET or None)
        rows = Message.objects.filter(campaign=campaign).select_related("variant").order_by("id")
        if filters.is_valid():
            if filters.cleaned_data["status"] is not None:
                rows = rows.filter(status=filters.cleaned_data["status"])
            if filters.cleaned_data["q"]:
                rows = rows.filter(to_address__icontains=filters.cleaned_data["q"].strip())
        page = Paginator(rows, RECIPIENTS_PER_PAGE).get_page(request.GET.get("page"))
        may_resend = self._may_run(request, campaign)
        query = request.GET.copy()
        query.pop("page", None)
        return self._page(
            request,
            campaign,
            "recipients.html",
            f"Recipients of {campaign.name}",
            filters=filters,
            page=page,
            query=query.urlencode(),
            messages_shown=[
                {
                    "message": message,
                    "status": MessageStatus(message.status).label,
                    "resend_url": reverse("admin:campaigns_campaign_resend", args=[campaign.pk, message.pk])
                    if may_resend and message.status in RESENDABLE
                    else None,
                }
                for message in page.object_list
            ],
            next_url=request.get_full_path(),
        )

    def resend_view(self, request, object_id, message_id):
        """POST: send a failed or unknown message again (the service decides), back to the list."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        campaign = self._campaign(request, object_id, act=True)
        message = Message.objects.filter(campaign=campaign, pk=message_id).first()
        if message is None:
            raise Http404("No message with this id in this campaign.")
        try:
            services.message_resend(message=message, by=request.user)
        except (ValidationError, DomainError) as exc:
            self.message_user(request, f"{message.to_address}: {_describe(exc)}", messages.ERROR)
        else:
            self.message_user(request, f"{message.to_address}: queued to be sent again.", messages.SUCCESS)
        back = request.POST.get("next", "")
        recipients = reverse("admin:campaigns_campaign_recipients", args=[campaign.pk])
        return HttpResponseRedirect(back if back.startswith(recipients) else recipients)

    # --- analytics, the budget and the A/B winner ---

    def _analytics_panel(self, request, campaign: Campaign) -> dict[str, Any]:
        """What the page needs for the campaign's analytics (KPIs, rates, revenue, budget and ROI, the daily
        chart, the links; rendered by the analytics app's `campaign_report` tag) once launched, with a form
        for its budget (cost accounting, changed in any status); a note on a draft."""
        if campaign.status == CampaignStatus.DRAFT:
            return {"draft": True}
        budget_url = None
        if self._may_run(request, campaign):
            budget_url = reverse("admin:campaigns_campaign_budget", args=[campaign.pk])
        return {"campaign": campaign, "budget_url": budget_url}

    def budget_view(self, request, object_id):
        """POST `budget` (empty: unknown): set what the campaign cost, whatever its status."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        campaign = self._campaign(request, object_id, act=True)
        page = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
        form = BudgetForm(request.POST)
        if not form.is_valid():
            problems = " ".join(problem for problems in form.errors.values() for problem in problems)
            self.message_user(request, f"{campaign.name}: budget: {problems}", messages.ERROR)
            return HttpResponseRedirect(page)
        try:
            services.campaign_budget_set(campaign=campaign, budget=form.cleaned_data["budget"], by=request.user)
        except ValidationError as exc:
            self.message_user(request, f"{campaign.name}: {_describe(exc)}", messages.ERROR)
        else:
            shown = "not set" if campaign.budget is None else f"{campaign.budget:.2f}"
            self.message_user(request, f"{campaign.name}: budget {shown}.", messages.SUCCESS)
        return HttpResponseRedirect(page)

    def ab_winner_view(self, request, object_id):
        """POST: ask to confirm the picked variant; POST with `confirm`: decide through the service."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        campaign = self._campaign(request, object_id, act=True)
        page = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
        form = AbWinnerForm(request.POST, campaign=campaign)
        if not form.is_valid():
            self.message_user(request, f"{campaign.name}: {form.problems()}", messages.ERROR)
            return HttpResponseRedirect(page)
        winner = form.winner()
        if not form.cleaned_data["confirm"]:
            context = {
                **self.admin_site.each_context(request),
                "title": f"Pick variant {winner.name} as the winner?",
                "opts": self.opts,
                "campaign": campaign,
                "variant": winner,
                "ab": _ab_panel(campaign, may_pick=False),
                "action_url": reverse("admin:campaigns_campaign_ab_winner", args=[campaign.pk]),
                "change_url": page,
            }
            return TemplateResponse(request, "admin/campaigns/campaign/ab_winner_confirm.html", context)
        try:
            ab.campaign_ab_decide(campaign=campaign, variant=winner, by=request.user)
        except (ValidationError, DomainError) as exc:
            self.message_user(request, f"{campaign.name}: {_describe(exc)}", messages.ERROR)
        else:
            self.message_user(
                request,
                f"{campaign.name}: variant {winner.name} picked as the winner; the held messages are sent with it.",
                messages.SUCCESS,
            )
        return HttpResponseRedirect(page)


class BudgetForm(forms.Form):
    budget = forms.DecimalField(required=False, min_value=0, max_digits=14, decimal_places=2)


AB_METRICS = {"open_rate": "open rate", "click_rate": "click rate"}
AB_PICKABLE = (CampaignStatus.SCHEDULED, CampaignStatus.RUNNING, CampaignStatus.PAUSED)


def _when(value: str | datetime | None) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return timezone.localtime(moment)


def _ab_panel(campaign: Campaign, *, may_pick: bool) -> dict[str, Any]:
    """The campaign's A/B state (as the API's stats give it), shaped for the admin page."""
    state = ab.campaign_ab_state(campaign)
    decided = state["status"] == "decided"
    p_value, z = state["p_value"], state["z"]
    if decided and state["winner"] is None:
        winner = "none: the rest is split by the variants' weights"
    else:
        winner = state["winner"] or "-"
    return {
        "status": state["status"],
        "metric": AB_METRICS.get(state["metric"], state["metric"]),
        "test_fraction": f"{state['test_fraction']:.0%}" if state["test_fraction"] is not None else "-",
        "test_size": state["test_size"],
        "held": state["held"],
        "wait_hours": f"{state['wait_hours']:g}",
        "decision_due_at": _when(state["decision_due_at"]),
        "on_no_winner": state["on_no_winner"],
        "winner": winner,
        "leader": state["leader"] or "-",
        "p_value": "-" if p_value is None else f"{p_value:.4g}",
        "z": "-" if z is None else f"{z:.2f}",
        "significant": "yes" if state["significant"] else "no",
        "decided_at": _when(state["decided_at"]),
        "decided_by": state["decided_by"] or "-",
        "per_variant": [{**row, "rate": f"{row['rate']:.1%}"} for row in state["per_variant"]],
        "may_pick": may_pick and not decided and campaign.status in AB_PICKABLE,
        "pick_url": reverse("admin:campaigns_campaign_ab_winner", args=[campaign.pk]),
    }


def _uuid(value):
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None


def _lines(exc: ValidationError | DomainError) -> list[str]:
    """A service's refusal as sentences naming their field, for a page that has no widgets for them."""
    return [
        problem if key in (NON_FIELD_ERRORS, None) else f"{CAMPAIGN_FIELD_NAMES.get(key, key)}: {problem}"
        for key, problems in campaign_error_fields(exc).items()
        for problem in problems
    ]


CAMPAIGN_FIELD_NAMES = {name: CampaignForm.base_fields[name].label for name in CampaignForm.base_fields}


def _campaign_zone(campaign: Campaign) -> ZoneInfo:
    schedule = campaign.schedule if isinstance(campaign.schedule, dict) else {}
    for name in (schedule.get("timezone"), campaign.organization.timezone, "UTC"):
        try:
            return ZoneInfo(name)
        except (TypeError, ValueError, ZoneInfoNotFoundError):
            continue
    return ZoneInfo("UTC")


def _local(value: str | None, zone: ZoneInfo) -> str:
    """An ISO date-time from a service as the campaign's local time, with its zone named."""
    if not value:
        return "-"
    return f"{datetime.fromisoformat(value).astimezone(zone):%Y-%m-%d %H:%M} ({zone.key})"


def _dry_run_display(campaign: Campaign, result: dict[str, Any]) -> dict[str, Any]:
    """The dry run's figures shaped for the page: local times, labelled exclusions, rows per day and domain."""
    zone = _campaign_zone(campaign)
    cost = result.get("estimated_cost")
    return {
        "recipients": result["recipients"],
        "first_send_at": _local(result["first_send_at"], zone),
        "last_send_at": _local(result["last_send_at"], zone),
        "excluded": [
            {"reason": EXCLUSION_LABELS.get(reason, reason.replace("_", " ")), "count": count}
            for reason, count in result["excluded"].items()
        ],
        "excluded_total": sum(result["excluded"].values()),
        "per_day": result["per_day"],
        "per_domain": result["per_domain"],
        "cost": cost,
        "timezone": zone.key,
    }


def _status_counts(campaign: Campaign) -> dict[int, int]:
    """Messages of the campaign by status, in one GROUP BY."""
    rows = Message.objects.filter(campaign=campaign).values("status").annotate(n=Count("id")).order_by()
    return {row["status"]: row["n"] for row in rows}


SENT_OR_LATER = (
    MessageStatus.SENT,
    MessageStatus.DELIVERED,
    MessageStatus.OPENED,
    MessageStatus.CLICKED,
    MessageStatus.BOUNCED,
    MessageStatus.COMPLAINED,
)


def _figures(campaign: Campaign) -> dict[str, Any]:
    """The live panel's figures: status, recipients, and messages by status."""
    counts = _status_counts(campaign)
    zone = _campaign_zone(campaign)
    return {
        "status": campaign.get_status_display(),
        "status_value": campaign.status,
        "status_reason": campaign.status_reason,
        "live": campaign.status in LIVE_STATUSES,
        "recipients": campaign.recipients,
        "starts_at": campaign.starts_at.astimezone(zone).strftime("%Y-%m-%d %H:%M") if campaign.starts_at else None,
        "timezone": zone.key,
        "pending": sum(counts.get(status, 0) for status in PENDING_STATUSES),
        "sent": sum(counts.get(status, 0) for status in SENT_OR_LATER),
        "problems": sum(counts.get(status, 0) for status in RESENDABLE),
        "failed_status": MessageStatus.FAILED.value,
        "by_status": [{"value": s, "label": MessageStatus(s).label, "count": n} for s, n in sorted(counts.items())],
    }


def _audience_text(campaign: Campaign) -> str:
    audience = campaign.audience if isinstance(campaign.audience, dict) else {}
    org = campaign.organization_id
    parts = []
    list_ids = [pk for pk in map(_uuid, audience.get("lists") or []) if pk]
    if list_ids:
        names = ContactList.objects.filter(organization_id=org, pk__in=list_ids).values_list("name", flat=True)
        parts.append("lists: " + ", ".join(sorted(names)))
    if audience.get("tags"):
        parts.append("tags: " + ", ".join(map(str, audience["tags"])))
    segment = _uuid(audience.get("segment"))
    if segment:
        found = Segment.objects.filter(organization_id=org, pk=segment).values_list("name", flat=True).first()
        parts.append(f"segment: {found or '?'}")
    if audience.get("exclude_tags"):
        parts.append("leaving out tags: " + ", ".join(map(str, audience["exclude_tags"])))
    if audience.get("exclude_recent_days"):
        parts.append(f"leaving out contacts messaged in the last {audience['exclude_recent_days']} days")
    return "; ".join(parts) or "nobody chosen"


def _schedule_text(campaign: Campaign) -> str:
    schedule = campaign.schedule if isinstance(campaign.schedule, dict) else {}
    zone = _campaign_zone(campaign)
    parts = [f"starts {_local(schedule['start_at'], zone)}" if schedule.get("start_at") else "starts at launch"]
    parts.append(f"time zone {zone.key}")
    window = schedule.get("window") if isinstance(schedule.get("window"), dict) else None
    if window:
        days = dict(WEEKDAYS)
        named = ", ".join(days[d][:3] for d in window.get("days") or range(7) if d in days)
        parts.append(f"{named} {window.get('start')}-{window.get('end')}")
    else:
        parts.append("any day, any time")
    if schedule.get("holidays"):
        parts.append("holidays: " + ", ".join(map(str, schedule["holidays"])))
    if schedule.get("recipient_timezone"):
        parts.append("in each recipient's time zone")
    return "; ".join(parts)


@admin.register(SendingDomain)
class SendingDomainAdmin(OrganizationPreselectedMixin, TenantModelAdmin):
    """The organization's sending domains; verified through DNS, or confirmed by the platform operator."""

    permission_area = Area.ORGANIZATION
    list_display = ["domain", "organization", "status", "method", "verified_at", "last_checked_at"]
    list_filter = ["status", "organization"]
    search_fields = ["domain"]
    actions = ["verify_now", "confirm_verified"]
    readonly_fields = [
        "status",
        "method",
        "dns_record",
        "verified_at",
        "verified_by",
        "last_checked_at",
        "last_check_error",
        "created_at",
    ]
    fields = ["organization", "domain", *readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        # The domain is what was verified: it cannot change afterwards (add another one instead).
        return [*self.readonly_fields, "organization", "domain"] if obj is not None else self.readonly_fields

    @admin.display(description="DNS TXT record to publish")
    def dns_record(self, obj):
        if not obj.pk:
            return "shown once the domain is saved"
        return f"{obj.txt_value}  (TXT at {' or '.join(obj.txt_names)})"

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)

        class SendingDomainForm(form):
            def clean(self):
                cleaned = super().clean()
                organization, domain = cleaned.get("organization"), cleaned.get("domain")
                if self.instance._state.adding and organization is not None and domain:
                    cleaned["domain"] = services.sending_domain_clean(organization=organization, domain=domain)
                return cleaned

        return SendingDomainForm

    def save_model(self, request, obj, form, change):
        if change:
            return  # nothing on a saved domain is editable here
        created = services.sending_domain_add(organization=obj.organization, domain=obj.domain, by=request.user)
        obj.pk, obj.domain = created.pk, created.domain
        obj._state.adding = False

    def has_delete_permission(self, request, obj=None):
        if obj is not None and selectors.sending_domain_users(sending_domain=obj):
            return False  # campaigns under way send from it
        return super().has_delete_permission(request, obj)

    def delete_model(self, request, obj):
        services.sending_domain_delete(sending_domain=obj, by=request.user)

    def delete_queryset(self, request, queryset):
        for sending_domain in queryset:
            try:
                services.sending_domain_delete(sending_domain=sending_domain, by=request.user)
            except DomainError as exc:
                self.message_user(request, str(exc), messages.ERROR)

    def _each(self, request, queryset, service, done: str):
        _apply_each(
            self, request, queryset, lambda d: service(sending_domain=d, by=request.user), lambda d: d.domain, done
        )

    @admin.action(description="Verify now (check the DNS TXT record)")
    def verify_now(self, request, queryset):
        self._each(request, queryset, services.sending_domain_verify, "verified")

    @admin.action(description="Confirm as verified (platform operator only)")
    def confirm_verified(self, request, queryset):
        self._each(request, queryset, services.sending_domain_confirm, "confirmed as verified")


def _apply_each(model_admin, request, queryset, act, label, done: str) -> None:
    """Run an admin action's service on each selected row; a refusal is a message on the page, never a 500."""
    for obj in queryset:
        try:
            act(obj)
        except (ValidationError, DomainError) as exc:
            message = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            model_admin.message_user(request, f"{label(obj)}: {message}", messages.ERROR)
        else:
            model_admin.message_user(request, f"{label(obj)}: {done}.")


# --- Drip sequences ------------------------------------------------------------------------------------------


class RefusalAdminMixin(NotFoundAdminMixin):
    """Saves through a service; what it refuses is shown on the form, with the data as submitted.

    `save_related` (or `save_model`) raises `_Refused` with the service's errors placed by field. The
    admin's transaction is rolled back and the page is built again from the submitted data, the errors
    on the fields (and inline rows) they name."""

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except _Refused as refused:
            request._campaigns_admin_refusal = refused.refusal
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except _Refused as refused:  # nothing on the form took the errors: say them on the page
            self.message_user(request, _refusal_text(refused.refusal), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        refusal = getattr(request, "_campaigns_admin_refusal", None)
        return form if refusal is None else type(form.__name__, (form,), {"refusal": refusal})


class _Refused(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal)
        self.refusal = refusal


def _refusal_text(refusal: Refusal) -> str:
    texts = [problem for problems in refusal.form.values() for problem in problems] + refusal.steps
    texts += [problem for row in refusal.rows.values() for problems in row.values() for problem in problems]
    return " ".join(texts) or "The change was refused."


def _describe(exc: ValidationError | DomainError) -> str:
    """A service's refusal as one sentence for a page message ("Step 2, template: ...")."""
    parts = []
    for key, problems in error_paths(exc).items():
        step = STEP_PATH.match(key)
        if step is not None:
            where = f"Step {int(step[1]) + 1}" + (f", {step[2]}" if step[2] else "")
        else:
            where = "" if key in (NON_FIELD_ERRORS, "steps") else key
        parts += [f"{where}: {problem}" if where else problem for problem in problems]
    return " ".join(parts)


class StepInline(admin.TabularInline):
    model = SequenceStep
    form = StepForm
    formset = StepFormSet
    fields = ["order", "delay_value", "delay_unit", "template", "condition_type", "otherwise", "condition_rules"]
    shown_fields = ["order", "delay", "template", "condition_text"]
    ordering = ["order"]
    verbose_name = "step"
    verbose_name_plural = "steps"

    def _sequence_admin(self):
        return self.admin_site.get_model_admin(Sequence)

    # The steps are part of the sequence: shown on a sequence page the tenancy allowed, editable when it is.
    def has_view_permission(self, request, obj=None):
        return True

    def has_add_permission(self, request, obj=None):
        return obj is not None and self._sequence_admin().has_change_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self.has_add_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self.has_add_permission(request, obj)

    def get_fields(self, request, obj=None):
        return self.fields if self.has_change_permission(request, obj) else self.shown_fields

    def get_readonly_fields(self, request, obj=None):
        return [] if self.has_change_permission(request, obj) else self.shown_fields

    def get_extra(self, request, obj=None, **kwargs):
        if not self.has_add_permission(request, obj):
            return 0
        return 0 if obj.steps.exists() else 3

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("template")

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "template" and isinstance(getattr(formfield, "widget", None), RelatedFieldWidgetWrapper):
            formfield.widget.can_delete_related = False  # a template is deleted on its own page, not from a step
        return formfield

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        refusal = getattr(request, "_campaigns_admin_refusal", None)
        return formset if refusal is None else type(formset.__name__, (formset,), {"refusal": refusal})

    @admin.display(description="Wait")
    def delay(self, obj):
        return f"{obj.delay_value} {obj.get_delay_unit_display()}"

    @admin.display(description="Condition")
    def condition_text(self, obj):
        return _condition_text(obj.condition)


def _condition_text(condition: dict) -> str:
    if not condition:
        return "Always"
    labels = dict(CONDITION_CHOICES)
    kind = labels[RULES] if "rules" in condition else labels.get(condition.get("type"), condition.get("type"))
    otherwise = dict(OTHERWISE_CHOICES).get(condition.get("otherwise", "skip"), "")
    return f"{kind}; otherwise: {otherwise.lower()}"


def _enrollment_count(status: str):
    counted = (
        Enrollment.objects.filter(sequence=OuterRef("pk"), status=status)
        .order_by()
        .values("sequence")
        .annotate(n=Count("id"))
        .values("n")[:1]
    )
    # A scalar subquery in the SELECT list: counted for the rows on the page, not for the whole table.
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


STAT_COLUMNS = ("sent", "opened", "clicked", "replied", "stopped")
# Which status buttons a sequence's page offers; the services decide what is allowed.
STATUS_BUTTONS = {
    SequenceStatus.DRAFT: [("activate", "Activate"), ("archive", "Archive")],
    SequenceStatus.ACTIVE: [("pause", "Pause"), ("archive", "Archive")],
    SequenceStatus.PAUSED: [("activate", "Resume"), ("archive", "Archive")],
    SequenceStatus.ARCHIVED: [],
}
STATUS_SERVICES = {
    "activate": (sequences.sequence_activate, "activated"),
    "pause": (sequences.sequence_pause, "paused"),
    "archive": (sequences.sequence_archive, "archived; its active enrollments were stopped"),
}


@admin.register(Sequence)
class SequenceAdmin(RefusalAdminMixin, OrganizationPreselectedMixin, TenantModelAdmin):
    """Drip sequences: trigger, settings and steps as plain widgets, saved through `sequences.sequence_save`."""

    permission_area = Area.CAMPAIGNS
    form = SequenceForm
    list_display = ["name", "channel", "trigger", "status", "active_count", "completed_count", "stopped_count"]
    list_filter = ["status", "channel", "trigger_type", "organization"]
    search_fields = ["name"]
    list_select_related = ["organization"]
    actions = ["activate", "pause", "archive"]
    change_form_template = "admin/campaigns/sequence/change_form.html"

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                active_n=_enrollment_count(EnrollmentStatus.ACTIVE),
                completed_n=_enrollment_count(EnrollmentStatus.COMPLETED),
                stopped_n=_enrollment_count(EnrollmentStatus.STOPPED),
            )
        )

    # --- the form ---

    def get_fieldsets(self, request, obj=None):
        editable = obj is None or self.has_change_permission(request, obj)
        main = ["organization", "name", "channel"] + (["status"] if obj is not None else [])
        fieldsets = [
            (None, {"fields": main}),
            (
                "Trigger",
                {"fields": ["trigger_type", "trigger_value"] if editable else ["trigger"]},
            ),
            ("Settings", {"fields": list(SETTING_FIELDS) if editable else ["settings_text"]}),
        ]
        if obj is None:
            fieldsets.append(("Steps", {"fields": [], "description": "Save the sequence first, then add its steps."}))
        else:
            fieldsets.append(("Enrollments and results", {"fields": ["enrollment_summary", "step_stats"]}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["organization", "status", "trigger", "settings_text", "enrollment_summary", "step_stats"]

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        if not request.user.is_superuser:
            writable = self._org_ids(request, write=True)
            if len(writable) == 1:
                initial.setdefault("organization", writable[0])
        return initial

    def get_inlines(self, request, obj):
        return [StepInline] if obj is not None else []

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.status == SequenceStatus.ARCHIVED:
            return False  # shown, never changed
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.status != SequenceStatus.DRAFT:
            return False  # archive it instead
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        pass  # saved with its steps, in one service call, by save_related

    def save_related(self, request, form, formsets, change):
        steps_formset = next((f for f in formsets if isinstance(f, StepFormSet)), None)
        kept = steps_formset.kept_forms() if steps_formset is not None else []
        try:
            sequences.sequence_save(
                sequence=form.instance,
                trigger=form.trigger(),
                settings=form.sequence_settings(),
                steps=None if steps_formset is None else [row.step(order) for order, row in enumerate(kept, start=1)],
                by=request.user,
            )
        except (ValidationError, DomainError) as exc:
            refusal = sequence_refusal(exc, step_prefixes=[row.prefix for row in kept])
            if steps_formset is None and refusal.steps:  # no steps on the page to show them on
                refusal.add(None, refusal.steps)
            raise _Refused(refusal) from None

    def construct_change_message(self, request, form, formsets, add=False):
        # The steps are replaced by the service, not saved row by row through the formset.
        message = super().construct_change_message(request, form, [], add)
        if not add and any(formset.has_changed() for formset in formsets):
            message.append({"changed": {"fields": ["steps"]}})
        return message

    def response_add(self, request, obj, post_url_continue=None):
        # Steps are added on the sequence's own page, where templates of its channel are offered.
        if "_addanother" not in request.POST and IS_POPUP_VAR not in request.POST:
            request.POST = request.POST.copy()
            request.POST["_continue"] = 1
        return super().response_add(request, obj, post_url_continue)

    def delete_model(self, request, obj):
        sequences.sequence_delete(sequence=obj)

    def delete_queryset(self, request, queryset):
        if queryset.exclude(pk__in=_writable(self, request, queryset).values("pk")).exists():
            raise PermissionDenied  # rows the staff member may only read
        # Only drafts get this far (see has_delete_permission); one that went live since the confirmation
        # page makes the service refuse, which rolls back the whole deletion and is shown on the page.
        for sequence in queryset:
            sequences.sequence_delete(sequence=sequence)

    # --- what the pages show ---

    @admin.display(description="Trigger", ordering="trigger_type")
    def trigger(self, obj):
        label = obj.get_trigger_type_display()
        return f"{label}: {obj.trigger_value}" if obj.trigger_value else label

    @admin.display(description="Active", ordering="active_n")
    def active_count(self, obj):
        return obj.active_n

    @admin.display(description="Completed", ordering="completed_n")
    def completed_count(self, obj):
        return obj.completed_n

    @admin.display(description="Stopped", ordering="stopped_n")
    def stopped_count(self, obj):
        return obj.stopped_n

    @admin.display(description="Settings")
    def settings_text(self, obj):
        values = {**sequences.DEFAULT_SETTINGS, **(obj.settings or {})}
        cap = values["max_new_per_day"]
        return "; ".join(
            [
                f"stop on reply: {'yes' if values['stop_on_reply'] else 'no'}",
                f"business hours: {'yes' if values['respect_business_hours'] else 'no'}",
                f"re-entry: {'yes' if values['allow_reentry'] else 'no'}",
                f"new contacts per day: {cap if cap is not None else 'no limit'}",
            ]
        )

    @admin.display(description="Enrollments")
    def enrollment_summary(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        counts = sequences.enrollment_counts(sequence=obj)
        listing = reverse("admin:campaigns_enrollment_changelist")
        links = format_html_join(
            " · ",
            '<a href="{}?sequence__id__exact={}&amp;status__exact={}">{}: {}</a>',
            ((listing, obj.pk, status.value, status.label, counts.get(status.value, 0)) for status in EnrollmentStatus),
        )
        waiting = counts.get("waiting", 0)
        if waiting:
            return format_html("{} ({} waiting for the daily limit)", links, waiting)
        return links

    @admin.display(description="Per step")
    def step_stats(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        rows = sequences.sequence_stats(sequence=obj)
        if not rows:
            return "No steps yet."
        names = dict(obj.steps.values_list("order", "template__name"))
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((row["step"], names.get(row["step"], ""), *(row[key] for key in STAT_COLUMNS)) for row in rows),
        )
        return format_html(
            '<table class="sequence-stats"><thead><tr><th>Step</th><th>Template</th><th>Sent</th><th>Opened</th>'
            "<th>Clicked</th><th>Replied</th><th>Stopped here</th></tr></thead><tbody>{}</tbody></table>",
            body,
        )

    # --- status: buttons on the page and list actions, through the services ---

    def get_urls(self):
        return [
            path(
                "<path:object_id>/<str:action>/status/",
                self.admin_site.admin_view(self.status_view),
                name="campaigns_sequence_status",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        buttons = []
        if obj is not None and self.has_change_permission(request, obj):
            buttons = [
                {"label": label, "url": reverse("admin:campaigns_sequence_status", args=[obj.pk, action])}
                for action, label in STATUS_BUTTONS[obj.status]
            ]
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "status_buttons": buttons})

    def status_view(self, request, object_id, action):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if action not in STATUS_SERVICES:
            raise Http404("No such action.")
        sequence = self.get_object(request, unquote(object_id))
        if sequence is None:
            raise Http404("No sequence with this id.")
        if not self.has_change_permission(request, sequence):
            raise PermissionDenied
        service, done = STATUS_SERVICES[action]
        self._change_status(request, sequence, service, done)
        return HttpResponseRedirect(reverse("admin:campaigns_sequence_change", args=[sequence.pk]))

    def _change_status(self, request, sequence, service, done: str) -> None:
        try:
            service(sequence=sequence, by=request.user)
        except (ValidationError, DomainError) as exc:
            self.message_user(request, f"{sequence.name}: {_describe(exc)}", messages.ERROR)
        else:
            self.message_user(request, f"{sequence.name}: {done}.", messages.SUCCESS)

    def _each(self, request, queryset, action: str) -> None:
        service, done = STATUS_SERVICES[action]
        for sequence in _writable(self, request, queryset):
            self._change_status(request, sequence, service, done)

    @admin.action(description="Activate (or resume) the selected sequences", permissions=["change"])
    def activate(self, request, queryset):
        self._each(request, queryset, "activate")

    @admin.action(description="Pause the selected sequences", permissions=["change"])
    def pause(self, request, queryset):
        self._each(request, queryset, "pause")

    @admin.action(description="Archive the selected sequences (stops their enrollments)", permissions=["change"])
    def archive(self, request, queryset):
        self._each(request, queryset, "archive")


def _writable(model_admin, request, queryset):
    """The selected rows the staff member may change (the list also shows rows they may only read)."""
    if request.user.is_superuser:
        return queryset
    return queryset.filter(organization__in=model_admin._org_ids(request, write=True))


# --- Enrollments ----------------------------------------------------------------------------------------------

STOP_AT_ONCE = 1000  # enrollments one "Stop" action handles; more: archive the sequence instead


@admin.register(Enrollment)
class EnrollmentAdmin(NotFoundAdminMixin, TenantModelAdmin):
    """Who is in which sequence, how far, and why they left; the one write is "Stop"."""

    permission_area = Area.CAMPAIGNS
    list_display = [
        "contact_email",
        "sequence",
        "status",
        "stop_reason",
        "current_step",
        "next_message_at",
        "entered_at",
        "exited_at",
    ]
    list_filter = ["sequence", "status", "stop_reason", "organization"]
    search_fields = ["^contact__email"]
    search_help_text = "The contact's email address, or its beginning."
    list_select_related = ["contact", "sequence"]
    ordering = ["-id"]  # the newest first, along the primary key
    show_full_result_count = False
    actions = ["stop"]
    fields = [
        "organization",
        "sequence",
        "contact",
        "status",
        "stop_reason",
        "entry",
        "current_step",
        "next_message_at",
        "entered_at",
        "started_at",
        "exited_at",
        "note",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, *args):
        return False  # contacts enter through the trigger or the API's enroll

    def has_change_permission(self, request, obj=None):
        # A record, never edited; the list's "Stop" action needs the right to change enrollments.
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Contact", ordering="contact__email")
    def contact_email(self, obj):
        return str(obj.contact)

    @admin.action(description="Stop the selected enrollments", permissions=["change"])
    def stop(self, request, queryset):
        selected = list(_writable(self, request, queryset)[: STOP_AT_ONCE + 1])
        if len(selected) > STOP_AT_ONCE:
            self.message_user(
                request,
                f"Select at most {STOP_AT_ONCE} enrollments at a time (or archive the sequence).",
                messages.ERROR,
            )
            return
        stopped, refused = 0, Counter()
        for enrollment in selected:
            try:
                sequences.enrollment_stop(enrollment=enrollment, by=request.user)
            except (ValidationError, DomainError) as exc:
                refused[_describe(exc)] += 1
            else:
                stopped += 1
        if stopped:
            self.message_user(request, f"Stopped {stopped} enrollment(s).", messages.SUCCESS)
        for reason, count in refused.items():
            self.message_user(request, f"{count} not stopped: {reason}", messages.ERROR)


# --- The sending policy ---------------------------------------------------------------------------------------


@admin.register(SendingPolicy)
class SendingPolicyAdmin(RefusalAdminMixin, OrganizationPreselectedMixin, TenantModelAdmin):
    """Business hours and the frequency cap of an organization, saved through `sequences.sending_policy_save`.
    Organization-wide rules: owners and admins change them, as through the API."""

    permission_area = Area.ORGANIZATION
    form = SendingPolicyForm
    list_display = ["organization", "hours", "holiday_count", "cap", "updated_at"]
    list_filter = ["organization"]
    fieldsets = [
        (None, {"fields": ["organization"]}),
        ("Business hours (organization's time zone)", {"fields": ["window_days", "window_start", "window_end"]}),
        ("Holidays", {"fields": ["holidays_text"]}),
        ("Frequency cap", {"fields": ["per_day", "per_week"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        return ["organization"] if obj is not None else []

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        if not request.user.is_superuser:
            writable = self._org_ids(request, write=True)
            if len(writable) == 1:
                initial.setdefault("organization", writable[0])
        return initial

    def has_delete_permission(self, request, obj=None):
        return False  # change it instead; every change is audited by the service

    def save_model(self, request, obj, form, change):
        organization = obj.organization if change else form.cleaned_data["organization"]
        try:
            saved = sequences.sending_policy_save(organization=organization, by=request.user, **form.policy_values())
        except (ValidationError, DomainError) as exc:
            raise _Refused(policy_refusal(exc)) from None
        obj.pk = saved.pk
        obj._state.adding = False

    @admin.display(description="Business hours")
    def hours(self, obj):
        window = obj.window or {}
        if not window:
            return "default (Monday to Friday, 09:00-17:00)"
        days = dict(WEEKDAYS)
        named = ", ".join(days[day][:3] for day in window.get("days", []) if day in days)
        return f"{named} {window.get('start')}-{window.get('end')}"

    @admin.display(description="Holidays")
    def holiday_count(self, obj):
        return len(obj.holidays or [])

    @admin.display(description="Frequency cap")
    def cap(self, obj):
        cap = obj.frequency_cap or {}
        parts = [f"{cap[key]} {label}" for key, label in (("per_day", "a day"), ("per_week", "a week")) if cap.get(key)]
        return ", ".join(parts) or "none"
