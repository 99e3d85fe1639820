"""Campaigns in the admin: status and counts, and the same actions as the API."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count

from accounts.tenancy import Area, TenantModelAdmin
from campaigns import selectors, services
from campaigns.models import Campaign, CampaignStatus, CampaignVariant, Message, MessageStatus, SendingDomain
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

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)

        class CampaignForm(form):
            def _post_clean(self):
                super()._post_clean()
                if self.errors:
                    return
                # The service's checks, shown on the form rather than raised from save_model.
                try:
                    services.campaign_check(campaign=self.instance)
                except ValidationError as exc:
                    for key, problems in exc.message_dict.items():
                        root = key.split(".")[0].split("[")[0]
                        field = root if root in self.fields else None
                        self.add_error(
                            field, [problem if field == key else f"{key}: {problem}" for problem in problems]
                        )

        return CampaignForm

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
        _apply_each(self, request, queryset, lambda c: service(campaign=c, by=request.user), lambda c: c.name, done)

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


@admin.register(SendingDomain)
class SendingDomainAdmin(TenantModelAdmin):
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
