"""The marketer's audience screens. Writes go through contacts.services, like the API.

Contacts are edited with their attributes as key/value rows and show one engagement timeline
(rendered by the analytics app's `contact_timeline` tag); segments are built from rows of field,
operator and value (the rule language's own lists) with a live count; an export re-imports as is;
the import page explains the columns and offers a sample file."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Q
from django.http import Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from accounts.admin import OrganizationPreselectedMixin, SafeWidgetsAdminMixin, add_service_errors
from accounts.models import Organization
from accounts.tenancy import Area, TenantModelAdmin
from config import csvsafe
from contacts import segments, services
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
from contacts.normalize import typed_attribute
from contacts.selectors import segment_contacts

# The columns the importer reads (contacts/importer.py), then one column per attribute key: an
# export imports back as the same contacts.
CSV_COLUMNS = [
    "email",
    "phone",
    "first_name",
    "last_name",
    "timezone",
    "locale",
    "tags",
    "consent_email",
    "consent_sms",
    "consent_whatsapp",
]
# Column names the importer reads as contact fields: an attribute of that name cannot be exported
# as its own column.
RESERVED_COLUMNS = frozenset(
    {"email", "e_mail", "email_address", "mail", "emailaddress", "phone", "phone_number", "mobile", "mobile_phone"}
    | {"cell", "telephone", "msisdn", "first_name", "firstname", "given_name", "first", "last_name", "lastname"}
    | {"surname", "family_name", "last", "tags", "tag", "timezone", "time_zone", "tz", "locale", "language", "lang"}
    | {"consent_email", "email_consent", "consent_sms", "sms_consent", "consent_whatsapp", "whatsapp_consent"}
)
SAMPLE_CSV = (
    "email,phone,first_name,last_name,timezone,locale,tags,consent_email,consent_sms,consent_whatsapp,city,plan\r\n"
    "ada@example.com,+31612345678,Ada,Lovelace,Europe/Amsterdam,nl,vip;newsletter,yes,yes,,Utrecht,gold\r\n"
    "grace@example.com,,Grace,Hopper,,en,newsletter,,,,Amsterdam,silver\r\n"
    ",+31687654321,Alan,Turing,,,,,yes,no,Rotterdam,\r\n"
)


class AudienceAdmin(OrganizationPreselectedMixin, SafeWidgetsAdminMixin, TenantModelAdmin):
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


def attribute_text(value) -> str:
    """An attribute as typed in a key/value row: text as is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def attribute_value(text: str):
    """A typed value back: numbers and true/false typed as the importer types them, JSON objects
    and lists as JSON, anything else as text."""
    stripped = text.strip()
    if stripped[:1] in ("{", "[") or stripped == "null":
        try:
            return json.loads(stripped)
        except ValueError:
            return text
    return typed_attribute(text) if stripped else text


class AttributesWidget(forms.Widget):
    """Attributes as rows of key and value inputs (``<name>_key`` / ``<name>_value``), plus an empty
    row and an "Add a row" button; without the rows in the submitted data, a JSON object under the
    field's own name is read."""

    template_name = "admin/contacts/widgets/attributes.html"

    def format_value(self, value):
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return [("", value)]
        if not isinstance(value, dict):
            return []
        return [(key, attribute_text(item)) for key, item in value.items()]

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        rows = value if isinstance(value, list) else self.format_value(value)
        context["widget"]["rows"] = [*rows, ("", "")]
        return context

    def value_from_datadict(self, data, files, name):
        if f"{name}_key" in data or f"{name}_value" in data:
            return list(zip(data.getlist(f"{name}_key"), data.getlist(f"{name}_value"), strict=False))
        return data.get(name)

    def value_omitted_from_data(self, data, files, name):
        return name not in data and f"{name}_key" not in data


class AttributesField(forms.Field):
    widget = AttributesWidget

    def __init__(self, *args, **kwargs):
        kwargs.pop("encoder", None)
        kwargs.pop("decoder", None)
        kwargs.pop("max_length", None)
        super().__init__(*args, **kwargs)

    def prepare_value(self, value):
        return value if isinstance(value, list) else self.widget.format_value(value)

    def to_python(self, value):
        if value in (None, ""):
            return {}
        if isinstance(value, str):
            try:
                parsed = json.loads(value)
            except ValueError:
                raise ValidationError("Enter the attributes as key and value rows.") from None
            if not isinstance(parsed, dict):
                raise ValidationError("Attributes are keys with values.")
            return parsed
        attributes: dict = {}
        problems = []
        for number, (key, text) in enumerate(value, start=1):
            key = key.strip()
            if not key and not text.strip():
                continue
            if not key:
                problems.append(f"Row {number}: a value needs a key.")
            elif len(key) > 64:
                problems.append(f"Row {number}: a key is at most 64 characters.")
            elif key in attributes:
                problems.append(f"Row {number}: the key {key!r} appears twice.")
            else:
                attributes[key] = attribute_value(text)
        if problems:
            raise ValidationError(problems)
        return attributes

    def has_changed(self, initial, data):
        try:
            return self.to_python(data) != (initial or {})
        except ValidationError:
            return True


