"""Template writes. The API, the admin and the campaign engine all go through here.

Rules applied on every save (`template_clean`), the source compiled once:

* Bodies are Jinja2 and must compile in the sandbox; a problem is reported on
  its field with the line: ``{"html_body": ["line 3: unexpected '}'"]}``.
  Fields are limited to 512 KB, a template with the layouts it uses to 1 MB
  and 5,000 Jinja elements all together (compiling costs time), and nesting
  depth is limited; private attributes (``__class__``) are refused.
* Every variable a template reads must exist when it is sent: the reserved names
  (``contact``, ``organization``, ``campaign``, ``unsubscribe_url``,
  ``view_in_browser_url``, ``callback_url``), Jinja's globals (``range``,
  ``namespace``, ``loop``...), what the template sets itself, or a name declared in
  its ``variables``: ``{{ promo_cod }}`` is refused with "html_body: line 1:
  unknown variable 'promo_cod' (declare it in variables)" instead of failing
  every message at send time. Campaigns pass their own ``variables`` at send time,
  merged over the template's defaults, so a template must declare (with a default
  value) every campaign variable it uses.
* Each channel has its required fields: email a subject and an HTML or text
  body; SMS a body (its GSM-7/UCS-2 segment count is stored); WhatsApp the
  provider template's name and language.
* Unsubscribe footer: a *marketing* email whose HTML, together with every layout
  it uses, never mentions ``{{ unsubscribe_url }}`` gets the organization's
  footer (``EmailFooter``, or a default one with an unsubscribe link) inserted
  before ``</body>``, or appended when there is no ``</body>`` (or the HTML cannot
  be parsed). An explicit text body without ``{{ unsubscribe_url }}`` gets the
  footer's text version appended. A body that ``{% extends %}`` a layout itself
  (rather than choosing it with the ``layout`` field) has nowhere to put it, so
  it is refused until the layout or one of its blocks has the link.
  Transactional templates are left as written.
* A save that changes anything a message is made of records a new
  `TemplateVersion`; `template_snapshot` returns the version a campaign keeps.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from accounts.models import Organization, User
from config.errors import ConflictError, DomainError
from templates_app import rendering, selectors, tracking_html
from templates_app.context import RESERVED_NAMES
from templates_app.models import Channel, EmailFooter, Layout, MessageTemplate, Purpose, TemplateVersion
from templates_app.sandbox import MAX_SOURCE_SIZE

TEMPLATE_FIELDS = ("name", "layout", *selectors.CONTENT_FIELDS)


# --- Templates ------------------------------------------------------------------------------------


def template_clean(*, organization: Organization, values: dict[str, Any]) -> dict[str, Any]:
    """Validate a template's full set of values and apply the save rules; returns the values to store.

    Raises ValidationError naming each field with its problems.
    """
    values = dict(values)
    errors: dict[str, list[str]] = {}

    def fail(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    channel = values.get("channel") or Channel.EMAIL
    values["channel"] = channel
    values["purpose"] = values.get("purpose") or Purpose.MARKETING
    for field in ("subject", "preheader", "html_body", "text_body", "sms_body"):
        values[field] = values.get(field) or ""
        if len(values[field]) > MAX_SOURCE_SIZE:
            fail(field, f"The template is larger than {MAX_SOURCE_SIZE // 1024} KB.")
    if not (values.get("name") or "").strip():
        fail("name", "This field may not be blank.")

    layout: Layout | None = values.get("layout")
    if layout is not None and layout.organization_id != organization.pk:
        fail("layout", "No such layout in this organization.")
    if layout is not None and rendering.extends_a_layout(values["html_body"]):
        fail("html_body", "Choose the layout with the layout field or with {% extends %}, not both.")

    if channel == Channel.EMAIL:
        if not values["subject"].strip():
            fail("subject", "An email needs a subject.")
        if not values["html_body"].strip() and not values["text_body"].strip():
            fail("html_body", "An email needs an HTML or a text body.")
    elif channel == Channel.SMS:
        # One message, two names: `text_body` (the API's) and `sms_body` hold the same text.
        body = values["sms_body"] or values["text_body"]
        values["sms_body"] = values["text_body"] = body
        if not body.strip():
            fail("text_body", "An SMS needs a body.")
    elif channel == Channel.WHATSAPP:
        if not (values.get("whatsapp_template_name") or "").strip():
            fail("whatsapp_template_name", "A WhatsApp message needs the name of the approved template.")
        if not _valid_language(values.get("whatsapp_language") or ""):
            fail("whatsapp_language", "Give the template's language code, e.g. en or en_US.")

    values["variables"] = values.get("variables") or {}
    for message in _variables_problems(values["variables"]):
        fail("variables", message)
    values["whatsapp_parameters"] = values.get("whatsapp_parameters") or []
    for message in _whatsapp_parameters_problems(values["whatsapp_parameters"]):
        fail("whatsapp_parameters", message)
    if errors:
        raise ValidationError(errors)

    source = selectors.source_from_values(organization_id=organization.pk, values=values)
    context_names = RESERVED_NAMES | set(values["variables"])
    problems = rendering.static_problems(source, context_names=context_names)
    if problems:
        raise ValidationError(problems)

    final = source
    if channel == Channel.EMAIL and values["purpose"] == Purpose.MARKETING:
        _add_unsubscribe_footer(organization=organization, values=values, layouts=source.layouts, errors=errors)
        if errors:
            raise ValidationError(errors)
        if (values["html_body"], values["text_body"]) != (source.html_body, source.text_body):
            final = dataclasses.replace(source, html_body=values["html_body"], text_body=values["text_body"])
    # Compiled once, as it will be stored.
    problems = rendering.check_source(final, context_names=context_names, organization_id=organization.pk)
    if problems and final is not source:
        # Reported on the text as written, so line numbers are the author's (only when something is wrong).
        problems = rendering.check_source(source, context_names=context_names) or problems
    if problems:
        raise ValidationError(problems)

    values.update(_sms_fields(organization=organization, source=final, values=values))
    return values


def _valid_language(code: str) -> bool:
    parts = code.replace("-", "_").split("_")
    return 0 < len(code) <= 16 and all(part.isalnum() and part.isascii() for part in parts)


def _variables_problems(variables: object) -> list[str]:
    if not isinstance(variables, dict):
        return ["Give an object of variable names and values."]
    problems = []
    for name in variables:
        if not name.isidentifier() or name.startswith("_"):
            problems.append(f"{name!r} is not a valid variable name (letters, digits and _, not starting with _).")
        elif name in RESERVED_NAMES:
            problems.append(f"{name!r} is reserved.")
    return problems


def _whatsapp_parameters_problems(parameters: object) -> list[str]:
    def strings(value: object) -> bool:
        return isinstance(value, list) and all(isinstance(item, str) for item in value)

    if strings(parameters):
        return []
    if isinstance(parameters, dict) and all(isinstance(value, str) or strings(value) for value in parameters.values()):
        return []
    return ['Give a list of Jinja strings, or an object of them: {"body": ["{{ contact.first_name }}"]}.']


def _add_unsubscribe_footer(
    *, organization: Organization, values: dict[str, Any], layouts: dict[str, str], errors: dict
) -> None:
    html, text = values["html_body"], values["text_body"]
    footer_html, footer_text = selectors.email_footer(organization)
    has_link = any(rendering.uses_name(source, "unsubscribe_url") for source in [html, *layouts.values()])
    if html.strip() and not has_link:
        if rendering.extends_a_layout(html):
            errors.setdefault("html_body", []).append(
                "This marketing email has no {{ unsubscribe_url }} link, and a template that extends a layout "
                "has nowhere to add the footer: add the link to the layout or to one of this template's blocks."
            )
        else:
            at = tracking_html.body_close_offset(html)
            if at is None:
                values["html_body"] = f"{html.rstrip()}\n{footer_html}\n"
            else:
                values["html_body"] = f"{html[:at]}{footer_html}\n{html[at:]}"
    if text.strip() and not rendering.uses_name(text, "unsubscribe_url"):
        values["text_body"] = f"{text.rstrip()}\n\n{footer_text}\n"


def _sms_fields(*, organization: Organization, source: rendering.TemplateSource, values: dict) -> dict[str, Any]:
    """Encoding and segments of the SMS body, measured on a sample render (the source when it cannot render)."""
    if values["channel"] != Channel.SMS:
        return {"sms_encoding": "", "sms_length": 0, "sms_segments": 0}
    info = selectors.sms_sample_info(organization=organization, source=source, variables=values["variables"])
    return {"sms_encoding": info.encoding, "sms_length": info.length, "sms_segments": info.segments}


def _version_content(template: MessageTemplate) -> dict[str, Any]:
    content = {field: getattr(template, field) for field in selectors.CONTENT_FIELDS}
    content["layout_name"] = template.layout.name if template.layout_id else ""
    content["layouts"] = selectors.layouts_used(
        organization_id=template.organization_id,
        texts=[template.html_body],
        names=[content["layout_name"]] if content["layout_name"] else [],
    )
    return content


def _record_version(template: MessageTemplate, *, by: User | None = None) -> TemplateVersion:
    """The latest version if it matches the template's content, else a new one."""
    content = _version_content(template)
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()
    latest = selectors.latest_version(template)
    if latest is not None and latest.content_hash == digest:
        return latest
    number = (latest.number if latest is not None else 0) + 1
    version = TemplateVersion.objects.create(
        organization_id=template.organization_id,
        template=template,
        number=number,
        content_hash=digest,
        created_by=by if by is not None and by.is_authenticated else None,
        **content,
    )
    template.version = number
    template.save(update_fields=["version"])
    return version


