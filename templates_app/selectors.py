"""Template reads: rendering sources, the organization's layouts and footer, previews."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from email.utils import formataddr, parseaddr
from typing import Any

from django.conf import settings

from accounts.models import Organization
from contacts.models import Contact
from templates_app import rendering
from templates_app.context import preview_context
from templates_app.models import EmailFooter, Layout, MessageTemplate, TemplateVersion
from templates_app.sandbox import LAYOUT_PREFIX
from templates_app.sms import SmsInfo, sms_info

# The fields rendering and sending use: a version snapshots exactly these (plus the layouts).
CONTENT_FIELDS = (
    "channel",
    "purpose",
    "subject",
    "preheader",
    "html_body",
    "text_body",
    "from_name",
    "from_email",
    "reply_to",
    "sms_body",
    "whatsapp_template_name",
    "whatsapp_language",
    "whatsapp_parameters",
    "variables",
)


def layouts_used(*, organization_id, texts: Iterable[str], names: Iterable[str] = ()) -> dict[str, str]:
    """The organization's layouts that `texts` name (and `names`), and the ones those name in turn.

    Only this organization's layouts are looked up, so another organization's layout
    name is simply missing from the result ("not found" when rendered).
    """
    wanted = set(names)
    for text in texts:
        wanted.update(rendering.parse_problems(text)[1])
    found: dict[str, str] = {}
    asked: set[str] = set()
    while wanted - asked:
        batch = wanted - asked
        asked |= batch
        for name, html in Layout.objects.filter(organization_id=organization_id, name__in=batch).values_list(
            "name", "html"
        ):
            found[name] = html
            wanted.update(rendering.parse_problems(html)[1])
    return found


def layout_users(*, layout: Layout) -> list[str]:
    """Templates and layouts that name this layout in their Jinja (the layout field refers by id)."""
    reference = f"{LAYOUT_PREFIX}{layout.name}"
    users = [
        f"template {name!r}"
        for name, html in MessageTemplate.objects.filter(
            organization_id=layout.organization_id, html_body__contains=reference
        ).values_list("name", "html_body")
        if layout.name in rendering.parse_problems(html)[1]
    ]
    users += [
        f"layout {name!r}"
        for name, html in Layout.objects.filter(organization_id=layout.organization_id, html__contains=reference)
        .exclude(pk=layout.pk)
        .values_list("name", "html")
        if layout.name in rendering.parse_problems(html)[1]
    ]
    return users


def template_source(template: MessageTemplate) -> rendering.TemplateSource:
    """The rendering source of a template as it stands (previews, test sends)."""
    return source_from_values(organization_id=template.organization_id, values=template_values(template))


def source_from_values(*, organization_id, values: Mapping[str, Any]) -> rendering.TemplateSource:
    """The rendering source of template values, with the organization's layouts they use."""
    layout: Layout | None = values.get("layout")
    layouts = layouts_used(
        organization_id=organization_id,
        texts=[values.get("html_body") or ""],
        names=[layout.name] if layout is not None else [],
    )
    return rendering.TemplateSource(
        channel=values["channel"],
        subject=values.get("subject") or "",
        preheader=values.get("preheader") or "",
        html_body=values.get("html_body") or "",
        text_body=values.get("text_body") or "",
        sms_body=values.get("sms_body") or "",
        whatsapp_parameters=values.get("whatsapp_parameters") or None,
        layout=layout.name if layout is not None else "",
        layouts=layouts,
    )


def template_values(template: MessageTemplate) -> dict[str, Any]:
    values = {field: getattr(template, field) for field in CONTENT_FIELDS}
    values["name"] = template.name
    values["layout"] = template.layout
    return values


def version_source(version: TemplateVersion) -> rendering.TemplateSource:
    """The rendering source a campaign uses: everything comes from the snapshot."""
    return rendering.TemplateSource(
        channel=version.channel,
        subject=version.subject,
        preheader=version.preheader,
        html_body=version.html_body,
        text_body=version.text_body,
        sms_body=version.sms_body,
        whatsapp_parameters=version.whatsapp_parameters or None,
        layout=version.layout_name,
        layouts=dict(version.layouts),
    )


def latest_version(template: MessageTemplate) -> TemplateVersion | None:
    return template.versions.order_by("-number").first()


def email_footer(organization: Organization) -> tuple[str, str]:
    """The organization's footer (HTML, text), or the default one."""
    footer = EmailFooter.objects.filter(organization=organization).first()
    if footer is None:
        return EmailFooter.DEFAULT_HTML, EmailFooter.DEFAULT_TEXT
    return footer.html, footer.text


def sender_address(*, from_name: str, from_email: str, organization: Organization) -> str:
    """The From header: the template's overrides, else the organization's defaults, else DEFAULT_FROM_EMAIL."""
    default_name, default_email = parseaddr(settings.DEFAULT_FROM_EMAIL)
    email = from_email or organization.default_from_email or default_email
    name = from_name or organization.default_from_name or (default_name if email == default_email else "")
    return formataddr((name, email)) if name else email


def template_preview(
    *,
    template: MessageTemplate,
    contact: Contact | None = None,
    context: Mapping[str, Any] | None = None,
) -> rendering.RenderedMessage:
    """Render a template as it stands, for a real contact or a sample one, without tracking.

    Raises rendering.CompileError / RenderError (both DomainErrors) with the field and reason.
    """
    source = template_source(template)
    values = preview_context(
        organization=template.organization,
        variables=template.variables,
        contact=contact,
        overrides=context,
    )
    return rendering.render_message(source, values, organization_id=template.organization_id)


def sms_sample_info(
    *, organization: Organization, source: rendering.TemplateSource, variables: Mapping[str, Any] | None = None
) -> SmsInfo:
    """Encoding, length and segments of an SMS source rendered for the sample contact (measured on the
    source itself when it cannot render). What cost estimates multiply by the number of messages."""
    try:
        context = preview_context(organization=organization, variables=variables or {})
        text = rendering.render_message(source, context, organization_id=organization.pk).text
    except rendering.TemplateProblem:
        text = source.sms_body
    return sms_info(text)