class ContactForm(forms.ModelForm):
    """Fields are normalized by the same service code as the API (errors name the field). Consent is
    one yes / no / no answer choice per channel; attributes are key/value rows."""

    attributes = AttributesField(
        required=False,
        help_text="One row per attribute. Numbers and true/false are stored as such; segments can compare them.",
    )

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
        try:
            normalized = services.contact_normalize(data=data)
        except ValidationError as exc:
            add_service_errors(self, exc)  # names the fields, dotted paths (consent.sms) included
            return cleaned
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


class ContactTagInline(SafeWidgetsAdminMixin, admin.TabularInline):
    model = ContactTag
    template = "admin/contacts/edit_inline/tabular_unlabeled.html"
    extra = 0
    fields = ["tag", "created_at"]
    readonly_fields = ["created_at"]
    autocomplete_fields = ["tag"]


class ListMembershipInline(admin.TabularInline):
    model = ListMembership
    template = "admin/contacts/edit_inline/tabular_unlabeled.html"
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
    change_form_template = "admin/contacts/contact/change_form.html"

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


def _attribute_keys(queryset) -> list[str]:
    """The attribute keys of the exported contacts, in a stable order (one pass over the JSON only)."""
    keys: set[str] = set()
    for attributes in queryset.order_by().values_list("attributes", flat=True).iterator(chunk_size=5000):
        if isinstance(attributes, dict):
            keys.update(attributes)
    return sorted(key for key in keys if key.lower() not in RESERVED_COLUMNS)


def _consent_text(consent: dict, channel: str) -> str:
    answer = (consent or {}).get(channel)
    return "" if answer is None else ("yes" if answer else "no")


