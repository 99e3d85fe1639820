"""Campaign reads: stats, the senders and sending domains a campaign uses, and what a message
renders with (its template version and context, for the send path and for view-in-browser)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from email.utils import formataddr, parseaddr
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q
from django.db.models.functions import TruncDate

from callbacks.tokens import callback_url
from campaigns.models import (
    Campaign,
    CampaignKind,
    CampaignVariant,
    Message,
    MessageStatus,
    SendingDomain,
    SendingDomainStatus,
    SequenceStep,
    step_order,
)
from campaigns.rates import rates
from templates_app import rendering
from templates_app import selectors as template_selectors
from templates_app.context import contact_context, message_context, organization_context
from templates_app.models import Channel, TemplateVersion
from tracking import selectors as tracking_selectors
from tracking import tokens

M = MessageStatus
# A message counts in every stage it has passed: a clicked message was also delivered and opened.
REACHED = {
    "sent": Q(status__gte=M.SENT, status__lte=M.COMPLAINED),
    "delivered": Q(status__in=[M.DELIVERED, M.OPENED, M.CLICKED, M.COMPLAINED]),
    "opened": Q(status__in=[M.OPENED, M.CLICKED]),
    "clicked": Q(status=M.CLICKED),
    "bounced": Q(status=M.BOUNCED),
    "complained": Q(status=M.COMPLAINED),
    "failed": Q(status=M.FAILED),
    "unknown": Q(status=M.UNKNOWN),
}


def _kpis(messages) -> dict[str, Any]:
    unsubscribed_by_event = Exists(tracking_selectors.unsubscribe_events().filter(message_id=OuterRef("pk")))
    counts = messages.aggregate(
        planned=Count("id"),
        unsubscribed=Count("id", filter=Q(unsubscribed_by_event)),
        **{name: Count("id", filter=condition) for name, condition in REACHED.items()},
    )
    return {**counts, **rates(counts)}


def campaign_stats(*, campaign: Campaign) -> dict[str, Any]:
    """Live figures from message statuses (unique per message; machine opens and clicks never move a
    status) and unsubscribe events. Rates are over sent - bounced (campaigns.rates), so they
    hold when a provider never reports delivery."""
    messages = Message.objects.filter(campaign=campaign)
    timeline = (
        messages.filter(sent_at__isnull=False)
        .annotate(date=TruncDate("sent_at"))
        .values("date")
        .annotate(
            sent=Count("id"),
            opened=Count("id", filter=REACHED["opened"]),
            clicked=Count("id", filter=REACHED["clicked"]),
        )
        .order_by("date")
    )
    variants = [
        {"variant": variant.name, "kpis": _kpis(messages.filter(variant=variant))}
        for variant in campaign.variants.all()
    ]
    from campaigns.ab import campaign_ab_state

    return {
        "kpis": _kpis(messages),
        "timeline": list(timeline),
        "variants": variants,
        "ab_test": campaign_ab_state(campaign),
        "cost": campaign_cost(campaign=campaign),
    }


# --- cost of SMS and WhatsApp ------------------------------------------------------------------------
#
# An SMS costs the organization's price per segment times its segments, a WhatsApp template message
# the price per message. Segments are counted once per template version, on the sample contact's
# render (as the template shows them), and multiplied by the number of messages: never a render per
# message. Email has no per-message price: its cost is null.

COST_PLACES = Decimal("0.0001")


def cost_figure(*, organization, channel: str, messages: int, segments: int) -> dict[str, Any] | None:
    """`{amount, currency, segments}` for `messages` on `channel` that take `segments` SMS segments in
    all (WhatsApp: one per message); amount null while the organization has no price for the channel."""
    if channel == Channel.SMS:
        price = organization.sms_segment_price
    elif channel == Channel.WHATSAPP:
        price, segments = organization.whatsapp_message_price, messages
    else:
        return None
    amount = None if price is None else str((price * segments).quantize(COST_PLACES, rounding=ROUND_HALF_UP))
    return {"amount": amount, "currency": organization.message_price_currency, "segments": segments}


def version_segments(*, campaign: Campaign, version: TemplateVersion | None) -> int:
    """SMS segments one message of this template version takes (0 without a version)."""
    if version is None or campaign.channel != Channel.SMS:
        return 0
    info = template_selectors.sms_sample_info(
        organization=campaign.organization,
        source=template_selectors.version_source(version),
        variables={**(version.variables or {}), **(campaign.variables or {})},
    )
    return info.segments


def campaign_cost(*, campaign: Campaign) -> dict[str, Any] | None:
    """What the campaign's messages sent so far cost: messages counted per step and variant in one
    query, times the segments of that step's and variant's template version."""
    if campaign.channel not in (Channel.SMS, Channel.WHATSAPP):
        return None
    groups = (
        Message.objects.filter(REACHED["sent"], campaign=campaign)
        .values("step", "variant_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    variants = {variant.pk: variant for variant in campaign.variants.select_related("template_version")}
    messages = segments = 0
    per_version: dict[Any, int] = {}
    for row in groups:
        messages += row["n"]
        if campaign.channel != Channel.SMS:
            continue
        version = message_template_version(campaign=campaign, step=row["step"], variant=variants.get(row["variant_id"]))
        key = version.pk if version is not None else None
        if key not in per_version:
            per_version[key] = version_segments(campaign=campaign, version=version)
        segments += row["n"] * per_version[key]
    return cost_figure(
        organization=campaign.organization, channel=campaign.channel, messages=messages, segments=segments
    )


# --- senders and sending domains -------------------------------------------------------------------
#
# Which From a campaign message carries:
# * with `sending_domains`, the template's sender (the template's from_email, else the organization's
#   default_from_email, else the system DEFAULT_FROM_EMAIL) with its domain replaced by the message's
#   planned sending domain;
# * without, the template's sender exactly as written.
# Every domain that ends up in a From must be a verified SendingDomain of the organization, except the
# system DEFAULT_FROM_EMAIL used as the last fallback: it is the operator's own address.

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


@dataclass(frozen=True)
class FromDomain:
    """A domain a campaign would send from, where it comes from, and the API field that sets it."""

    domain: str
    source: str
    field: str


@dataclass(frozen=True)
class Sender:
    header: str  # the From header, with the display name
    address: str  # the bare address
    origin: str  # "template", "organization" or "operator" (the system DEFAULT_FROM_EMAIL)


def domain_normalize(value: Any) -> str:
    """The lower-case ASCII (IDNA) form of a domain name; raises ValueError saying why `value` is not one."""
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a domain name.")
    text = value.strip().rstrip(".").lower()
    if not text or "@" in text or len(text) > 253:
        raise ValueError(f"{value!r} is not a domain name.")
    try:
        ascii_form = text.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"{value!r} is not a domain name.") from None
    labels = ascii_form.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        raise ValueError(f"{value!r} is not a domain name (e.g. mail.example.com).")
    return ascii_form


def address_domain(address: str) -> str:
    """The normalized domain of an email address ('' when it has none)."""
    domain = address.rpartition("@")[2].strip(" >")
    try:
        return domain_normalize(domain)
    except ValueError:
        return domain.lower()


def sender_of(source, *, organization) -> Sender:
    """The From of a template or template version as it is sent (no sending domain applied)."""
    from templates_app.selectors import sender_address

    from_name = getattr(source, "from_name", "") or ""
    from_email = getattr(source, "from_email", "") or ""
    header = sender_address(from_name=from_name, from_email=from_email, organization=organization)
    if from_email:
        origin = "template"
    elif organization.default_from_email:
        origin = "organization"
    else:
        origin = "operator"
    return Sender(header=header, address=parseaddr(header)[1], origin=origin)


def from_address_for(address: str, domain: str) -> str:
    """The address with its domain replaced by a sending domain, as sending does."""
    local = address.rpartition("@")[0]
    return f"{local}@{domain}" if local and domain else address


def _main_source(campaign: Campaign):
    """The template (version, once launched) whose sender a campaign's messages carry by default."""
    if campaign.template_version_id:
        return campaign.template_version
    if campaign.template_id:
        return campaign.template
    if campaign.pk:
        variant = campaign.variants.select_related("template", "template_version").order_by("name").first()
        if variant is not None:
            return variant.template_version or variant.template
    return None