def _store(template: MessageTemplate, values: dict[str, Any]) -> None:
    for field, value in values.items():
        if field in TEMPLATE_FIELDS or field in ("sms_encoding", "sms_length", "sms_segments"):
            setattr(template, field, value)


def _sms_body_given(values: dict[str, Any], *, channel: str) -> dict[str, Any]:
    """For an SMS, `text_body` and `sms_body` are one field: whichever is given sets both."""
    if channel != Channel.SMS:
        return values
    given = {field: values[field] for field in ("text_body", "sms_body") if field in values}
    if not given:
        return values
    texts = {text for text in given.values() if text}
    if len(texts) > 1:
        raise ValidationError({"text_body": ["For an SMS, text_body and sms_body are the same field; give one."]})
    text = texts.pop() if texts else ""
    return {**values, "text_body": text, "sms_body": text}


def _unknown_fields(values: dict[str, Any]) -> None:
    unknown = set(values) - set(TEMPLATE_FIELDS)
    if unknown:
        raise TypeError(f"Unknown template fields: {', '.join(sorted(unknown))}")


@transaction.atomic
def template_create(*, organization: Organization, by: User | None = None, **values: Any) -> MessageTemplate:
    """Create a template after validating it; records version 1."""
    _unknown_fields(values)
    values = _sms_body_given(values, channel=values.get("channel") or Channel.EMAIL)
    cleaned = template_clean(organization=organization, values=values)
    template = MessageTemplate(organization=organization)
    _store(template, cleaned)
    template.save()
    _record_version(template, by=by)
    return template