def csv_export_response(queryset) -> StreamingHttpResponse:
    """Stream contacts as CSV without loading them all; cells are safe to open in a spreadsheet.
    The columns are the importer's (tags joined by ";", consent as yes/no, one column per
    attribute), so the file imports back as the same contacts."""
    attribute_keys = _attribute_keys(queryset)

    def rows():
        yield [*CSV_COLUMNS, *attribute_keys]
        contacts = queryset.order_by("pk").prefetch_related("tag_links__tag")
        for contact in contacts.iterator(chunk_size=2000):
            attributes = contact.attributes if isinstance(contact.attributes, dict) else {}
            yield [
                contact.email or "",
                contact.phone or "",
                contact.first_name,
                contact.last_name,
                contact.timezone,
                contact.locale,
                ";".join(sorted(link.tag.name for link in contact.tag_links.all())),
                *(_consent_text(contact.consent, channel) for channel in CONSENT_CHANNELS),
                *(attribute_text(attributes[key]) if key in attributes else "" for key in attribute_keys),
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


FIELD_LABELS = {
    "email": "Email",
    "email_domain": "Email domain",
    "first_name": "First name",
    "last_name": "Last name",
    "phone": "Phone",
    "locale": "Locale",
    "timezone": "Time zone",
    "status": "Status",
    "tags": "Tags",
    "lists": "Lists",
    "created_at": "Created",
    "last_contacted_at": "Last contacted",
    "event": "Custom event",
}
OPERATOR_LABELS = {
    "eq": "is",
    "neq": "is not",
    "contains": "contains",
    "starts_with": "starts with",
    "in": "is one of",
    "exists": "is present",
    "gt": "greater than",
    "gte": "at least",
    "lt": "less than",
    "lte": "at most",
    "before": "before",
    "after": "after",
    "did": "did",
    "did_not": "did not do",
}


def _field_kind(name: str) -> str:
    if name in segments.TEXT_FIELDS:
        return "text"
    if name in segments.TIME_FIELDS:
        return "time"
    return name  # status, tags, lists, event


def segment_builder_spec() -> dict:
    """The builder's fields and operators, read from the rule language itself."""
    names = [*sorted(segments.TEXT_FIELDS, key=list(FIELD_LABELS).index), "status", "tags", "lists", "event"]
    names += sorted(segments.TIME_FIELDS, key=list(FIELD_LABELS).index)
    fields = [{"name": name, "label": FIELD_LABELS.get(name, name), "kind": _field_kind(name)} for name in names]
    fields.append({"name": "attributes.", "label": "Attribute…", "kind": "attribute"})
    operators = {kind: sorted(ops, key=list(OPERATOR_LABELS).index) for kind, ops in segments.OPERATORS.items()}
    return {
        "fields": fields,
        "operators": operators,
        "operator_labels": OPERATOR_LABELS,
        "statuses": sorted(segments.STATUSES),
    }


class SegmentBuilderWidget(forms.Textarea):
    """The rules as rows of field / operator / value in "all" or "any" groups (one nested level),
    written into the JSON textarea the form submits; a count of matching contacts on request."""

    template_name = "admin/contacts/widgets/segment_builder.html"

    class Media:
        js = ["contacts/segment_builder.js"]
        css = {"all": ["contacts/segment_builder.css"]}

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        context["widget"]["spec"] = segment_builder_spec()
        context["widget"]["preview_url"] = reverse("admin:contacts_segment_preview")
        context["widget"]["choices_url"] = reverse("admin:contacts_segment_choices")
        return context


def _rule_error(exc: ValidationError) -> tuple[str, str]:
    """(path, message) of the service's rules error, e.g. ("rules.all[1].op", "unknown operator ...")."""
    text = (
        " ".join(exc.message_dict.get("rules", exc.messages)) if hasattr(exc, "error_dict") else " ".join(exc.messages)
    )
    path, _, message = text.partition(": ")
    return (path, message) if message and path.startswith("rules") else ("rules", text)


class SegmentForm(forms.ModelForm):
    class Meta:
        model = Segment
        fields = ["organization", "name", "description", "rules"]
        widgets = {"rules": SegmentBuilderWidget(attrs={"rows": 8, "class": "segment-rules-json"})}
        help_texts = {"rules": "Contacts matching all (or any) of the conditions. Count them before saving."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["rules"].widget.attrs["data-organization"] = str(self.instance.organization_id)

    def clean_rules(self):
        rules = self.cleaned_data["rules"]
        try:
            services.segment_validate_rules(rules)
        except ValidationError as exc:
            path, message = _rule_error(exc)
            self.fields["rules"].widget.attrs["data-error-path"] = path
            raise ValidationError(f"{path}: {message}") from None
        return rules


@admin.register(Segment)
class SegmentAdmin(AudienceAdmin):
    form = SegmentForm
    list_display = ["name", "organization", "updated_at"]
    list_filter = ["organization"]
    search_fields = ["name"]
    readonly_fields = ["matching_contacts"]

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        return [*readonly, "organization"] if obj is not None else readonly

    def save_model(self, request, obj, form, change):
        services.segment_save(segment=obj)

    @admin.display(description="Matching contacts now")
    def matching_contacts(self, obj):
        if not obj.pk:
            return "-"
        return segment_contacts(segment=obj).count()

    def get_urls(self):
        return [
            path("preview/", self.admin_site.admin_view(self.preview_view), name="contacts_segment_preview"),
            path("choices/", self.admin_site.admin_view(self.choices_view), name="contacts_segment_choices"),
            *super().get_urls(),
        ]

    def _organization(self, request, organization_id) -> Organization:
        """An organization the staff member may read segments of; any other id is a 404."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        organizations = Organization.objects.all()
        if not request.user.is_superuser:
            organizations = organizations.filter(pk__in=self._org_ids(request, write=False))
        try:
            organization = organizations.filter(pk=organization_id).first()
        except (ValidationError, ValueError):
            organization = None
        if organization is None:
            raise Http404("Unknown organization.")
        return organization

    def preview_view(self, request):
        """How many contacts the submitted rules match, with a few of them; errors name their path."""
        if request.method != "POST":
            return JsonResponse({"detail": "POST the organization and the rules."}, status=405)
        organization = self._organization(request, request.POST.get("organization", ""))
        try:
            rules = json.loads(request.POST.get("rules", ""))
        except ValueError:
            return JsonResponse({"errors": [{"path": "rules", "message": "The rules are not valid JSON."}]}, status=400)
        try:
            services.segment_validate_rules(rules)
        except ValidationError as exc:
            path_, message = _rule_error(exc)
            return JsonResponse({"errors": [{"path": path_, "message": message}]}, status=400)
        matching = segment_contacts(segment=Segment(organization=organization, rules=rules))
        sample = [str(contact) for contact in matching.order_by("-id")[:5]]
        return JsonResponse({"count": matching.count(), "sample": sample})

    def choices_view(self, request):
        """The organization's lists and tags, for the builder's value pickers."""
        organization = self._organization(request, request.GET.get("organization", ""))
        lists = ContactList.objects.filter(organization=organization).order_by("name")[:500]
        tags = Tag.objects.filter(organization=organization).order_by("name").values_list("name", flat=True)[:1000]
        return JsonResponse({"lists": [{"id": str(item.pk), "name": item.name} for item in lists], "tags": list(tags)})


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
        help_texts = {
            "file": "A CSV file with a header row (UTF-8 or Windows-1252; comma, semicolon, tab or | separated).",
            "contact_list": "Subscribe every imported contact to this list.",
        }

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
    add_form_template = "admin/contacts/importjob/add_form.html"
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

    def get_urls(self):
        return [
            path("sample.csv", self.admin_site.admin_view(self.sample_view), name="contacts_importjob_sample"),
            *super().get_urls(),
        ]

    def sample_view(self, request):
        """A small file with every column the importer reads, to fill in."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        response = HttpResponse(SAMPLE_CSV, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="contacts-sample.csv"'
        return response

    def response_add(self, request, obj, post_url_continue=None):
        # Straight to the job's page, which follows its progress.
        self.message_user(request, f"{obj} started.", messages.SUCCESS)
        return redirect(reverse("admin:contacts_importjob_change", args=[obj.pk]))

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