def campaign_sender(campaign: Campaign) -> Sender:
    """The From of the campaign's main template as written (the first variant's without a template)."""
    return sender_of(_main_source(campaign), organization=campaign.organization)


def campaign_test_sender(campaign: Campaign) -> tuple[str, FromDomain | None]:
    """The From header of a test send (the campaign's template, on its first sending domain if it has
    any, as its messages would be), and the domain to verify (None for the operator's own address)."""
    sender = sender_of(campaign.template, organization=campaign.organization)
    if campaign.sending_domains:
        try:
            domain = domain_normalize(campaign.sending_domains[0])
        except ValueError:
            domain = str(campaign.sending_domains[0]).strip().lower()  # never verified: refused below
        name, address = parseaddr(sender.header)
        address = from_address_for(address, domain)
        return (formataddr((name, address)) if name else address), FromDomain(
            domain, "sending_domains", "sending_domains"
        )
    return sender.header, template_from_domain(campaign.template, organization=campaign.organization)


def template_from_domain(source, *, organization) -> FromDomain | None:
    """The domain a template sends from, or None when it falls back to the operator's DEFAULT_FROM_EMAIL."""
    sender = sender_of(source, organization=organization)
    if sender.origin == "operator":
        return None
    if sender.origin == "template":
        name = getattr(source, "name", "")
        where = f"the from_email of template {name!r}" if name else "the from_email of the campaign's template"
    else:
        where = "the organization's default_from_email"
    return FromDomain(domain=address_domain(sender.address), source=where, field="from_email")


