"""The marketer's audience screens. Writes go through contacts.services, like the API."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Q
from django.http import StreamingHttpResponse
from django.utils.html import format_html, format_html_join

from accounts.tenancy import Area, TenantModelAdmin
from config import csvsafe
from contacts import services
from contacts.models import (
    CONSENT_CHANNELS,
    Contact,
    ContactEvent,
    ContactList,
    ContactTag,
    ImportJob,
    ImportStatus,
    ListMembership,
    Segment,
    Suppression,
    SuppressionKind,
    Tag,
)
from contacts.selectors import segment_contacts

CSV_COLUMNS = ["id", "email", "phone", "first_name", "last_name", "status", "timezone", "locale", "tags", "created_at"]


class AudienceAdmin(TenantModelAdmin):
    permission_area = Area.AUDIENCE


@admin.register(Tag)
class TagAdmin(AudienceAdmin):
    list_display = ["name", "organization", "contact_count", "created_at"]
    list_filter = ["organization"]
    search_fields = ["name"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(contact_count=Count("contact_links"))

    @admin.display(description="Contacts", ordering="contact_count")
    def contact_count(self, obj):
        return obj.contact_count


class ContactActionForm(ActionForm):
    tag = forms.CharField(required=False, max_length=100, help_text="Tag for the tag actions")
    contact_list = forms.ModelChoiceField(queryset=ContactList.objects.none(), required=False, label="List")


CONSENT_CHOICES = [("", "No answer (follows the status)"), ("yes", "Yes"), ("no", "No")]
CONSENT_VALUES = {"": None, "yes": True, "no": False}


def _consent_field(channel: str) -> forms.ChoiceField:
    return forms.ChoiceField(
        label=f"{channel} consent", choices=CONSENT_CHOICES, required=False, help_text=f"Consent for {channel}."
    )


class ContactForm(forms.ModelForm):
    """Fields are normalized by the same service code as the API (errors name the field). Consent is
    one yes / no / no answer choice per channel."""

    consent_email = _consent_field("Email")
    consent_sms = _consent_field("SMS")
    consent_whatsapp = _consent_field("WhatsApp")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        consent = (self.instance.consent if self.instance is not None else None) or {}
        for channel in CONSENT_CHANNELS:
            answer = consent.get(channel)
            self.fields[f"consent_{channel}"].initial = "" if answer is None else ("yes" if answer else "no")

    class Meta:
        model = Contact
        fields = [
            "organization",
            "email",
            "phone",
            "first_name",
            "last_name",
            "timezone",
            "locale",
            "attributes",
            "status",
        ]

    def clean(self):
        cleaned = super().clean()
        cleaned["consent"] = {
            channel: CONSENT_VALUES[cleaned.get(f"consent_{channel}") or ""] for channel in CONSENT_CHANNELS
        }
        data = {key: cleaned[key] for key in services.CONTACT_FIELDS if key in cleaned}
        normalized = services.contact_normalize(data=data)  # ValidationError names the fields
        for key in data:
            cleaned[key] = normalized[key]
        if "email" in cleaned and "phone" in cleaned and not cleaned["email"] and not cleaned["phone"]:
            raise ValidationError("An email address or a phone number is required.")
        return cleaned


def _copy_saved(target, saved) -> None:
    # The admin goes on with the object it built (inlines, messages, redirect): make it the saved row.
    for field in type(saved)._meta.concrete_fields:
        setattr(target, field.attname, getattr(saved, field.attname))
    target._state.adding = False


class ContactTagInline(admin.TabularInline):
    model = ContactTag
    extra = 0
    fields = ["tag", "created_at"]
    readonly_fields = ["created_at"]
    autocomplete_fields = ["tag"]


class ListMembershipInline(admin.TabularInline):
    model = ListMembership
    extra = 0
    fields = ["contact_list", "subscribed_at", "unsubscribed_at"]
    readonly_fields = ["subscribed_at"]


class TagFilter(admin.SimpleListFilter):
    title = "tag"
    parameter_name = "tag"

    def lookups(self, request, model_admin):
        tags = Tag.objects.all()
        if not request.user.is_superuser:
            tags = tags.filter(organization__in=model_admin._org_ids(request, write=False))
        return [(str(t.pk), t.name) for t in tags.order_by("name")[:200]]

    def queryset(self, request, queryset):
        return queryset.filter(tag_links__tag_id=self.value()) if self.value() else queryset


class ListFilter(admin.SimpleListFilter):
    title = "list"
    parameter_name = "list"

    def lookups(self, request, model_admin):
        lists = ContactList.objects.all()
        if not request.user.is_superuser:
            lists = lists.filter(organization__in=model_admin._org_ids(request, write=False))
        return [(str(x.pk), x.name) for x in lists.order_by("name")[:200]]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        return queryset.filter(
            list_memberships__contact_list_id=self.value(), list_memberships__unsubscribed_at__isnull=True
        )


@admin.register(Contact)
class ContactAdmin(AudienceAdmin):
    form = ContactForm
    action_form = ContactActionForm
    list_display = ["__str__", "first_name", "last_name", "status", "organization", "created_at"]
    list_filter = ["status", TagFilter, ListFilter, "organization"]
    search_fields = ["^email", "first_name", "last_name", "^phone"]
    readonly_fields = ["public_id", "consent_source", "consent_at", "consent_ip", "last_contacted_at", "created_at"]
    inlines = [ContactTagInline, ListMembershipInline]
    actions = ["add_tag", "remove_tag", "add_to_list", "remove_from_list", "export_csv", "erase"]
    show_full_result_count = False
    list_per_page = 100

    def get_queryset(self, request):
        return super().get_queryset(request).filter(erased_at__isnull=True)

    def changelist_view(self, request, extra_context=None):
        lists = ContactList.objects.all()
        if not request.user.is_superuser:
            lists = lists.filter(organization__in=self._org_ids(request, write=True))
        self.action_form.base_fields["contact_list"].queryset = lists
        return super().changelist_view(request, extra_context)

    def get_readonly_fields(self, request, obj=None):
        # A contact stays in its organization.
        readonly = list(super().get_readonly_fields(request, obj))
        return [*readonly, "organization"] if obj is not None else readonly

    def save_model(self, request, obj, form, change):
        data = {key: form.cleaned_data[key] for key in services.CONTACT_FIELDS if key in form.cleaned_data}
        if change:
            saved = services.contact_update(contact=Contact.objects.get(pk=obj.pk), data=data)
        else:
            saved = services.contact_create(organization_id=obj.organization_id, data=data, consent_source="admin")
        _copy_saved(obj, saved)

    def delete_model(self, request, obj):
        services.contact_erase(contact=obj, by=request.user)

    def delete_queryset(self, request, queryset):
        for contact in queryset.iterator():
            services.contact_erase(contact=contact, by=request.user)

    def _by_organization(self, queryset):
        return queryset.values_list("organization_id", flat=True).distinct()

    @admin.action(description="Add the tag to the selected contacts")
    def add_tag(self, request, queryset):
        name = request.POST.get("tag", "").strip()
        if not name:
            self.message_user(request, "Type a tag name first.", messages.WARNING)
            return
        added = 0
        for organization_id in self._by_organization(queryset):
            tags = services.tags_get_or_create(organization_id=organization_id, names=[name])
            added += services.tags_add(contacts=queryset.filter(organization_id=organization_id), tags=tags)
        self.message_user(request, f"Tagged {added} contact(s) with {name!r}.")

    @admin.action(description="Remove the tag from the selected contacts")
    def remove_tag(self, request, queryset):
        name = request.POST.get("tag", "").strip()
        tags = list(Tag.objects.filter(name__iexact=name, organization_id__in=self._by_organization(queryset)))
        removed = services.tags_remove(contacts=queryset, tags=tags) if tags else 0
        self.message_user(request, f"Removed {name!r} from {removed} contact(s).")

    def _chosen_list(self, request):
        list_id = request.POST.get("contact_list")
        lists = ContactList.objects.all()
        if not request.user.is_superuser:
            lists = lists.filter(organization__in=self._org_ids(request, write=True))
        return lists.filter(pk=list_id).first() if list_id else None

    @admin.action(description="Subscribe the selected contacts to the list")
    def add_to_list(self, request, queryset):
        contact_list = self._chosen_list(request)
        if contact_list is None:
            self.message_user(request, "Choose a list first.", messages.WARNING)
            return
        added = services.list_add_members(contact_list=contact_list, contacts=queryset)
        self.message_user(request, f"Added {added} contact(s) to {contact_list.name}.")

    @admin.action(description="Unsubscribe the selected contacts from the list")
    def remove_from_list(self, request, queryset):
        contact_list = self._chosen_list(request)
        if contact_list is None:
            self.message_user(request, "Choose a list first.", messages.WARNING)
            return
        removed = services.list_remove_members(contact_list=contact_list, contacts=queryset)
        self.message_user(request, f"Unsubscribed {removed} contact(s) from {contact_list.name}.")

    @admin.action(description="Export the selected contacts as CSV")
    def export_csv(self, request, queryset):
        return csv_export_response(services.contacts_export(contacts=queryset, by=request.user))

    @admin.action(description="Erase the selected contacts' personal data (GDPR)")
    def erase(self, request, queryset):
        count = 0
        for contact in queryset.iterator():
            services.contact_erase(contact=contact, by=request.user)
            count += 1
        self.message_user(request, f"Erased {count} contact(s); their addresses stay suppressed.")


def csv_export_response(queryset) -> StreamingHttpResponse:
    """Stream contacts as CSV without loading them all; cells are safe to open in a spreadsheet."""

    def rows():
        yield CSV_COLUMNS
        contacts = queryset.order_by("pk").prefetch_related("tag_links__tag")
        for contact in contacts.iterator(chunk_size=2000):
            yield [
                contact.public_id,
                contact.email or "",
                contact.phone or "",
                contact.first_name,
                contact.last_name,
                contact.status,
                contact.timezone,
                contact.locale,
                ";".join(sorted(link.tag.name for link in contact.tag_links.all())),
                contact.created_at.isoformat(),
            ]

    response = StreamingHttpResponse(csvsafe.stream_rows(rows()), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="contacts.csv"'
    return response


@admin.register(ContactList)
class ContactListAdmin(AudienceAdmin):
    list_display = ["name", "organization", "subscribers", "created_at"]
    list_filter = ["organization"]
    search_fields = ["name"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(subscribers=Count("memberships", filter=Q(memberships__unsubscribed_at__isnull=True)))
        )

    @admin.display(ordering="subscribers")
    def subscribers(self, obj):
        return obj.subscribers


class SegmentForm(forms.ModelForm):
    class Meta:
        model = Segment
        fields = ["organization", "name", "description", "rules"]

    def clean_rules(self):
        rules = self.cleaned_data["rules"]
        services.segment_validate_rules(rules)
        return rules


@admin.register(Segment)
class SegmentAdmin(AudienceAdmin):
    form = SegmentForm
    list_display = ["name", "organization", "updated_at"]
    list_filter = ["organization"]
    search_fields = ["name"]
    readonly_fields = ["matching_contacts"]

    @admin.display(description="Matching contacts now")
    def matching_contacts(self, obj):
        if not obj.pk:
            return "-"
        return segment_contacts(segment=obj).count()


ADDABLE_SUPPRESSION_KINDS = [
    (kind.value, kind.label) for kind in (SuppressionKind.EMAIL, SuppressionKind.PHONE, SuppressionKind.DOMAIN)
]


class SuppressionForm(forms.ModelForm):
    # Erasure hashes are written by erasure only.
    kind = forms.ChoiceField(choices=ADDABLE_SUPPRESSION_KINDS)

    class Meta:
        model = Suppression
        fields = ["organization", "kind", "value", "reason"]

    def clean(self):
        cleaned = super().clean()
        kind, value = cleaned.get("kind"), cleaned.get("value")
        if kind and value:
            try:
                cleaned["value"] = services.suppression_normalize(kind=kind, value=value)
            except ValidationError as exc:
                raise ValidationError({"value": exc.messages}) from None
        return cleaned


@admin.register(Suppression)
class SuppressionAdmin(AudienceAdmin):
    """Suppressions are added through the same service as the API and, like there, never edited:
    remove one and add another."""

    form = SuppressionForm
    list_display = ["kind", "value", "reason", "source", "organization", "created_at"]
    list_filter = ["kind", "reason", "organization"]
    search_fields = ["value"]

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        saved = services.suppression_add(
            organization_id=obj.organization_id,
            kind=form.cleaned_data["kind"],
            value=form.cleaned_data["value"],
            reason=form.cleaned_data["reason"],
            source="admin",
            by=request.user,
        )
        _copy_saved(obj, saved)

    def delete_model(self, request, obj):
        services.suppression_remove(suppression=obj, by=request.user)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for suppression in queryset.order_by("pk"):
                services.suppression_remove(suppression=suppression, by=request.user)


@admin.register(ContactEvent)
class ContactEventAdmin(AudienceAdmin):
    list_display = ["name", "contact", "occurred_at", "organization"]
    list_filter = ["name", "organization"]
    raw_id_fields = ["contact"]
    show_full_result_count = False

    def has_change_permission(self, request, obj=None):
        return False


class ImportJobForm(forms.ModelForm):
    tags = forms.CharField(required=False, help_text="Tags for every imported contact, comma-separated.")

    class Meta:
        model = ImportJob
        fields = ["organization", "file", "contact_list", "event_name"]

    def clean(self):
        cleaned = super().clean()
        contact_list, organization = cleaned.get("contact_list"), cleaned.get("organization")
        if contact_list and organization and contact_list.organization_id != organization.pk:
            raise ValidationError({"contact_list": "This list belongs to another organization."})
        return cleaned


@admin.register(ImportJob)
class ImportJobAdmin(AudienceAdmin):
    """Start an import by uploading a CSV; the page follows its progress."""

    form = ImportJobForm
    list_display = ["__str__", "organization", "status", "progress", "created", "updated", "failed", "created_at"]
    list_filter = ["status", "organization"]
    readonly_fields = [
        "status",
        "progress",
        "original_filename",
        "encoding",
        "delimiter",
        "total_rows",
        "processed_rows",
        "created",
        "updated",
        "failed",
        "failure_reason",
        "event_name",
        "bad_lines",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
    ]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["organization", "file", "tags", "contact_list", "event_name"]
        return self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        # The event is chosen on the add page and shown, read-only, with the job's progress.
        return self.readonly_fields if obj is not None else []

    def has_change_permission(self, request, obj=None):
        # Jobs are read-only once started; the change page shows their progress.
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        obj.created_by = request.user
        obj.tag_names = [t.strip() for t in form.cleaned_data.get("tags", "").split(",") if t.strip()]
        services.import_start(job=obj, uploaded_file=form.cleaned_data["file"])

    @admin.display(description="Progress")
    def progress(self, obj):
        if obj.status == ImportStatus.COMPLETED:
            return "100%"
        percent = int(obj.processed_rows * 100 / obj.total_rows) if obj.total_rows else 0
        if obj.status in (ImportStatus.PENDING, ImportStatus.RUNNING):
            # Reload the page every few seconds while the import runs.
            refresh = "<script>setTimeout(function(){{location.reload()}}, 3000)</script>"
            return format_html('{}% <span class="help">(refreshing)</span>' + refresh, min(percent, 99))
        return f"{percent}%"

    @admin.display(description="Bad lines (first 200)")
    def bad_lines(self, obj):
        errors = obj.row_errors.all()[:200]
        if not errors:
            return "-"
        return format_html(
            "<ul>{}</ul>", format_html_join("", "<li>line {}: {}</li>", ((e.line, e.reason) for e in errors))
        )
