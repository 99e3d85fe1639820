"""Accounts in the admin, and the small pieces every back-office admin shares: autocomplete and
multiple-choice widgets that treat a malformed id as an invalid choice (never a server error), the
member's organization preselected on add forms, internal models shown to superusers only, and
"View site" leading to the API documentation."""

from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import AutocompleteSelect
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import connections, transaction

from accounts import services
from accounts.models import AuditEvent, Membership, Organization, Role, User
from accounts.tenancy import Area, ReadOnlyAdminMixin, ServiceErrorsAdminMixin, TenantAdminMixin, admin_organization_ids

# "View site" in the admin's header: the API documentation (the back office itself is the admin).
admin.site.site_url = "/api/docs/"


class SafeAutocompleteSelect(AutocompleteSelect):
    """Django's autocomplete looks the submitted value up to show it again; a malformed id (junk
    typed into the request) would fail that query. Only well-formed ids are looked up."""

    def optgroups(self, name, value, attr=None):
        target = self.field.remote_field.model._meta.get_field(
            getattr(self.field.remote_field, "field_name", None) or self.field.remote_field.model._meta.pk.name
        )
        ranges = connections[self.db or "default"].ops.integer_field_ranges
        low, high = ranges.get(target.get_internal_type(), (None, None))
        valid = []
        for item in value:
            try:
                parsed = target.to_python(item)
            except (ValidationError, TypeError, ValueError, OverflowError):
                continue
            if isinstance(parsed, int) and not ((low is None or parsed >= low) and (high is None or parsed <= high)):
                continue
            valid.append(item)
        return super().optgroups(name, valid, attr)


class SafeModelMultipleChoiceField(forms.ModelMultipleChoiceField):
    """A junk value (a number too large for the database) is an invalid choice, not a crash."""

    def _check_values(self, value):
        try:
            return super()._check_values(value)
        except OverflowError:
            raise ValidationError(
                self.error_messages["invalid_choice"], code="invalid_choice", params={"value": "?"}
            ) from None


class SafeWidgetsAdminMixin:
    """Autocomplete and many-to-many fields that answer junk with a form error."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if "widget" not in kwargs and db_field.name in self.get_autocomplete_fields(request):
            kwargs["widget"] = SafeAutocompleteSelect(db_field, self.admin_site, using=kwargs.get("using"))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        kwargs.setdefault("form_class", SafeModelMultipleChoiceField)
        return super().formfield_for_manytomany(db_field, request, **kwargs)


def add_service_errors(form: forms.BaseForm, exc: ValidationError, aliases: dict[str, str] | None = None) -> None:
    """Put a service's ValidationError on the form: a key naming a field (directly, through
    `aliases`, or by the first part of a dotted path such as ``consent.sms`` or ``rules.all[0].op``)
    goes to that field, anything else to the form's non-field errors with its path."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc.messages)
        return
    for key, field_messages in exc.message_dict.items():
        head = key.split(".")[0].split("[")[0]
        candidates = [(aliases or {}).get(key), key, key.replace(".", "_"), (aliases or {}).get(head), head]
        field = next((name for name in candidates if name and name in form.fields), None)
        if field is None:
            form.add_error(None, [f"{key}: {message}" if key != "__all__" else message for message in field_messages])
        else:
            shown = field_messages if field == key else [f"{key}: {message}" for message in field_messages]
            form.add_error(field, shown)


def member_organization_id(request, allowed=None):
    """The organization a staff member works in (their first membership), when they may write there."""
    first = (
        Membership.objects.filter(user=request.user)
        .order_by("created_at", "id")
        .values_list("organization_id", flat=True)
        .first()
    )
    if first is None or (allowed is not None and first not in allowed):
        return None
    return first


class OrganizationPreselectedMixin:
    """Add forms start with the member's own organization chosen (a superuser without a membership
    chooses). Put it before the tenant mixin."""

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        if "organization" not in initial:
            allowed = None if request.user.is_superuser else self._org_ids(request, write=True)
            organization_id = member_organization_id(request, allowed)
            if organization_id is not None:
                initial["organization"] = organization_id
        return initial


