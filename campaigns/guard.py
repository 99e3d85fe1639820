"""The complaint-rate guard: an organization whose spam-complaint rate on any sending domain over
the last 24 hours is above its threshold (default 0.3 %, Gmail's line for bulk senders) stops
sending until someone looks.

`organization_pause_reason` says why an organization must not send now (or None); its verdict
is cached for TRACKING_GUARD_CACHE_SECONDS so dispatch can ask it on every run. The beat task
`campaigns.guard` calls `guard_enforce`, which pauses the running and scheduled campaigns of such
organizations through `campaign_pause` with the reason, so it shows as the campaign's
`status_reason` in the API and the admin. A marketer may resume; while the rate stays above the
threshold the next run pauses again. Raising the threshold (or 0, off) in the organization's
tracking settings is the explicit way to keep sending.

The counts and the limits are tracking's (`tracking.selectors`); pausing is the campaigns' own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from accounts.models import Organization
from campaigns.models import Campaign, CampaignStatus
from campaigns.services import campaign_pause, organization_sending_domain
from config.errors import ConflictError
from tracking import selectors as tracking_selectors

logger = logging.getLogger(__name__)

WINDOW = timedelta(hours=24)
_NONE = ""


def _cache_key(organization_id) -> str:
    # The key predates the guard's move into campaigns; cached verdicts stay valid across a deploy.
    return f"tracking:guard:{organization_id}"


def _cache_seconds() -> int:
    return int(getattr(settings, "TRACKING_GUARD_CACHE_SECONDS", 60))


def compute_pause_reason(*, organization_id) -> str | None:
    """The reason the organization must stop sending, from the last 24 hours; None when it may send."""
    limits = tracking_selectors.complaint_limits(organization_id=organization_id)
    if limits.threshold <= 0:
        return None
    organization = Organization.objects.get(pk=organization_id)
    rates = tracking_selectors.complaint_rates(
        organization_id=organization_id,
        since=timezone.now() - WINDOW,
        default_domain=organization_sending_domain(organization),
    )
    over = [
        rate for rate in rates if rate.complaints and rate.sent >= limits.min_sent and rate.percent > limits.threshold
    ]
    if not over:
        return None
    worst = max(over, key=lambda rate: rate.percent)
    return (
        f"Paused by the complaint-rate guard: {worst.percent}% spam complaints on {worst.domain} "
        f"in the last 24 h ({worst.complaints} of {worst.sent} sent) is above {limits.threshold}%."
    )


def organization_pause_reason(organization_id) -> str | None:
    """Why the organization must not send now, or None (cached briefly)."""
    cached = cache.get(_cache_key(organization_id))
    if cached is not None:
        return cached or None
    reason = compute_pause_reason(organization_id=organization_id)
    cache.set(_cache_key(organization_id), reason or _NONE, _cache_seconds())
    return reason


def guard_enforce(*, organization_ids: Iterable | None = None, fresh: bool = True) -> dict:
    """Pause the running and scheduled campaigns of every organization over its threshold.
    Returns {organization id: reason} for the organizations paused."""
    active = Campaign.objects.filter(status__in=[CampaignStatus.RUNNING, CampaignStatus.SCHEDULED])
    if organization_ids is not None:
        active = active.filter(organization_id__in=list(organization_ids))
    paused = {}
    for organization_id in set(active.values_list("organization_id", flat=True)):
        if fresh:
            reason = compute_pause_reason(organization_id=organization_id)
            cache.set(_cache_key(organization_id), reason or _NONE, _cache_seconds())
        else:
            reason = organization_pause_reason(organization_id)
        if not reason:
            continue
        paused[organization_id] = reason
        for campaign in active.filter(organization_id=organization_id):
            try:
                campaign_pause(campaign=campaign, reason=reason)
            except ConflictError:
                continue  # it finished or was cancelled meanwhile
        logger.warning("complaint-rate guard paused sending", extra={"organization_id": str(organization_id)})
    return paused
