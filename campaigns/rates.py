"""Engagement rates, the one definition everything shows (campaign stats, analytics, the admin).

Over sent - bounced, as Mailchimp defines them, so a provider that never reports delivery still gives
true rates: open, click and unsubscribe rate over that base, click-to-open over opened, bounce rate over
sent. 0.0 when the denominator is 0; four decimals.
"""

from __future__ import annotations


def rates(counters: dict) -> dict[str, float]:
    def ratio(part, whole) -> float:
        return round(part / whole, 4) if whole else 0.0

    sent = counters.get("sent") or 0
    bounced = counters.get("bounced") or 0
    opened = counters.get("opened") or 0
    clicked = counters.get("clicked") or 0
    base = sent - bounced
    return {
        "open_rate": ratio(opened, base),
        "click_rate": ratio(clicked, base),
        "click_to_open_rate": ratio(clicked, opened),
        "bounce_rate": ratio(bounced, sent),
        "unsubscribe_rate": ratio(counters.get("unsubscribed") or 0, base),
    }