def _copy_saved(target: Membership, saved: Membership) -> None:
    # The admin goes on with the object it built (messages, log, redirect): make it the saved row.
    for field in Membership._meta.concrete_fields:
        setattr(target, field.attname, getattr(saved, field.attname))
    target._state.adding = False


def _role_changes_first_promotions(changed: list[Membership]) -> list[Membership]:
    # Grant the owner role before taking it away, so handing ownership over in one save works.
    return sorted(changed, key=lambda membership: membership.role != Role.OWNER)


class MembershipInlineForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["user", "role"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.instance._state.adding:
            # A membership is one person's: change its role or remove it, never hand it to another user.
            self.fields["user"].disabled = True


class MembershipInline(SafeWidgetsAdminMixin, admin.TabularInline):
    """Members on the organization's page; saved through the same services as the API."""

    model = Membership
    form = MembershipInlineForm
    fk_name = "organization"
    extra = 0
    autocomplete_fields = ["user"]
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]

    # Like the members API: owners and admins of the organization manage its members.
    def _may(self, request, obj, *, write: bool) -> bool:
        if request.user.is_superuser:
            return True
        allowed = admin_organization_ids(request.user, Area.MEMBERS, write=write)
        # Without an organization (the inline's own queryset) any organization of theirs will do;
        # the formset only ever holds the page's organization's members.
        return obj.pk in allowed if obj is not None else bool(allowed)

    def has_view_permission(self, request, obj=None):
        return self._may(request, obj, write=False)

    def has_add_permission(self, request, obj=None):
        return self._may(request, obj, write=True)

    def has_change_permission(self, request, obj=None):
        return self._may(request, obj, write=True)

    def has_delete_permission(self, request, obj=None):
        return self._may(request, obj, write=True)


class OrganizationForm(forms.ModelForm):
    class Meta:
        model = Organization
        fields = [
            "name",
            "slug",
            "timezone",
            "default_from_name",
            "default_from_email",
            "require_explicit_consent",
            "sms_segment_price",
            "whatsapp_message_price",
            "message_price_currency",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "message_price_currency" in self.fields:
            self.fields["message_price_currency"].required = False

    def clean_message_price_currency(self):
        # Left empty: the currency stays what it was (EUR for a new organization).
        value = (self.cleaned_data.get("message_price_currency") or "").strip().upper()
        return value or self.instance.message_price_currency or "EUR"


@admin.register(Organization)
class OrganizationAdmin(ServiceErrorsAdminMixin, admin.ModelAdmin):
    form = OrganizationForm
    list_display = ["name", "slug", "timezone", "default_from_email", "created_at"]
    search_fields = ["name", "slug"]
    fieldsets = [
        (None, {"fields": ["name", "slug", "timezone", "default_from_name", "default_from_email"]}),
        (
            "SMS and WhatsApp",
            {
                "fields": [
                    "require_explicit_consent",
                    "sms_segment_price",
                    "whatsapp_message_price",
                    "message_price_currency",
                ]
            },
        ),
    ]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]

    # An organization is its own tenant: staff see the ones they belong to.
    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(pk__in=admin_organization_ids(request.user, Area.ORGANIZATION, write=False))

    def has_module_permission(self, request):
        return request.user.is_superuser or (request.user.is_staff and request.user.memberships.exists())

    def has_view_permission(self, request, obj=None):
        if request.user.is_superuser:
            return True
        allowed = admin_organization_ids(request.user, Area.ORGANIZATION, write=False)
        return bool(allowed) and (obj is None or obj.pk in allowed)

    def has_change_permission(self, request, obj=None):
        if request.user.is_superuser:
            return True
        allowed = admin_organization_ids(request.user, Area.ORGANIZATION, write=True)
        return bool(allowed) and (obj is None or obj.pk in allowed)

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    def save_formset(self, request, form, formset, change):
        if formset.model is not Membership:
            return super().save_formset(request, form, formset, change)
        formset.save(commit=False)
        organization = form.instance
        changed = [membership for membership, fields in formset.changed_objects if "role" in fields]
        for membership in _role_changes_first_promotions(changed):
            current = Membership.objects.select_related("organization").get(pk=membership.pk)
            services.member_change_role(membership=current, role=membership.role, by=request.user)
        for membership in formset.new_objects:
            saved = services.member_invite(
                organization=organization, email=membership.user.email, role=membership.role, by=request.user
            )
            _copy_saved(membership, saved)
        for membership in formset.deleted_objects:
            services.member_remove(membership=membership, by=request.user)
        return None


