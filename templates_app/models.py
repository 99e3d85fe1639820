"""Message templates per channel, the layouts they fill, and the versions campaigns keep.

Every template save that changes what a message would look like records a
`TemplateVersion`: an immutable snapshot of every field rendering and sending
use, the layouts included. Campaigns point at a version, so editing a template
(or one of its layouts) never changes a campaign that was already launched.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from accounts.models import TenantModel


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    WHATSAPP = "whatsapp", "WhatsApp"


class Purpose(models.TextChoices):
    MARKETING = "marketing", "Marketing"
    TRANSACTIONAL = "transactional", "Transactional"


def validate_layout_name(value: str) -> None:
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
    if not value or not value[0].isalnum() or any(char not in allowed for char in value):
        raise ValidationError(
            "Use letters, digits, '_', '.' and '-', starting with a letter or digit.", code="invalid_layout_name"
        )


class Layout(TenantModel):
    """Reusable HTML around a template's body: the body fills `{% block content %}`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(
        max_length=100,
        validators=[validate_layout_name],
        help_text='Templates refer to it as "layout:<name>".',
    )
    html = models.TextField(help_text="Jinja2 HTML with a {% block content %}{% endblock %} for the template's body.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="templates_layout_org_name_unique"),
        ]

    def __str__(self) -> str:
        return self.name


class MessageTemplate(TenantModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.EMAIL)
    purpose = models.CharField(
        max_length=16,
        choices=Purpose.choices,
        default=Purpose.MARKETING,
        help_text="Marketing email always carries an unsubscribe link.",
    )
    layout = models.ForeignKey(
        Layout,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="templates",
        help_text="The HTML body fills this layout's content block.",
    )
    subject = models.CharField(max_length=1000, blank=True, default="")
    preheader = models.CharField(max_length=1000, blank=True, default="", help_text="Preview text shown in inboxes.")
    html_body = models.TextField(blank=True, default="")
    text_body = models.TextField(blank=True, default="", help_text="Empty: generated from the HTML body.")
    from_name = models.CharField(max_length=200, blank=True, default="")
    from_email = models.EmailField(blank=True, default="")
    reply_to = models.EmailField(blank=True, default="")
    sms_body = models.TextField(blank=True, default="")
    sms_encoding = models.CharField(max_length=8, blank=True, default="", editable=False)
    sms_length = models.PositiveIntegerField(default=0, editable=False)
    sms_segments = models.PositiveIntegerField(default=0, editable=False)
    whatsapp_template_name = models.CharField(max_length=512, blank=True, default="")
    whatsapp_language = models.CharField(max_length=16, blank=True, default="", help_text="e.g. en or en_US")
    whatsapp_parameters = models.JSONField(
        default=list,
        blank=True,
        help_text='Jinja per parameter: ["{{ contact.first_name }}", ...] or {"body": [...], "header": [...]}.',
    )
    variables = models.JSONField(default=dict, blank=True, help_text="Default campaign variables, by name.")
    version = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "created_at"]
        indexes = [models.Index(fields=["organization", "channel"], name="templates_tpl_org_channel")]

    def __str__(self) -> str:
        return self.name


class TemplateVersion(TenantModel):
    """What a template looked like at one moment. Never changed once written."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    template = models.ForeignKey(MessageTemplate, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    channel = models.CharField(max_length=16, choices=Channel.choices)
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    subject = models.CharField(max_length=1000, blank=True, default="")
    preheader = models.CharField(max_length=1000, blank=True, default="")
    html_body = models.TextField(blank=True, default="")
    text_body = models.TextField(blank=True, default="")
    from_name = models.CharField(max_length=200, blank=True, default="")
    from_email = models.EmailField(blank=True, default="")
    reply_to = models.EmailField(blank=True, default="")
    sms_body = models.TextField(blank=True, default="")
    whatsapp_template_name = models.CharField(max_length=512, blank=True, default="")
    whatsapp_language = models.CharField(max_length=16, blank=True, default="")
    whatsapp_parameters = models.JSONField(default=list, blank=True)
    variables = models.JSONField(default=dict, blank=True)
    layout_name = models.CharField(max_length=100, blank=True, default="")
    layouts = models.JSONField(default=dict, blank=True, help_text="The layouts the template used, by name.")
    content_hash = models.CharField(max_length=64)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["template", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["template", "number"], name="templates_version_template_number_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.template.name} v{self.number}"

    def save(self, *args, **kwargs):
        # A version is evidence of what was sent: it is written once.
        if not self._state.adding:
            raise ValidationError("Template versions cannot be changed.")
        super().save(*args, **kwargs)


class EmailFooter(TenantModel):
    """The organization's footer, appended to marketing email that has no unsubscribe link."""

    DEFAULT_HTML = (
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="margin-top:32px;">\n'
        "  <tr>\n"
        '    <td style="padding:16px;font-family:Helvetica,Arial,sans-serif;font-size:12px;line-height:18px;'
        'color:#888888;text-align:center;">\n'
        "      You receive this email because you subscribed to messages from {{ organization.name }}.<br>\n"
        '      <a href="{{ unsubscribe_url }}" style="color:#888888;">Unsubscribe</a>\n'
        "    </td>\n"
        "  </tr>\n"
        "</table>"
    )
    DEFAULT_TEXT = (
        "You receive this email because you subscribed to messages from {{ organization.name }}.\n"
        "Unsubscribe: {{ unsubscribe_url }}"
    )

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    html = models.TextField(default=DEFAULT_HTML, help_text="Jinja2 HTML; must contain {{ unsubscribe_url }}.")
    text = models.TextField(default=DEFAULT_TEXT, help_text="Jinja2 text; must contain {{ unsubscribe_url }}.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization"], name="templates_footer_org_unique")]

    def __str__(self) -> str:
        return f"Footer of {self.organization}"