@transaction.atomic
def template_update(*, template: MessageTemplate, by: User | None = None, **changes: Any) -> MessageTemplate:
    """Change a template; a new version is recorded when the content changed, never an old one edited."""
    _unknown_fields(changes)
    locked = (
        MessageTemplate.objects.select_for_update(of=("self",))
        .select_related("organization", "layout")
        .get(pk=template.pk)
    )
    changes = _sms_body_given(changes, channel=changes.get("channel") or locked.channel)
    values = {**selectors.template_values(locked), **changes}
    cleaned = template_clean(organization=locked.organization, values=values)
    _store(locked, cleaned)
    locked.save()
    _record_version(locked, by=by)
    return locked


def template_delete(*, template: MessageTemplate) -> None:
    """Delete a template and its versions; refused while a campaign uses one of them."""
    try:
        with transaction.atomic():
            template.delete()
    except ProtectedError:
        raise ConflictError("This template is used by a campaign and cannot be deleted.") from None


@transaction.atomic
def template_snapshot(*, template: MessageTemplate) -> TemplateVersion:
    """The version a campaign keeps: the latest one, recorded anew if the template or its layouts changed since.

    The save rules are applied again (a layout may have lost its unsubscribe link),
    so this raises ValidationError when the template can no longer be sent.
    """
    locked = (
        MessageTemplate.objects.select_for_update(of=("self",))
        .select_related("organization", "layout")
        .get(pk=template.pk)
    )
    values = selectors.template_values(locked)
    cleaned = template_clean(organization=locked.organization, values=values)
    if any(getattr(locked, field) != value for field, value in cleaned.items() if field in TEMPLATE_FIELDS):
        _store(locked, cleaned)
        locked.save()
    return _record_version(locked)