class MembershipAddForm(forms.ModelForm):
    """Add a member the way the API invites one: by email (a new user gets an invitation)."""

    email = forms.EmailField(max_length=254)

    class Meta:
        model = Membership
        fields = ["organization", "email", "role"]


@admin.register(Membership)
class MembershipAdmin(OrganizationPreselectedMixin, SafeWidgetsAdminMixin, TenantAdminMixin, admin.ModelAdmin):
    """Memberships, written through the same services as the members API: only an owner grants
    or takes away the owner role, and an organization keeps an owner."""

    permission_area = Area.MEMBERS
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "organization"]
    search_fields = ["user__email", "organization__name"]
    autocomplete_fields = ["user"]

    def get_readonly_fields(self, request, obj=None):
        # A membership stays with its user and organization; only the role changes.
        return ["user", "organization"] if obj is not None else []

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = MembershipAddForm
        return super().get_form(request, obj, **kwargs)

    def save_model(self, request, obj, form, change):
        if change:
            current = Membership.objects.select_related("organization").get(pk=obj.pk)
            saved = services.member_change_role(membership=current, role=obj.role, by=request.user)
        else:
            saved = services.member_invite(
                organization=obj.organization, email=form.cleaned_data["email"], role=obj.role, by=request.user
            )
        _copy_saved(obj, saved)

    def delete_model(self, request, obj):
        services.member_remove(membership=obj, by=request.user)

    def delete_queryset(self, request, queryset):
        # All or nothing: one refused removal (the last owner) keeps every selected member.
        with transaction.atomic():
            for membership in queryset.select_related("organization").order_by("pk"):
                services.member_remove(membership=membership, by=request.user)


@admin.register(User)
class UserAdmin(SafeWidgetsAdminMixin, DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "full_name", "is_staff", "is_superuser", "is_active", "date_joined"]
    search_fields = ["email", "full_name"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("full_name",)}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)

    # Staff who are not superusers see the users of their own organizations only.
    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        org_ids = admin_organization_ids(request.user, Area.MEMBERS, write=False)
        return queryset.filter(memberships__organization__in=org_ids).distinct()

    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser or bool(admin_organization_ids(request.user, Area.MEMBERS, write=False))


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, TenantAdminMixin, admin.ModelAdmin):
    """The audit trail, read only: the services write it, nobody adds, edits or deletes a row here.
    Owners and admins see their organizations' events (superusers every organization's)."""

    permission_area = Area.AUDIT
    list_display = ["created_at", "action", "actor_email", "object_type", "object_repr", "organization"]
    list_filter = ["action", "object_type", "organization"]
    search_fields = ["object_id", "object_repr", "actor_email", "request_id"]
    date_hierarchy = "created_at"
    list_select_related = ["organization"]
    show_full_result_count = False
    fields = [
        "created_at",
        "organization",
        "action",
        "actor",
        "actor_email",
        "object_type",
        "object_id",
        "object_repr",
        "changes",
        "request_id",
    ]
    readonly_fields = fields


class SuperuserOnlyAdminMixin:
    """Internal machinery (periodic tasks, the token blacklist, permission groups): for superusers."""

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request, *args):
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser


INTERNAL_APP_LABELS = frozenset({"django_celery_beat", "token_blacklist"})


def _superusers_only(site: admin.AdminSite) -> None:
    for model, model_admin in list(site._registry.items()):
        if model is not Group and model._meta.app_label not in INTERNAL_APP_LABELS:
            continue
        if isinstance(model_admin, SuperuserOnlyAdminMixin):
            continue
        base = type(model_admin)
        site.unregister(model)
        site.register(model, type(f"SuperuserOnly{base.__name__}", (SuperuserOnlyAdminMixin, base), {}))


# Their apps come before this one in INSTALLED_APPS, so their admins are registered by now.
_superusers_only(admin.site)