def campaign_from_domains(campaign: Campaign) -> list[FromDomain]:
    """Every domain the campaign's messages would carry in their From, once each."""
    from templates_app.models import MessageTemplate

    if campaign.sending_domains:
        found = []
        for domain in campaign.sending_domains:
            try:
                found.append(FromDomain(domain_normalize(domain), "sending_domains", "sending_domains"))
            except ValueError:
                continue  # campaign_validate names it
        return list({item.domain: item for item in found}.values())
    sources = [campaign.template] if campaign.template_id else []
    if campaign.pk:
        sources += [variant.template for variant in campaign.variants.select_related("template")]
    followup = campaign.followup if isinstance(campaign.followup, dict) else {}
    if followup.get("enabled"):
        try:
            followup_id = uuid.UUID(str(followup.get("template")))
        except ValueError:
            followup_id = None  # campaign_validate names it
        if followup_id is not None:
            sources += list(MessageTemplate.objects.filter(organization_id=campaign.organization_id, pk=followup_id))
    if not sources:
        sources = [None]  # the organization's default sender still applies
    found = {}
    for source in sources:
        item = template_from_domain(source, organization=campaign.organization)
        if item is not None:
            found.setdefault(item.domain, item)
    return list(found.values())


def verified_domains(*, organization_id, domains: Iterable[str]) -> set[str]:
    """Those of `domains` that the organization has verified."""
    return set(
        SendingDomain.objects.filter(
            organization_id=organization_id, domain__in=list(domains), status=SendingDomainStatus.VERIFIED
        ).values_list("domain", flat=True)
    )


def sending_domain_users(*, sending_domain: SendingDomain) -> list[str]:
    """Names of the launched campaigns (scheduled, running or paused) that send from this domain."""
    active = Campaign.objects.filter(
        organization_id=sending_domain.organization_id, status__in=["scheduled", "running", "paused"]
    ).only("name", "sending_domains")
    return [
        c.name for c in active if isinstance(c.sending_domains, list) and sending_domain.domain in c.sending_domains
    ]


# --- what a message renders with -------------------------------------------------------------------


def message_template_version(
    *, campaign: Campaign, step: int = 0, variant: CampaignVariant | None = None
) -> TemplateVersion | None:
    """The template version a message of this step and variant is sent with: a sequence step's own,
    else the follow-up's for step 1, else the A/B variant's, else the campaign's (each snapshotted at
    launch or activation)."""
    if campaign.kind == CampaignKind.SEQUENCE:
        found = (
            SequenceStep.objects.select_related("template_version")
            .filter(sequence__campaign=campaign, order=step_order(step))
            .first()
        )
        return found.template_version if found else None
    if step == 1 and campaign.followup_template_version_id:
        return campaign.followup_template_version
    if variant is not None and variant.template_version_id:
        return variant.template_version
    return campaign.template_version


@dataclass(frozen=True)
class RenderBase:
    """What the messages of one campaign, step and variant share when they are rendered."""

    version: TemplateVersion
    source: rendering.TemplateSource
    organization: dict[str, Any]
    campaign: dict[str, Any]
    variables: dict[str, Any]
    # A signed callback link costs as much as rendering a short template: made only when the
    # template can read it (its name appears in no source text otherwise).
    uses_callback: bool


def message_render_base(
    *, campaign: Campaign, step: int = 0, variant: CampaignVariant | None = None
) -> RenderBase | None:
    """The shared part of the render context (None when there is no version to render)."""
    version = message_template_version(campaign=campaign, step=step, variant=variant)
    if version is None:
        return None
    source = template_selectors.version_source(version)
    texts = [source.subject, source.preheader, source.html_body, source.text_body, *source.layouts.values()]
    return RenderBase(
        version=version,
        source=source,
        organization=organization_context(campaign.organization),
        campaign={"id": str(campaign.pk), "name": campaign.name},
        variables={**(version.variables or {}), **(campaign.variables or {})},
        uses_callback=any("callback_url" in (text or "") for text in texts),
    )


def message_render_context(*, message: Message, base: RenderBase) -> dict[str, Any]:
    """The context one message renders with: its contact, its signed unsubscribe, view-in-browser
    and callback links, and the shared part (`message_render_base` of its campaign, step, variant).
    Reads message.pk, organization_id, campaign_id and contact."""
    contact = message.contact
    return message_context(
        contact=contact_context(contact),
        organization=base.organization,
        campaign=base.campaign,
        unsubscribe_url=tokens.unsubscribe_url(message.pk),
        view_in_browser_url=tokens.view_url(message.pk),
        callback_url=callback_url(
            organization_id=message.organization_id,
            contact_public_id=contact.public_id,
            campaign_id=message.campaign_id,
        )
        if base.uses_callback
        else "",
        variables=base.variables,
    )