def _test_recipients(*, template: MessageTemplate, to: list[str]) -> list[str]:
    if template.channel != Channel.EMAIL:
        raise DomainError("Only email templates can be sent as a test by email.")
    recipients = [address.strip() for address in to if address.strip()]
    if not recipients:
        raise ValidationError({"to": ["Give at least one address."]})
    recipients = list(dict.fromkeys(recipients))
    limit = settings.TEST_SEND_MAX_RECIPIENTS
    if len(recipients) > limit:
        raise ValidationError({"to": [f"Send a test to at most {limit} addresses."]})
    for address in recipients:
        try:
            validate_email(address)
        except ValidationError:
            raise ValidationError({"to": [f"{address!r} is not a valid email address."]}) from None
    return recipients


def template_send_test(
    *, template: MessageTemplate, to: list[str], context: dict[str, Any] | None = None
) -> rendering.RenderedMessage:
    """Render the template with a sample contact (or `context`) and email it to `to`, marked as a test.

    Sends through Django's configured email backend. Raises ValidationError for bad
    addresses and rendering.RenderError when the template does not render.
    """
    recipients = _test_recipients(template=template, to=to)
    rendered = selectors.template_preview(template=template, context=context)
    from_email = selectors.sender_address(
        from_name=template.from_name, from_email=template.from_email, organization=template.organization
    )
    # One message per address, as a campaign sends: no tester sees the others' addresses.
    messages = []
    for recipient in recipients:
        message = EmailMultiAlternatives(
            subject=f"[Test] {rendered.subject}",
            body=rendered.text,
            from_email=from_email,
            to=[recipient],
            reply_to=[template.reply_to] if template.reply_to else None,
        )
        if rendered.html:
            message.attach_alternative(rendered.html, "text/html")
        messages.append(message)
    with get_connection() as connection:
        connection.send_messages(messages)
    return rendered


def template_send_test_queue(*, template: MessageTemplate, to: list[str]) -> list[str]:
    """Check the addresses and that the template renders, then send the test from a worker after commit.

    Returns the recipients. Raises like `template_send_test`, so mistakes show at once.
    """
    from templates_app.tasks import template_send_test_task

    recipients = _test_recipients(template=template, to=to)
    selectors.template_preview(template=template)
    template_id = str(template.pk)
    transaction.on_commit(lambda: template_send_test_task.delay(template_id=template_id, to=recipients))
    return recipients


# --- Layouts ----------------------------------------------------------------------------------------


def layout_clean(*, organization: Organization, name: str, html: str, current: Layout | None = None) -> None:
    """Validate a layout: unique name, compiles, has a content block, uses only existing layouts, no loops."""
    errors: dict[str, list[str]] = {}
    clash = Layout.objects.filter(organization=organization, name=name)
    if current is not None:
        clash = clash.exclude(pk=current.pk)
    if clash.exists():
        errors["name"] = [f"A layout named {name!r} already exists."]
    if len(html) > MAX_SOURCE_SIZE:
        errors["html"] = [f"The layout is larger than {MAX_SOURCE_SIZE // 1024} KB."]
        raise ValidationError(errors)
    problems, references = rendering.parse_problems(html)
    messages = [str(problem) for problem in problems]
    if not problems and not rendering.defines_block(html, rendering.CONTENT_BLOCK):
        messages.append("A layout needs a {% block content %}{% endblock %} for the template's body.")
    if not messages:
        others = selectors.layouts_used(organization_id=organization.pk, texts=[html])
        others.pop(name, None)
        for missing, lineno in references.items():
            if missing != name and missing not in others:
                messages.append(f"line {lineno}: layout {missing!r} not found")
        if name in _layouts_reachable(name=name, html=html, layouts=others):
            messages.append("A layout cannot use itself, directly or through other layouts.")
        if not messages:
            source = rendering.TemplateSource(channel=Channel.EMAIL, html_body=html, layouts=others)
            messages.extend(message for found in rendering.check_source(source).values() for message in found)
    if messages:
        errors["html"] = messages
    if errors:
        raise ValidationError(errors)


