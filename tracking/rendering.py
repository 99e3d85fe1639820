"""View in browser: the message re-rendered from the template version it was sent with.

It is rendered like the send path renders it (the same `campaigns.selectors` version choice and
render context: contact, organization and campaign variables, unsubscribe link), but untracked:
no open pixel and links to their original URLs, so reading it online is not counted as an open.
An erased contact has nothing to show.
"""

from __future__ import annotations

import html
import logging

from campaigns import selectors as campaign_selectors
from campaigns.models import Message
from templates_app import rendering

logger = logging.getLogger(__name__)


def render_for_browser(message: Message) -> str | None:
    """The message's HTML (or its text in a page), or None when it cannot be shown."""
    if message.contact.erased_at is not None:
        return None
    campaign = message.campaign
    base = campaign_selectors.message_render_base(
        campaign=campaign, step=message.step, variant=message.variant if message.variant_id else None
    )
    if base is None:
        return None
    context = campaign_selectors.message_render_context(message=message, base=base)
    try:
        rendered = rendering.render_message(base.source, context, organization_id=campaign.organization_id)
    except rendering.TemplateProblem:
        logger.warning("view in browser: the message no longer renders", extra={"message_id": message.pk})
        return None
    if rendered.html:
        return rendered.html
    title = html.escape(rendered.subject)
    return f"<!doctype html><meta charset='utf-8'><title>{title}</title><pre>{html.escape(rendered.text)}</pre>"
