"""Moved to `campaigns.guard`: pausing is the campaigns' business, tracking only counts
(`tracking.selectors.complaint_rates`). These names stay until dispatch imports them from there."""

from campaigns.guard import compute_pause_reason, guard_enforce, organization_pause_reason

__all__ = ["compute_pause_reason", "guard_enforce", "organization_pause_reason"]