def _layouts_reachable(*, name: str, html: str, layouts: dict[str, str]) -> set[str]:
    reached: set[str] = set()
    pending = list(rendering.parse_problems(html)[1])
    while pending:
        current = pending.pop()
        if current in reached:
            continue
        reached.add(current)
        if current in layouts:
            pending.extend(rendering.parse_problems(layouts[current])[1])
    return reached


@transaction.atomic
def layout_create(*, organization: Organization, name: str, html: str) -> Layout:
    """Create a layout; its HTML must compile and have a content block."""
    name = name.strip()
    layout_clean(organization=organization, name=name, html=html)
    try:
        with transaction.atomic():
            return Layout.objects.create(organization=organization, name=name, html=html)
    except IntegrityError:
        raise ValidationError({"name": [f"A layout named {name!r} already exists."]}) from None


@transaction.atomic
def layout_update(*, layout: Layout, name: str | None = None, html: str | None = None) -> Layout:
    """Change a layout. Renaming is refused while templates or layouts name it in their Jinja."""
    locked = Layout.objects.select_for_update().get(pk=layout.pk)
    new_name = locked.name if name is None else name.strip()
    new_html = locked.html if html is None else html
    if new_name != locked.name:
        users = selectors.layout_users(layout=locked)
        if users:
            raise ConflictError(f"Layout {locked.name!r} is named by {', '.join(users)}; it cannot be renamed.")
    layout_clean(organization=locked.organization, name=new_name, html=new_html, current=locked)
    locked.name, locked.html = new_name, new_html
    locked.save()
    return locked


def layout_delete(*, layout: Layout) -> None:
    """Delete a layout that no template or layout uses."""
    users = selectors.layout_users(layout=layout)
    users += [f"template {name!r}" for name in layout.templates.values_list("name", flat=True)]
    if users:
        raise ConflictError(f"Layout {layout.name!r} is used by {', '.join(users)}.")
    try:
        with transaction.atomic():
            layout.delete()
    except ProtectedError:
        raise ConflictError(f"Layout {layout.name!r} is used by a template.") from None


# --- Footer --------------------------------------------------------------------------------------------


def email_footer_clean(*, html: str, text: str) -> None:
    """Both versions of a footer must compile, use no layouts and contain {{ unsubscribe_url }}.

    A footer goes into every template of the organization, so it may only read the
    reserved names (``contact``, ``organization``...), never a template's variables.
    """
    errors: dict[str, list[str]] = {}
    for field, value in (("html", html), ("text", text)):
        problems, references = rendering.parse_problems(value)
        messages = [str(problem) for problem in problems]
        if references:
            messages.append("The footer cannot use layouts.")
        if not problems and not rendering.uses_name(value, "unsubscribe_url"):
            messages.append("The footer must contain {{ unsubscribe_url }}.")
        if not problems:
            messages.extend(
                f"line {lineno}: unknown variable {name!r} (a footer can only use {', '.join(sorted(RESERVED_NAMES))})"
                for name, lineno in rendering.unknown_variables(value, context_names=RESERVED_NAMES).items()
            )
        if messages:
            errors[field] = messages
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def email_footer_set(*, organization: Organization, html: str, text: str) -> EmailFooter:
    """Set the organization's unsubscribe footer (used by the next saves of marketing email)."""
    email_footer_clean(html=html, text=text)
    footer, _ = EmailFooter.objects.update_or_create(organization=organization, defaults={"html": html, "text": text})
    return footer
