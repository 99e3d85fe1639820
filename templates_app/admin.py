"""Admin for templates, layouts, footers and versions, scoped like the API (accounts.tenancy).

Saves go through the services, which validate once, inside their transaction
(the same rules as the API), so versions are recorded whatever the entry point.
What a service refuses is shown on the form, with the data as it was submitted.
The template change page shows a preview rendered for a sample contact (the
HTML in a sandboxed iframe), or for a contact of the organization picked by
name or email, and links to a "send test" page, which queues the test for a
worker.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from accounts.admin import OrganizationPreselectedMixin, SafeWidgetsAdminMixin
from accounts.tenancy import Area, TenantModelAdmin
from config.errors import DomainError
from contacts import selectors as contact_selectors
from contacts.models import Contact
from templates_app import rendering, selectors, services
from templates_app.context import preview_context
from templates_app.models import Channel, EmailFooter, Layout, MessageTemplate, TemplateVersion


def _error_dict(exc: ValidationError | DomainError) -> dict[str, list[str]]:
    if isinstance(exc, ValidationError):
        return exc.message_dict if hasattr(exc, "error_dict") else {NON_FIELD_ERRORS: exc.messages}
    return {NON_FIELD_ERRORS: [str(exc)]}


class _Refused(Exception):
    """A service refused a save made through the admin; its errors, by field."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


class ServiceErrorsForm(forms.ModelForm):
    """Shows the errors a service gave for the data submitted (set per request by `SavedByServiceAdmin`)."""

    service_errors: dict[str, list[str]] = {}

    def clean(self):
        cleaned = super().clean()
        for field, field_messages in self.service_errors.items():
            self.add_error(field if field in self.fields else None, field_messages)
        return cleaned


class SavedByServiceAdmin(OrganizationPreselectedMixin, SafeWidgetsAdminMixin, TenantModelAdmin):
    """Saves through a service, which validates once; what it refuses is shown on the form.

    Subclasses define ``save_by_service(request, obj, form, change)``, which calls the
    service and returns the saved row. It runs in `save_model`, inside the admin's
    transaction. When the service refuses (ValidationError, or a DomainError such as
    a conflict found under its lock), the transaction is rolled back and the page is
    built again from the submitted data, the service's errors on their fields.
    """

    refused_attribute = "_templates_admin_refused"

    def save_model(self, request, obj, form, change):
        try:
            saved = self.save_by_service(request, obj, form, change)
        except (ValidationError, DomainError) as exc:
            raise _Refused(_error_dict(exc)) from None
        obj.pk = saved.pk  # the admin logs and redirects to the saved row

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except _Refused as refused:
            setattr(request, self.refused_attribute, refused.errors)
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        errors = getattr(request, self.refused_attribute, None)
        if errors is None:
            return form
        return type(form.__name__, (form,), {"service_errors": errors})


def _preview_html(rendered: rendering.RenderedMessage) -> str:
    if rendered.channel == Channel.EMAIL:
        return format_html(
            "<p><strong>Subject:</strong> {}</p>"
            "<p><strong>Preheader:</strong> {}</p>"
            '<iframe sandbox srcdoc="{}" title="HTML preview" '
            'style="width:100%;max-width:800px;height:600px;border:1px solid #ccc;background:#fff"></iframe>'
            '<p><strong>Text part:</strong></p><pre style="white-space:pre-wrap;max-width:800px">{}</pre>',
            rendered.subject,
            rendered.preheader,
            rendered.html,
            rendered.text,
        )
    if rendered.channel == Channel.SMS and rendered.sms is not None:
        return format_html(
            '<pre style="white-space:pre-wrap;max-width:600px">{}</pre><p>{} segment(s), {} {} ({})</p>',
            rendered.text,
            rendered.sms.segments,
            rendered.sms.length,
            "septets" if rendered.sms.encoding == "gsm7" else "UTF-16 units",
            rendered.sms.encoding.upper(),
        )
    return format_html(
        "<p>Parameters for the approved template:</p><pre>{}</pre>",
        json.dumps(rendered.whatsapp_parameters, indent=2, ensure_ascii=False),
    )


