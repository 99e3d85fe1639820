"""View in browser: the message re-rendered from the template version it was sent with.

It is rendered like the send path renders it (same version snapshot, contact, organization and
campaign variables, unsubscribe link), but untracked: no open pixel and links to their original
URLs, so reading it online is not counted as an open. An erased contact has nothing to show.
"""

from __future__ import annotations

import html
import logging

from callbacks.tokens import callback_url
from campaigns.models import Message
from templates_app import rendering, selectors
from templates_app.context import contact_context, message_context, organization_context
from tracking import tokens

logger = logging.getLogger(__name__)


def _version(message: Message):
    campaign = message.campaign
    if message.variant_id and message.variant and message.variant.template_version_id:
        return message.variant.template_version
    if message.step == 1 and campaign.followup_template_version_id:
        return campaign.followup_template_version
    return campaign.template_version


def render_for_browser(message: Message) -> str | None:
    """The message's HTML (or its text in a page), or None when it cannot be shown."""
    contact = message.contact
    version = _version(message)
    if version is None or contact.erased_at is not None:
        return None
    campaign = message.campaign
    organization = campaign.organization
    context = message_context(
        contact=contact_context(contact),
        organization=organization_context(organization),
        campaign={"id": str(campaign.pk), "name": campaign.name},
        unsubscribe_url=tokens.unsubscribe_url(message.pk),
        view_in_browser_url=tokens.view_url(message.pk),
        callback_url=callback_url(
            organization_id=message.organization_id,
            contact_public_id=contact.public_id,
            campaign_id=message.campaign_id,
        ),
        variables={**(version.variables or {}), **(campaign.variables or {})},
    )
    try:
        rendered = rendering.render_message(
            selectors.version_source(version), context, organization_id=campaign.organization_id
        )
    except rendering.TemplateProblem:
        logger.warning("view in browser: the message no longer renders", extra={"message_id": message.pk})
        return None
    if rendered.html:
        return rendered.html
    title = html.escape(rendered.subject)
    return f"<!doctype html><meta charset='utf-8'><title>{title}</title><pre>{html.escape(rendered.text)}</pre>"
