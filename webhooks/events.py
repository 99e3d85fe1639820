"""The event types an endpoint may subscribe to."""

from __future__ import annotations

MESSAGE_SENT = "message.sent"
MESSAGE_DELIVERED = "message.delivered"
MESSAGE_OPENED = "message.opened"
MESSAGE_CLICKED = "message.clicked"
MESSAGE_BOUNCED = "message.bounced"
MESSAGE_COMPLAINED = "message.complained"
MESSAGE_UNSUBSCRIBED = "message.unsubscribed"
MESSAGE_REPLIED = "message.replied"
MESSAGE_FAILED = "message.failed"
CONTACT_CREATED = "contact.created"
CONTACT_UNSUBSCRIBED = "contact.unsubscribed"
CAMPAIGN_LAUNCHED = "campaign.launched"
CAMPAIGN_COMPLETED = "campaign.completed"
ENROLLMENT_COMPLETED = "enrollment.completed"
CALLBACK_CREATED = "callback.created"
CALLBACK_COMPLETED = "callback.completed"
# Sent by POST /webhooks/{id}/test only; no endpoint subscribes to it.
WEBHOOK_TEST = "webhook.test"

EVENT_TYPES: dict[str, str] = {
    MESSAGE_SENT: "A message left for the provider.",
    MESSAGE_DELIVERED: "The provider delivered a message.",
    MESSAGE_OPENED: "A person opened a message (privacy proxies and scanners left out).",
    MESSAGE_CLICKED: "A person clicked a link in a message (link scanners left out).",
    MESSAGE_BOUNCED: "A message bounced hard.",
    MESSAGE_COMPLAINED: "The recipient marked a message as spam.",
    MESSAGE_UNSUBSCRIBED: "The recipient used a message's unsubscribe link or header.",
    MESSAGE_REPLIED: "The recipient replied to a message.",
    MESSAGE_FAILED: "A message could not be sent (after its retries).",
    CONTACT_CREATED: "A contact was created (API, admin, form or import).",
    CONTACT_UNSUBSCRIBED: "A contact opted out of everything (or was erased).",
    CAMPAIGN_LAUNCHED: "A campaign was launched.",
    CAMPAIGN_COMPLETED: "A campaign finished sending.",
    ENROLLMENT_COMPLETED: "A contact went through every step of a drip sequence.",
    CALLBACK_CREATED: "A callback request came in.",
    CALLBACK_COMPLETED: "A callback request was completed.",
}