# --- Templates ----------------------------------------------------------------------------------


class MessageTemplateForm(ServiceErrorsForm):
    class Meta:
        model = MessageTemplate
        fields = ["organization", *services.TEMPLATE_FIELDS]
        widgets = {
            "subject": forms.TextInput(attrs={"class": "vLargeTextField"}),
            "preheader": forms.TextInput(attrs={"class": "vLargeTextField"}),
            "html_body": forms.Textarea(attrs={"rows": 24, "style": "font-family:monospace;width:90%"}),
            "text_body": forms.Textarea(attrs={"rows": 10, "style": "font-family:monospace;width:90%"}),
            "sms_body": forms.Textarea(attrs={"rows": 5, "style": "font-family:monospace;width:90%"}),
        }


class SendTestForm(forms.Form):
    to = forms.CharField(
        label="Send to",
        help_text="A few addresses, separated by commas.",
        widget=forms.TextInput(attrs={"class": "vLargeTextField"}),
    )

    def clean_to(self) -> list[str]:
        return [address.strip() for address in self.cleaned_data["to"].replace(";", ",").split(",") if address.strip()]


@admin.register(MessageTemplate)
class MessageTemplateAdmin(SavedByServiceAdmin):
    permission_area = Area.TEMPLATES
    form = MessageTemplateForm
    list_display = ["name", "channel", "purpose", "organization", "version", "updated_at"]
    list_filter = ["channel", "purpose", "organization"]
    search_fields = ["name", "subject"]
    actions = ["send_test_action"]
    fieldsets = [
        (None, {"fields": ["organization", "name", "channel", "purpose", "variables"]}),
        ("Email", {"fields": ["layout", "subject", "preheader", "html_body", "text_body"]}),
        ("Sender", {"fields": ["from_name", "from_email", "reply_to"], "classes": ["collapse"]}),
        ("SMS", {"fields": ["sms_body", "sms_segments_display"], "classes": ["collapse"]}),
        (
            "WhatsApp",
            {
                "fields": ["whatsapp_template_name", "whatsapp_language", "whatsapp_parameters"],
                "classes": ["collapse"],
            },
        ),
    ]
    preview_fieldsets = [
        (
            "Preview",
            {
                "fields": ["rendered_preview"],
                "description": "Rendered for a sample contact, or for a "
                "contact of the organization: type a name or an email address below.",
            },
        ),
        ("Versions", {"fields": ["version_history"], "classes": ["collapse"]}),
    ]

    def get_fieldsets(self, request, obj=None):
        return [*self.fieldsets, *self.preview_fieldsets] if obj is not None else self.fieldsets

    def get_readonly_fields(self, request, obj=None):
        readonly = ["sms_segments_display", "rendered_preview", "version_history"]
        return ["organization", *readonly] if obj is not None else readonly

    @admin.display(description="Segments")
    def sms_segments_display(self, obj):
        if obj is None or obj.channel != Channel.SMS:
            return "-"
        return f"{obj.sms_segments} ({obj.sms_length} {obj.sms_encoding.upper()} characters)"

    @admin.display(description="Preview")
    def rendered_preview(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        try:
            rendered = selectors.template_preview(template=obj)
        except rendering.TemplateProblem as exc:
            shown = format_html('<p class="errornote">{}</p>', str(exc))
        else:
            shown = _preview_html(rendered)
        return format_html(
            '<div class="preview-as" data-contacts-url="{}" data-preview-url="{}">'
            '<label for="preview-contact-search">Preview as:</label> '
            '<input type="search" id="preview-contact-search" autocomplete="off" '
            'placeholder="a contact\'s name or email" class="vTextField">'
            '<ul class="preview-contact-results" role="listbox" style="list-style:none;padding:0;margin:4px 0"></ul>'
            '</div><div class="preview-output" aria-live="polite">{}</div>',
            reverse("admin:templates_app_messagetemplate_preview_contacts", args=[obj.pk]),
            reverse("admin:templates_app_messagetemplate_preview", args=[obj.pk]),
            shown,
        )

    @admin.display(description="Versions")
    def version_history(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        rows = obj.versions.select_related("created_by").order_by("-number")[:20]
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li>v{} — {} {}</li>",
                (
                    (version.number, version.created_at.strftime("%Y-%m-%d %H:%M UTC"), version.created_by or "")
                    for version in rows
                ),
            ),
        )

    def save_by_service(self, request, obj, form, change):
        values = {field: form.cleaned_data[field] for field in services.TEMPLATE_FIELDS if field in form.cleaned_data}
        if values.get("channel") == Channel.SMS:
            # The SMS text shows as both text_body and sms_body: the one edited here wins.
            for edited, other in (("sms_body", "text_body"), ("text_body", "sms_body")):
                if edited in form.changed_data and other not in form.changed_data:
                    values.pop(other, None)
        if change:
            return services.template_update(template=obj, by=request.user, **values)
        return services.template_create(organization=form.cleaned_data["organization"], by=request.user, **values)

    # Send test -------------------------------------------------------------------------------------

    def get_urls(self):
        return [
            path(
                "<path:object_id>/send-test/",
                self.admin_site.admin_view(self.send_test_view),
                name="templates_app_messagetemplate_send_test",
            ),
            path(
                "<path:object_id>/preview-contacts/",
                self.admin_site.admin_view(self.preview_contacts_view),
                name="templates_app_messagetemplate_preview_contacts",
            ),
            path(
                "<path:object_id>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name="templates_app_messagetemplate_preview",
            ),
            *super().get_urls(),
        ]

    # Preview as a contact ----------------------------------------------------------------------------

    def _viewable(self, request, object_id) -> MessageTemplate:
        template = self.get_object(request, unquote(object_id))
        if template is None:
            raise Http404("Unknown template.")
        if not self.has_view_permission(request, template):
            raise PermissionDenied
        return template

    def preview_contacts_view(self, request, object_id):
        """Contacts of the template's organization whose name or email starts with what was typed."""
        template = self._viewable(request, object_id)
        text = request.GET.get("q", "")[:100]
        contacts = contact_selectors.contact_search(
            contact_selectors.contact_queryset(organization_id=template.organization_id), text
        ).order_by("email", "id")[:10]
        return JsonResponse(
            {
                "results": [
                    {
                        "id": str(contact.public_id),
                        "text": f"{contact.full_name} <{contact}>" if contact.full_name else str(contact),
                    }
                    for contact in contacts
                ]
            }
        )

    def preview_view(self, request, object_id):
        """The template rendered for one contact of its organization (HTML for the preview box)."""
        template = self._viewable(request, object_id)
        try:
            contact = (
                Contact.objects.active()
                .filter(organization_id=template.organization_id, public_id=request.GET.get("contact", ""))
                .first()
            )
        except ValidationError:
            contact = None
        if contact is None:
            raise Http404("Unknown contact.")
        try:
            rendered = selectors.template_preview(template=template, contact=contact)
        except rendering.TemplateProblem as exc:
            return HttpResponse(format_html('<p class="errornote">{}</p>', str(exc)))
        return HttpResponse(
            format_html(
                "<p><strong>Previewing as {}</strong></p>{}", contact.full_name or contact, _preview_html(rendered)
            )
        )

    def send_test_view(self, request, object_id):
        template = self.get_object(request, unquote(object_id))
        if template is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_change_permission(request, template):
            raise PermissionDenied
        form = SendTestForm(request.POST or None, initial={"to": request.user.email})
        if request.method == "POST" and form.is_valid():
            try:
                recipients = services.template_send_test_queue(template=template, to=form.cleaned_data["to"])
            except ValidationError as exc:
                form.add_error("to" if "to" in exc.message_dict else None, exc.messages)
            except DomainError as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(request, f"Test of {template} queued for {', '.join(recipients)}.", messages.SUCCESS)
                return redirect(reverse("admin:templates_app_messagetemplate_change", args=[template.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": template,
            "form": form,
            "title": f"Send a test of {template}",
        }
        return TemplateResponse(request, "admin/templates_app/messagetemplate/send_test.html", context)

    @admin.action(description="Send a test of the selected template")
    def send_test_action(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one template to send a test of.", messages.WARNING)
            return None
        return redirect(reverse("admin:templates_app_messagetemplate_send_test", args=[queryset.get().pk]))


# --- Layouts ----------------------------------------------------------------------------------------


class LayoutForm(ServiceErrorsForm):
    class Meta:
        model = Layout
        fields = ["organization", "name", "html"]
        widgets = {"html": forms.Textarea(attrs={"rows": 30, "style": "font-family:monospace;width:90%"})}


@admin.register(Layout)
class LayoutAdmin(SavedByServiceAdmin):
    permission_area = Area.TEMPLATES
    form = LayoutForm
    list_display = ["name", "organization", "updated_at"]
    list_filter = ["organization"]
    search_fields = ["name"]

    def get_readonly_fields(self, request, obj=None):
        return ["organization"] if obj is not None else []

    def save_by_service(self, request, obj, form, change):
        # The service refuses renaming a layout that templates name (a ConflictError shown on the form).
        if change:
            return services.layout_update(layout=obj, name=form.cleaned_data["name"], html=form.cleaned_data["html"])
        return services.layout_create(
            organization=form.cleaned_data["organization"],
            name=form.cleaned_data["name"],
            html=form.cleaned_data["html"],
        )

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Templates naming a layout in their Jinja would break: refuse like a protected foreign key.
        for layout in objs:
            protected.extend(f"{user} (uses {layout.name!r})" for user in selectors.layout_users(layout=layout))
        return deleted, counts, perms_needed, protected


# --- Footer ---------------------------------------------------------------------------------------------


class EmailFooterForm(ServiceErrorsForm):
    class Meta:
        model = EmailFooter
        fields = ["organization", "html", "text"]


@admin.register(EmailFooter)
class EmailFooterAdmin(SavedByServiceAdmin):
    permission_area = Area.TEMPLATES
    form = EmailFooterForm
    list_display = ["organization", "updated_at"]

    def get_readonly_fields(self, request, obj=None):
        return ["organization"] if obj is not None else []

    def save_by_service(self, request, obj, form, change):
        organization = obj.organization if change else form.cleaned_data["organization"]
        return services.email_footer_set(
            organization=organization, html=form.cleaned_data["html"], text=form.cleaned_data["text"]
        )


# --- Versions (read only) -------------------------------------------------------------------------------


@admin.register(TemplateVersion)
class TemplateVersionAdmin(TenantModelAdmin):
    permission_area = Area.TEMPLATES
    list_display = ["template", "number", "channel", "organization", "created_at", "created_by"]
    list_filter = ["channel", "organization"]
    search_fields = ["template__name"]
    list_select_related = ["template", "organization", "created_by"]
    exclude = ["layouts"]
    readonly_fields = ["rendered_preview"]

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        return [*(field.name for field in self.model._meta.fields if field.name != "layouts"), "rendered_preview"]

    @admin.display(description="Preview (sample contact)")
    def rendered_preview(self, obj):
        if obj is None:
            return "-"
        values = preview_context(organization=obj.organization, variables=obj.variables)
        try:
            rendered = rendering.render_message(
                selectors.version_source(obj), values, organization_id=obj.organization_id
            )
        except rendering.TemplateProblem as exc:
            return format_html('<p class="errornote">{}</p>', str(exc))
        return _preview_html(rendered)
